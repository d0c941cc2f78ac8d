// Settings for every program, from four sources in this order of precedence:
// command-line flag > environment variable (SNF_GTOOLS_*) > the KEY=value file > built-in default.
// The file is `/etc/default/snf-cyclades-gtools`: systemd reads it with EnvironmentFile=, and the hook
// and the progress monitor read it themselves because Ganeti and snf-image clear their environment.
// Every value is validated at start, and an error names the setting, where the value came from and
// what is wrong with it.

import { readFileSync, statSync } from 'node:fs';
import { redactText } from './redact.js';

export const ENV_PREFIX = 'SNF_GTOOLS_';
export const DEFAULT_SETTINGS_FILE = '/etc/default/snf-cyclades-gtools';
const SETTINGS_FILE_ENV = `${ENV_PREFIX}SETTINGS_FILE`;

export type SettingKind = 'string' | 'integer' | 'number' | 'boolean' | 'list';

type KindValue<K extends SettingKind> = K extends 'string'
  ? string
  : K extends 'integer' | 'number'
    ? number
    : K extends 'boolean'
      ? boolean
      : string[];

export interface SettingSpec<K extends SettingKind = SettingKind> {
  kind: K;
  describe: string;
  default?: KindValue<K>;
  /** A short flag alias, e.g. `d`. */
  alias?: string;
  /** Returns what is wrong with a value, or undefined when it is fine. */
  check?: (value: KindValue<K>) => string | undefined;
  /** Hidden values (passwords) are never echoed back in errors. */
  secret?: boolean;
}

/** One of the per-kind specs (a union, so that `check` is typed by the kind it belongs to). */
export type AnySettingSpec = { [K in SettingKind]: SettingSpec<K> }[SettingKind];
export type SettingSpecs = Record<string, AnySettingSpec>;

export type Settings<S extends SettingSpecs> = {
  [N in keyof S]: KindValue<S[N]['kind']>;
} & { settingsFile: string };

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** `amqpUrl` → `amqp-url` (the flag) and `SNF_GTOOLS_AMQP_URL` (the variable and the file key). */
export const flagName = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const envName = (name: string): string => ENV_PREFIX + flagName(name).replace(/-/g, '_').toUpperCase();

/**
 * Parses the `KEY=value` file the way systemd's EnvironmentFile= does for the simple forms operators
 * write: comments and blank lines are skipped, an optional `export ` is allowed, and a value may be
 * wrapped in single or double quotes.
 */
export function parseSettingsFile(text: string, path: string): Map<string, string> {
  const values = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new SettingsError(`${path}:${index + 1}: expected KEY=value, found ${JSON.stringify(line.slice(0, 80))}`);
    let value = match[2] ?? '';
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) value = value.slice(1, -1);
    values.set(match[1] ?? '', value);
  });
  return values;
}

interface RawValue {
  text: string;
  origin: string;
}

function convert(name: string, spec: AnySettingSpec, raw: RawValue): unknown {
  const shown = spec.secret ? '(hidden)' : JSON.stringify(raw.text);
  const fail = (what: string): never => {
    throw new SettingsError(`setting ${flagName(name)} (${raw.origin}): ${shown} ${what}`);
  };
  switch (spec.kind) {
    case 'string':
      return raw.text;
    case 'integer':
      if (!/^-?\d+$/.test(raw.text.trim())) fail('is not an integer');
      return Number(raw.text);
    case 'number': {
      const n = Number(raw.text);
      if (raw.text.trim() === '' || !Number.isFinite(n)) fail('is not a number');
      return n;
    }
    case 'boolean': {
      const t = raw.text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(t)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(t)) return false;
      return fail('is not a boolean (true/false, yes/no, 1/0)');
    }
    case 'list':
      return raw.text
        .split(/[,\s]+/)
        .map((s) => s.trim())
        .filter((s) => s !== '');
  }
}

export interface LoadOptions {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** Reads the settings file; returns undefined when it does not exist. */
  readFile?: (path: string) => string | undefined;
  scriptName: string;
  usage?: string;
  version?: string;
  /** Positional arguments the program takes, for the usage line (e.g. `<instance>`). */
  positional?: string[];
}

