// Parses a Ganeti job file (`/var/lib/ganeti/queue/job-<N>`) into the few fields eventd needs
// (spec §2.1). Pure: the caller reads the file. Both of Ganeti's writers are accepted: luxid writes
// compact JSON without a trailing newline, the job's Python process spaced JSON with one.
//
// Which keys are required follows Ganeti's own `_QueuedJob.Restore` / `_QueuedOpCode.Restore`:
// `id`, `ops`, and per op `input`, `status`, `result`, `log` must be there; the timestamps are read
// with `.get(..., None)` by Ganeti (older job files lack `exec_timestamp`), so a missing timestamp
// is null here too. Extra keys (`livelock`, `process_id`, `priority`, …) are ignored.
//
// Every failure is a JobFileError naming the file, the place in the document and what is wrong
// (architecture invariant 5); no other exception type leaves parseJobFile.

import type { SplitTime } from '../common/message.js';

/** Ganeti job files are a few KiB; anything this big is not one, so it is refused before parsing. */
export const MAX_JOB_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Ganeti's documents nest about six levels. Deeper ones are refused here because copying or
 * serialising them later (structuredClone, JSON.stringify) would overflow the stack.
 */
export const MAX_JSON_DEPTH = 64;

export interface LogEntry {
  /** Job-wide, increasing serial of the feedback line. */
  serial: number;
  time: SplitTime;
  /** `message` for Feedback/LogInfo lines; other types (e.g. `remote-import`) exist. */
  type: string;
  /** A string for `message` lines, any JSON value for the other types. */
  message: unknown;
}

/** The opcode parameters as Ganeti serialised them, with the opcode name in `OP_ID`. */
export type OpInput = { readonly OP_ID: string } & Readonly<Record<string, unknown>>;

export interface QueuedOp {
  input: OpInput;
  /** Not checked against the known statuses here; buildOpEvents reports an unknown one per op. */
  status: string;
  result: unknown;
  log: LogEntry[];
  startTimestamp: SplitTime | null;
  execTimestamp: SplitTime | null;
  endTimestamp: SplitTime | null;
}

export interface GanetiJob {
  id: number;
  receivedTimestamp: SplitTime | null;
  startTimestamp: SplitTime | null;
  endTimestamp: SplitTime | null;
  ops: QueuedOp[];
}

export class JobFileError extends Error {
  override readonly name = 'JobFileError';

  constructor(
    /** The file (or other origin) the text came from. */
    readonly source: string,
    /** Where in the document: a path such as `ops[1].log[3]`, `position 120`, or `(document)`. */
    readonly where: string,
    /** What is wrong there. */
    readonly reason: string,
  ) {
    super(`${source}: ${where}: ${reason}`);
  }
}

/**
 * Parses and checks one job file. `content` should be the raw bytes (a Buffer), so that invalid
 * UTF-8 is detected; a string is accepted too, for callers that already decoded it.
 */
export function parseJobFile(content: string | Uint8Array, source: string): GanetiJob {
  try {
    const text = decodeText(content, source);
    const doc = parseJson(text, source);
    if (typeof doc === 'object' && doc !== null) checkDepth(doc, source);
    return readJob(doc, source);
  } catch (err) {
    if (err instanceof JobFileError) throw err;
    // Guard for the unforeseen (a bug here, memory exhaustion): the caller still gets a JobFileError.
    throw new JobFileError(source, '(document)', `cannot be read: ${String(err)}`);
  }
}

// ---- bytes → text → JSON ------------------------------------------------------------------------

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function decodeText(content: string | Uint8Array, source: string): string {
  if (typeof content === 'string') {
    // Cheap bound first: a string's UTF-8 size is at least its length in UTF-16 units.
    const bytes = content.length > MAX_JOB_FILE_BYTES ? content.length : Buffer.byteLength(content, 'utf8');
    if (bytes > MAX_JOB_FILE_BYTES) throw tooLarge(source, bytes);
    // A lone surrogate cannot come from UTF-8 bytes; the text was built or decoded wrongly.
    const lone = content.search(/\p{Cs}/u);
    if (lone !== -1) throw new JobFileError(source, `position ${lone}`, 'is not valid Unicode (lone surrogate)');
    return checkText(content, source);
  }
  if (content.byteLength > MAX_JOB_FILE_BYTES) throw tooLarge(source, content.byteLength);
  let text: string;
  try {
    text = strictUtf8.decode(content);
  } catch {
    // Cut inside a multi-byte character: only the end is incomplete, which a streaming decode accepts.
    const whole = decodeWholeCharacters(content);
    if (whole !== undefined) throw new JobFileError(source, `position ${whole.length}`, 'JSON ends too early (truncated file?): inside a UTF-8 character');
    throw new JobFileError(source, '(document)', 'is not valid UTF-8 (binary data?)');
  }
  return checkText(text, source);
}

/** The text of `content` without an incomplete last character, or undefined if bytes before it are invalid. */
function decodeWholeCharacters(content: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(content, { stream: true });
  } catch {
    return undefined;
  }
}

function tooLarge(source: string, bytes: number): JobFileError {
  return new JobFileError(source, '(document)', `is too large for a job file (${bytes} bytes or more, limit ${MAX_JOB_FILE_BYTES})`);
}

