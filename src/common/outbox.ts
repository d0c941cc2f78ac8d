// The local outbox (architecture invariant 2: what cannot be published now is kept durably on local
// disk and published later). One entry file holds one batch of messages as JSON lines. An entry is
// written to a temporary file in the same directory, fsynced, renamed to its final name and the
// directory fsynced, so an entry either exists complete or not at all; a torn temporary file never
// has an entry's name. Entries are published oldest first and deleted only after the broker confirmed
// every message in them (at least once: a crash between the confirm and the delete publishes the entry
// again, which consumers tolerate by message id).
//
// The hook loads this module on its fast path, so its runtime imports are node: modules only.

import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from './log.js';
import type { OutgoingMessage } from './message.js';
import type { Publisher } from './publisher.js';

/** `<13-digit ms>-<pid>-<seq>.msgs` */
const ENTRY_NAME = /^(\d{13})-(\d+)-(\d+)\.msgs$/;
/** `.<entry name>.<random>.tmp`: never matches ENTRY_NAME. */
const TEMP_NAME = /^\..*\.tmp$/;
const STALE_TEMP_MS = 60 * 60 * 1000;
export const REJECTED_DIR = 'rejected';

/** Entries in flight at once while draining, and messages over all of them. */
const DRAIN_MAX_ENTRIES = 64;
const DRAIN_MAX_MESSAGES = 2000;

/** Per process, so that two Outbox objects on one directory never pick the same name. */
let sequence = 0;

export class OutboxEntryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutboxEntryError';
  }
}

type LogFn = (obj: object, msg: string) => void;
interface OutboxLog {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
}

/** Without a logger, problems still reach stderr as JSON lines (the hook's stdout is Ganeti's). */
const stderrLog: OutboxLog = {
  error: (obj, msg) => process.stderr.write(`${JSON.stringify({ level: 'error', ...obj, msg })}\n`),
  warn: (obj, msg) => process.stderr.write(`${JSON.stringify({ level: 'warn', ...obj, msg })}\n`),
  info: () => {},
  debug: () => {},
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one message; `where` names it in the error (`file:line`). */
export function validateMessage(value: unknown, where: string): OutgoingMessage {
  if (!isPlainObject(value)) throw new OutboxEntryError(`${where}: not a JSON object`);
  for (const field of ['messageId', 'routingKey', 'type'] as const) {
    const v = value[field];
    if (typeof v !== 'string' || v === '') {
      throw new OutboxEntryError(`${where}: ${field} must be a non-empty string, found ${describe(v)}`);
    }
  }
  if (typeof value.timestampMs !== 'number' || !Number.isFinite(value.timestampMs)) {
    throw new OutboxEntryError(`${where}: timestampMs must be a finite number, found ${describe(value.timestampMs)}`);
  }
  if (!isPlainObject(value.body)) throw new OutboxEntryError(`${where}: body must be a JSON object, found ${describe(value.body)}`);
  return {
    messageId: value.messageId as string,
    routingKey: value.routingKey as string,
    type: value.type as string,
    timestampMs: value.timestampMs,
    body: value.body,
  };
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const text = JSON.stringify(v) ?? String(v);
  return `${typeof v} ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`;
}

/** Parses an entry's text strictly: every line one message, the last one ending in a newline. */
export function parseEntry(text: string, file: string): OutgoingMessage[] {
  if (text === '') throw new OutboxEntryError(`${file}: empty entry (no messages)`);
  const lines = text.split('\n');
  const last = lines.pop();
  if (last !== '') throw new OutboxEntryError(`${file}:${lines.length + 1}: line does not end with a newline (truncated entry?)`);
  return lines.map((line, index) => {
    const where = `${file}:${index + 1}`;
    if (line.trim() === '') throw new OutboxEntryError(`${where}: empty line`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new OutboxEntryError(`${where}: invalid JSON (${(err as Error).message})`);
    }
    return validateMessage(value, where);
  });
}

function serialize(messages: OutgoingMessage[]): string {
  let text = '';
  messages.forEach((m, i) => {
    const valid = validateMessage(m, `message ${i + 1}`);
    text += `${JSON.stringify(valid)}\n`;
  });
  return text;
}

function entryName(): string {
  return `${String(Date.now()).padStart(13, '0')}-${process.pid}-${sequence++}.msgs`;
}

function compareEntries(a: string, b: string): number {
  const ma = ENTRY_NAME.exec(a);
  const mb = ENTRY_NAME.exec(b);
  if (!ma || !mb) return a < b ? -1 : a > b ? 1 : 0;
  for (let i = 1; i <= 3; i++) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return d;
  }
  return 0;
}

const errCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

export class Outbox {
  readonly dir: string;
  private readonly log: OutboxLog;
  /** Entries being published by a drain() of this object. */
  private readonly busy = new Set<string>();

  constructor(dir: string, options: { log?: Logger } = {}) {
    this.dir = dir;
    this.log = (options.log as OutboxLog | undefined) ?? stderrLog;
  }

  /**
   * Stores the messages durably as one entry and returns its file name. Nothing is written, and ''
   * returned, for an empty list. Throws OutboxEntryError for a message the drain could not read back.
   */
  async put(messages: OutgoingMessage[]): Promise<string> {
    if (messages.length === 0) return '';
    const text = serialize(messages);
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    let name = entryName();
    const temp = path.join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fh = await fsp.open(temp, 'wx', 0o600);
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      while (await exists(path.join(this.dir, name))) name = entryName();
      await fsp.rename(temp, path.join(this.dir, name));
    } catch (err) {
      await fsp.unlink(temp).catch(() => {});
      throw err;
    }
    await syncDir(this.dir);
    return name;
  }

  /** put(), synchronously. */
  putSync(messages: OutgoingMessage[]): string {
    if (messages.length === 0) return '';
    const text = serialize(messages);
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    let name = entryName();
    const temp = path.join(this.dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fd = fs.openSync(temp, 'wx', 0o600);
      try {
        fs.writeFileSync(fd, text);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      while (fs.existsSync(path.join(this.dir, name))) name = entryName();
      fs.renameSync(temp, path.join(this.dir, name));
    } catch (err) {
      try {
        fs.unlinkSync(temp);
      } catch {
        // it was never created, or is gone
      }
      throw err;
    }
    const dirFd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
    return name;
  }

  /** Entry file names, oldest first. Removes temporary files older than an hour (left by a crash). */
  async entries(): Promise<string[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return [];
      throw err;
    }
    const now = Date.now();
    for (const name of names) {
      if (!TEMP_NAME.test(name)) continue;
      const file = path.join(this.dir, name);
      try {
        const st = await fsp.stat(file);
        if (st.isFile() && now - st.mtimeMs > STALE_TEMP_MS) {
          await fsp.unlink(file);
          this.log.warn({ file }, 'removed a stale temporary outbox file (left by an interrupted write)');
        }
      } catch {
        // gone meanwhile, or not ours to remove: it is ignored either way
      }
    }
    return names.filter((n) => ENTRY_NAME.test(n)).sort(compareEntries);
  }

  /** Messages waiting in all entries (lines of the entries; malformed entries count as they stand). */
  async messageCount(): Promise<number> {
    let count = 0;
    for (const name of await this.entries()) {
      try {
        const text = await fsp.readFile(path.join(this.dir, name), 'utf8');
        for (const line of text.split('\n')) if (line.trim() !== '') count++;
      } catch (err) {
        if (errCode(err) !== 'ENOENT') throw err;
      }
    }
    return count;
  }

  /**
   * Publishes the entries oldest first (pipelined: up to 64 entries or 2000 messages in flight) and
   * deletes each one once all its messages are confirmed. An unreadable or malformed entry is moved to
   * `rejected/` and logged. Entries that appear meanwhile are drained too. Returns what was confirmed
   * and deleted: when the publisher closes the drain stops (the entries stay); when `signal` aborts it
   * starts no new entry and returns at once, while the entries already handed over are still deleted
   * in the background once confirmed.
   */
  async drain(publisher: Publisher, options: { signal?: AbortSignal } = {}): Promise<{ entries: number; messages: number }> {
    const { signal } = options;
    const result = { entries: 0, messages: 0 };
    const seen = new Set<string>();
    const active = new Set<Promise<void>>();
    let messagesInFlight = 0;
    let stopped = false;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<void>((resolve) => {
      if (!signal) return;
      if (signal.aborted) resolve();
      onAbort = () => resolve();
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const halted = (): boolean => stopped || signal?.aborted === true;

    try {
      while (!halted()) {
        const names = (await this.entries()).filter((n) => !seen.has(n) && !this.busy.has(n));
        if (names.length === 0) break;
        for (const name of names) {
          if (halted()) break;
          seen.add(name);
          if (this.busy.has(name)) continue;
          this.busy.add(name);
          const file = path.join(this.dir, name);
          let messages: OutgoingMessage[];
          try {
            messages = parseEntry(await fsp.readFile(file, 'utf8'), file);
          } catch (err) {
            this.busy.delete(name);
            if (errCode(err) !== 'ENOENT') await this.reject(name, err);
            continue;
          }
          while (
            active.size > 0 &&
            !halted() &&
            (active.size >= DRAIN_MAX_ENTRIES || messagesInFlight + messages.length > DRAIN_MAX_MESSAGES)
          ) {
            await Promise.race([...active, aborted]);
          }
          if (halted()) {
            this.busy.delete(name);
            break;
          }
          messagesInFlight += messages.length;
          const task = (async () => {
            try {
              await Promise.all(messages.map((m) => publisher.publish(m)));
              try {
                await fsp.unlink(file);
              } catch (err) {
                if (errCode(err) !== 'ENOENT') throw err;
              }
              result.entries++;
              result.messages += messages.length;
              this.log.debug({ file, messages: messages.length }, 'outbox entry published');
            } catch (err) {
              stopped = true;
              if ((err as Error).name !== 'PublisherClosedError') {
                this.log.error({ file, err: (err as Error).message }, 'cannot finish an outbox entry; it stays for the next drain');
              }
            } finally {
              messagesInFlight -= messages.length;
              this.busy.delete(name);
            }
          })();
          active.add(task);
          void task.finally(() => active.delete(task));
        }
      }
      await Promise.race([Promise.all(active), aborted]);
    } finally {
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    }
    return { ...result };
  }

  /** Calls onEntry (debounced) when an entry appears in the directory, which is created if missing. */
  watch(onEntry: () => void): () => void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    let timer: NodeJS.Timeout | undefined;
    const fire = (): void => {
      if (timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        onEntry();
      }, 25);
    };
    const watcher = fs.watch(this.dir, (_event, filename) => {
      if (filename === null || ENTRY_NAME.test(String(filename))) fire();
    });
    watcher.on('error', (err) => this.log.warn({ dir: this.dir, err: err.message }, 'outbox watch failed'));
    return () => {
      clearTimeout(timer);
      timer = undefined;
      watcher.close();
    };
  }

  private async reject(name: string, err: unknown): Promise<void> {
    const file = path.join(this.dir, name);
    const reason = err instanceof Error ? err.message : String(err);
    const rejectedDir = path.join(this.dir, REJECTED_DIR);
    try {
      await fsp.mkdir(rejectedDir, { recursive: true, mode: 0o700 });
      let target = path.join(rejectedDir, name);
      if (await exists(target)) target = `${target}.${randomBytes(4).toString('hex')}`;
      await fsp.rename(file, target);
      this.log.error({ file, movedTo: target, reason }, `rejected outbox entry ${name}: ${reason}`);
    } catch (moveErr) {
      this.log.error(
        { file, reason, err: (moveErr as Error).message },
        `rejected outbox entry ${name} could not be moved to ${rejectedDir}: ${reason}`,
      );
    }
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.lstat(file);
    return true;
  } catch {
    return false;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