function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SettingsError(`settings file ${path}: ${(err as Error).message}`);
  }
}

/**
 * Resolves every setting of `specs` from the four sources and validates it. `--help` and `--version`
 * print and exit, as operators expect of any command.
 *
 * yargs is loaded only when there are command-line arguments: it adds ~14 MB to a process, and the
 * daemons under systemd, the hook under Ganeti and the monitor under snf-image get their settings
 * from the environment and the settings file, where every byte of a node's memory counts.
 */
export async function loadSettings<S extends SettingSpecs>(
  specs: S,
  options: LoadOptions,
): Promise<Settings<S> & { _: string[] }> {
  const argv = options.argv.length === 0 ? { _: [] } : await parseFlags(specs, options);
  return resolveSettings(specs, options, argv);
}

type ParsedFlags = Record<string, unknown> & { _: (string | number)[] };

async function parseFlags(specs: SettingSpecs, options: LoadOptions): Promise<ParsedFlags> {
  const { default: yargs } = await import('yargs');
  let parser = yargs(options.argv)
    .scriptName(options.scriptName)
    .usage(options.usage ?? `Usage: $0 [options]${options.positional ? ' ' + options.positional.join(' ') : ''}`)
    .option('settings-file', {
      type: 'string',
      describe: `KEY=value settings file (env ${SETTINGS_FILE_ENV})`,
      default: undefined,
    })
    .strict()
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .exitProcess(true)
    .fail((msg, err) => {
      throw new SettingsError(msg ?? err?.message ?? 'invalid arguments');
    })
    .parserConfiguration({ 'camel-case-expansion': true, 'strip-dashed': true });
  parser = options.version === undefined ? parser.version(false) : parser.version(options.version);
  for (const [name, spec] of Object.entries(specs)) {
    const def = spec.default === undefined ? '' : ` [default: ${spec.secret ? '(hidden)' : Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}]`;
    parser = parser.option(flagName(name), {
      // Flags are always read as strings here, so that one conversion path validates all sources alike.
      type: spec.kind === 'boolean' ? 'boolean' : 'string',
      array: spec.kind === 'list',
      describe: `${spec.describe} (env ${envName(name)})${def}`,
      ...(spec.alias ? { alias: spec.alias } : {}),
    });
  }
  return parser.parseSync() as ParsedFlags;
}

function resolveSettings<S extends SettingSpecs>(specs: S, options: LoadOptions, argv: ParsedFlags): Settings<S> & { _: string[] } {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? readIfExists;
  const settingsFile = (argv['settingsFile'] as string | undefined) ?? env[SETTINGS_FILE_ENV] ?? DEFAULT_SETTINGS_FILE;
  const fileText = readFile(settingsFile);
  const fileValues = fileText === undefined ? new Map<string, string>() : parseSettingsFile(fileText, settingsFile);
  if (fileText === undefined && (argv['settingsFile'] !== undefined || env[SETTINGS_FILE_ENV] !== undefined)) {
    throw new SettingsError(`settings file ${settingsFile} does not exist`);
  }

  const result: Record<string, unknown> = { settingsFile, _: argv._.map(String) };
  for (const [name, spec] of Object.entries(specs)) {
    const raw = pickRaw(name, argv, env, fileValues, settingsFile);
    let value: unknown = raw === undefined ? spec.default : convert(name, spec, raw);
    if (raw === undefined && Array.isArray(value)) value = [...value];
    if (value !== undefined && spec.check) {
      const problem = (spec.check as (v: unknown) => string | undefined)(value);
      if (problem) {
        const origin = raw?.origin ?? 'default';
        throw new SettingsError(`setting ${flagName(name)} (${origin}): ${problem}`);
      }
    }
    result[name] = value;
  }
  return result as Settings<S> & { _: string[] };
}

function pickRaw(
  name: string,
  argv: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  fileValues: Map<string, string>,
  settingsFile: string,
): RawValue | undefined {
  const flag = argv[name];
  if (flag !== undefined) {
    const text = Array.isArray(flag) ? flag.map(String).join(',') : String(flag);
    return { text, origin: `flag --${flagName(name)}` };
  }
  const key = envName(name);
  const fromEnv = env[key];
  if (fromEnv !== undefined) return { text: fromEnv, origin: `environment ${key}` };
  const fromFile = fileValues.get(key);
  if (fromFile !== undefined) return { text: fromFile, origin: `${key} in ${settingsFile}` };
  return undefined;
}

