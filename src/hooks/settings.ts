// The hook's few settings, read from `/etc/default/snf-cyclades-gtools` (Ganeti clears the environment,
// so in production the file is the only source; an environment variable still overrides it, for tests).
//
// Not loadSettings: the hook takes no flags, and its four settings need none of that machinery on
// Ganeti's critical path. The file is parsed by the same parseSettingsFile as every other program's
// (src/common/settings.ts loads only node:fs at import; yargs only when there are flags), with the
// same precedence: environment over file over default.

import { readFileSync } from 'node:fs';
import { parseSettingsFile, SettingsError } from '../common/settings.js';

export const DEFAULT_SETTINGS_FILE = '/etc/default/snf-cyclades-gtools';
export const DEFAULT_OUTBOX_DIR = '/var/spool/snf-cyclades-gtools/outbox';

export interface HookSettings {
  settingsFile: string;
  outboxDir: string;
  /** Routing prefix; instance names must start with `<prefix>-` unless `allInstances`. */
  prefix: string;
  allInstances: boolean;
  /** This node's name from the settings, or undefined to use the host name. */
  nodeName: string | undefined;
}

export class HookSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HookSettingsError';
  }
}

/** The settings file's `KEY=value` lines, with a syntax error reported as a HookSettingsError. */
export function parseKeyValueFile(text: string, path: string): Map<string, string> {
  try {
    return parseSettingsFile(text, path);
  } catch (err) {
    throw err instanceof SettingsError ? new HookSettingsError(err.message) : err;
  }
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HookSettingsError(`settings file ${path}: ${(err as Error).message}`);
  }
}

function parseBoolean(key: string, text: string, origin: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
  throw new HookSettingsError(`${key} (${origin}): ${JSON.stringify(text)} is not a boolean (true/false, yes/no, 1/0)`);
}

export function loadHookSettings(
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string | undefined = readIfExists,
): HookSettings {
  const explicitFile = env['SNF_GTOOLS_SETTINGS_FILE'];
  const settingsFile = explicitFile || DEFAULT_SETTINGS_FILE;
  const text = readFile(settingsFile);
  if (text === undefined && explicitFile) throw new HookSettingsError(`settings file ${settingsFile} does not exist`);
  const file = text === undefined ? new Map<string, string>() : parseKeyValueFile(text, settingsFile);
  const pick = (key: string): { text: string; origin: string } | undefined => {
    const e = env[key];
    if (e !== undefined) return { text: e, origin: `environment ${key}` };
    const f = file.get(key);
    if (f !== undefined) return { text: f, origin: `${key} in ${settingsFile}` };
    return undefined;
  };

  const outbox = pick('SNF_GTOOLS_OUTBOX_DIR');
  if (outbox && !outbox.text.startsWith('/')) {
    throw new HookSettingsError(`SNF_GTOOLS_OUTBOX_DIR (${outbox.origin}): ${JSON.stringify(outbox.text)} is not an absolute path`);
  }
  const prefix = pick('SNF_GTOOLS_PREFIX');
  if (prefix && !/^[A-Za-z0-9_]+$/.test(prefix.text)) {
    throw new HookSettingsError(`SNF_GTOOLS_PREFIX (${prefix.origin}): ${JSON.stringify(prefix.text)} is not a routing prefix (letters, digits, _)`);
  }
  const all = pick('SNF_GTOOLS_HOOK_ALL_INSTANCES');
  const node = pick('SNF_GTOOLS_NODE_NAME');
  return {
    settingsFile,
    outboxDir: outbox?.text || DEFAULT_OUTBOX_DIR,
    prefix: prefix?.text || 'snf',
    allInstances: all ? parseBoolean('SNF_GTOOLS_HOOK_ALL_INSTANCES', all.text, all.origin) : false,
    nodeName: node?.text.trim() || undefined,
  };
}
