// snf-ganeti-hook's decisions and hand-off, with its I/O passed in (main.ts wires the real ones).
//
// The hook never talks to the broker: it writes its one message durably to the local outbox
// (fsync + rename) and exits, and eventd publishes it within milliseconds. Ganeti's wait is then the
// hook's start-up plus one small fsync'd file, whatever the broker does.

import type { OutgoingMessage } from '../common/message.js';
import { HookEnvError, buildNetStatus, checkTarget, hookAction, type HookEnv } from './env.js';
import { settingsFileWarning } from '../common/settings.js';
import { HookSettingsError, loadHookSettings } from './settings.js';

export const PROGRAM = 'snf-ganeti-hook';

export interface HookIo {
  env: HookEnv;
  now(): number;
  hostname(): string;
  /** Reads the settings file; undefined when it does not exist. Defaults to the real file system. */
  readFile?: (path: string) => string | undefined;
  /** One line of text for Ganeti's hook log (stderr). */
  log(line: string): void;
  /** Durably stores the messages in the outbox at `dir`, returning the entry's name. */
  putSync(dir: string, messages: OutgoingMessage[]): string | Promise<string>;
}

export type HookOutcome =
  | { code: 0; kind: 'skipped'; reason: string }
  | { code: 0; kind: 'queued'; entry: string; message: OutgoingMessage }
  | { code: 1; kind: 'error'; error: string };

export async function runHook(io: HookIo): Promise<HookOutcome> {
  const fail = (error: string): HookOutcome => {
    io.log(`${PROGRAM}: error: ${error}`);
    return { code: 1, kind: 'error', error };
  };
  try {
    const action = hookAction(io.env);
    if (action.action === 'skip') return { code: 0, kind: 'skipped', reason: action.reason };
    const settings = loadHookSettings(io.env, io.readFile);
    // It holds broker passwords: worth a line in Ganeti's hook log, but no reason to fail the hook.
    const exposed = settingsFileWarning(settings.settingsFile);
    if (exposed) io.log(`${PROGRAM}: warning: ${exposed}`);
    const target = checkTarget(io.env, {
      nodeName: settings.nodeName ?? io.hostname(),
      namePrefix: settings.allInstances ? null : settings.prefix,
    });
    if (!target.ok) return { code: 0, kind: 'skipped', reason: target.reason };
    const { message, warnings } = buildNetStatus(io.env, io.now());
    for (const w of warnings) io.log(`${PROGRAM}: warning: ${w}`);
    let entry: string;
    try {
      entry = await io.putSync(settings.outboxDir, [message]);
    } catch (err) {
      return fail(`cannot store the ${message.type} message of ${target.instance} in the outbox ${settings.outboxDir}: ${(err as Error).message}`);
    }
    return { code: 0, kind: 'queued', entry, message };
  } catch (err) {
    if (err instanceof HookEnvError) return fail(`${err.message}; nothing was sent`);
    if (err instanceof HookSettingsError) return fail(err.message);
    return fail(`unexpected: ${(err as Error).stack ?? String(err)}`);
  }
}