/** Names the two common ways a non-job file shows up, before JSON.parse gives a vaguer message. */
function checkText(text: string, source: string): string {
  if (!/\S/.test(text)) throw new JobFileError(source, '(document)', 'is empty');
  const nul = text.indexOf('\0');
  if (nul !== -1) throw new JobFileError(source, `position ${nul}`, 'contains a NUL byte (binary data?)');
  return text;
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const position = /at position (\d+)/.exec(message)?.[1];
    // V8 reports a cut-off document either as "Unexpected end" or as an error at its last offset.
    const truncated = /end of JSON input/.test(message) || (position !== undefined && Number(position) >= text.replace(/[ \t\n\r]+$/, '').length);
    if (truncated) throw new JobFileError(source, `position ${text.length}`, `JSON ends too early (truncated file?): ${message}`);
    throw new JobFileError(source, position === undefined ? '(document)' : `position ${position}`, `is not valid JSON: ${message}`);
  }
}

/**
 * Recursive, but it stops descending past MAX_JSON_DEPTH, so it cannot overflow the stack; and it
 * allocates nothing (this walk runs over every job-file version eventd reads).
 */
function checkDepth(value: object, source: string, depth = 1): void {
  if (depth > MAX_JSON_DEPTH) throw new JobFileError(source, '(document)', `is nested more than ${MAX_JSON_DEPTH} levels deep`);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child: unknown = value[i];
      if (typeof child === 'object' && child !== null) checkDepth(child, source, depth + 1);
    }
    return;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null) checkDepth(child, source, depth + 1);
  }
}

// ---- shape --------------------------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

function readJob(doc: unknown, source: string): GanetiJob {
  const job = expectObject(doc, source, '(document)', 'a job object');
  const id = readJobId(required(job, 'id', source, ''), source);
  const ops = expectArray(required(job, 'ops', source, ''), source, 'ops');
  return {
    id,
    receivedTimestamp: readOptionalTime(job, 'received_timestamp', source, ''),
    startTimestamp: readOptionalTime(job, 'start_timestamp', source, ''),
    endTimestamp: readOptionalTime(job, 'end_timestamp', source, ''),
    ops: ops.map((op, i) => readOp(op, source, `ops[${i}]`)),
  };
}

/** luxid writes an int; older Python code wrote the id as a string, so a numeric string is accepted. */
function readJobId(value: unknown, source: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return Number(value);
  throw new JobFileError(source, 'id', `must be a non-negative integer or a numeric string, found ${describe(value)}`);
}

function readOp(value: unknown, source: string, where: string): QueuedOp {
  const op = expectObject(value, source, where, 'an op object');
  const input = expectObject(required(op, 'input', source, where), source, `${where}.input`, 'an object');
  const opId = required(input, 'OP_ID', source, `${where}.input`);
  if (typeof opId !== 'string' || opId === '') {
    throw new JobFileError(source, `${where}.input.OP_ID`, `must be a non-empty string, found ${describe(opId)}`);
  }
  const status = required(op, 'status', source, where);
  if (typeof status !== 'string') throw new JobFileError(source, `${where}.status`, `must be a string, found ${describe(status)}`);
  const log = expectArray(required(op, 'log', source, where), source, `${where}.log`);
  return {
    input: input as OpInput,
    status,
    result: required(op, 'result', source, where),
    log: log.map((entry, i) => readLogEntry(entry, source, `${where}.log[${i}]`)),
    startTimestamp: readOptionalTime(op, 'start_timestamp', source, where),
    execTimestamp: readOptionalTime(op, 'exec_timestamp', source, where),
    endTimestamp: readOptionalTime(op, 'end_timestamp', source, where),
  };
}

function readLogEntry(value: unknown, source: string, where: string): LogEntry {
  const entry = expectArray(value, source, where);
  if (entry.length !== 4) {
    throw new JobFileError(source, where, `must be [serial, [sec, usec], type, message], found ${entry.length} elements`);
  }
  const [serial, time, type, message] = entry;
  if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) {
    throw new JobFileError(source, `${where}[0]`, `serial must be a non-negative integer, found ${describe(serial)}`);
  }
  if (typeof type !== 'string') throw new JobFileError(source, `${where}[2]`, `type must be a string, found ${describe(type)}`);
  return { serial, time: readTime(time, source, `${where}[1]`), type, message };
}

function readOptionalTime(obj: JsonObject, key: string, source: string, where: string): SplitTime | null {
  const value = own(obj, key);
  return value === undefined || value === null ? null : readTime(value, source, join(where, key));
}

/** Ganeti's split time: `[seconds, microseconds]`, two integers, microseconds below one million. */
function readTime(value: unknown, source: string, where: string): SplitTime {
  if (
    Array.isArray(value) &&
    value.length === 2 &&
    Number.isSafeInteger(value[0]) &&
    Number.isSafeInteger(value[1]) &&
    value[0] >= 0 &&
    value[1] >= 0 &&
    value[1] < 1_000_000
  ) {
    return [value[0], value[1]];
  }
  throw new JobFileError(source, where, `must be a timestamp [seconds, microseconds] of integers, found ${describe(value)}`);
}

// ---- small helpers ------------------------------------------------------------------------------

/** Own properties only: `input.constructor` must not find Object.prototype's. */
export function own(obj: object, key: string): unknown {
  return Object.hasOwn(obj, key) ? (obj as JsonObject)[key] : undefined;
}

function required(obj: JsonObject, key: string, source: string, where: string): unknown {
  if (!Object.hasOwn(obj, key)) throw new JobFileError(source, join(where, key), 'is missing');
  return obj[key];
}

function expectObject(value: unknown, source: string, where: string, what: string): JsonObject {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as JsonObject;
  throw new JobFileError(source, where, `must be ${what}, found ${describe(value)}`);
}

function expectArray(value: unknown, source: string, where: string): unknown[] {
  if (Array.isArray(value)) return value;
  throw new JobFileError(source, where, `must be an array, found ${describe(value)}`);
}

function join(where: string, key: string): string {
  return where === '' ? key : `${where}.${key}`;
}

/** A short description of a wrong value for error messages (never the whole value: it may be huge). */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}