// Checks shared by several programs.

export function checkAmqpUrls(urls: string[]): string | undefined {
  if (urls.length === 0) return 'needs at least one broker URL';
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `${JSON.stringify(redactText(url))} is not a URL`;
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
      return `${JSON.stringify(redactText(url))} is not an amqp:// or amqps:// URL`;
    }
    if (!parsed.hostname) return `${JSON.stringify(redactText(url))} has no host`;
  }
  return undefined;
}

export const checkPositive = (v: number): string | undefined => (v > 0 ? undefined : `must be positive, got ${v}`);

export const checkLogLevel = (v: string): string | undefined =>
  ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(v)
    ? undefined
    : `${JSON.stringify(v)} is not a log level (fatal, error, warn, info, debug, trace, silent)`;

export const checkQueueType = (v: string): string | undefined =>
  v === 'classic' || v === 'quorum' ? undefined : `${JSON.stringify(v)} is not a queue type (classic, quorum)`;

export const checkPrefix = (v: string): string | undefined =>
  /^[A-Za-z0-9_]+$/.test(v) ? undefined : `${JSON.stringify(v)} is not a routing prefix (letters, digits, _; the text before the first '-' of names)`;


/**
 * The settings file holds broker passwords: readable by everyone (mode o+r), it is a leak. The pure
 * decision, for a regular file of `mode`; devices such as /dev/null (mode 0666) are nobody's secret.
 */
export function worldReadableWarning(path: string, mode: number, isFile: boolean): string | undefined {
  if (!isFile || (mode & 0o004) === 0) return undefined;
  return `settings file ${path} is readable by every user (mode ${(mode & 0o777).toString(8).padStart(4, '0')}) and may hold broker passwords: chmod 640 ${path}`;
}

/** worldReadableWarning() for the file on disk; undefined when it cannot be stat'ed (missing, say). */
export function settingsFileWarning(path: string): string | undefined {
  try {
    const st = statSync(path);
    return worldReadableWarning(path, st.mode, st.isFile());
  } catch {
    return undefined;
  }
}

/** Logs settingsFileWarning() of `path`, if there is one, as a warning naming the file. */
export function warnIfSettingsFileExposed(log: { warn(fields: object, message: string): void }, path: string): void {
  const warning = settingsFileWarning(path);
  if (warning) log.warn({ settingsFile: path }, warning);
}

/** Settings every program shares. */
export const commonSettings = {
  amqpUrl: {
    kind: 'list',
    describe: 'broker URL, amqp:// or amqps://; repeat the flag or separate with commas; tried in random order',
    default: ['amqp://guest:guest@127.0.0.1:5672/'],
    check: checkAmqpUrls,
    secret: true,
  },
  exchange: { kind: 'string', describe: 'the topic exchange Ganeti events are published to', default: 'ganeti' },
  prefix: {
    kind: 'string',
    describe: "routing prefix of this cloud's names (VM snf-42 has prefix snf)",
    default: 'snf',
    check: checkPrefix,
  },
  logLevel: { kind: 'string', describe: 'log level', default: 'info', check: checkLogLevel },
  queueType: {
    kind: 'string',
    describe: 'type of the queues this program declares: classic, or quorum for a RabbitMQ cluster (every program of a cloud alike)',
    default: 'classic',
    check: checkQueueType,
  },
  // For amqps:// URLs; read once at start (src/common/tls.ts). Paths only: the contents never reach a log.
  amqpCaFile: {
    kind: 'string',
    describe: "PEM file of the certificate authorities that sign the brokers' certificates (default: the system's)",
  },
  amqpCertFile: { kind: 'string', describe: 'PEM file of the client certificate presented to the brokers (with --amqp-key-file)' },
  amqpKeyFile: { kind: 'string', describe: "PEM file of the client certificate's private key (with --amqp-cert-file)" },
  amqpKeyPassphraseFile: { kind: 'string', describe: 'file whose first line is the passphrase of an encrypted --amqp-key-file' },
} satisfies SettingSpecs;
