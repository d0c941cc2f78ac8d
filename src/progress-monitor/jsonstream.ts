// Incremental splitter of a byte stream into JSON objects: newline-delimited (what snf-image writes)
// or concatenated without separators (what Synnefo's monitor also accepted).
//
// It works on raw bytes, so an object, a multi-byte character or an escape split across chunks of any
// size (down to one byte) is reassembled unchanged: whitespace inside strings is never touched. Its
// guarantees against bad input:
// - A line of garbage is reported once and skipped up to its newline; the next line parses normally.
// - A line may hold several objects, but an object cannot span a line: JSON forbids a raw newline
//   inside a string, and every producer writes one object per line (spec §1.2), so a newline inside
//   an unfinished object ends it as malformed. An unbalanced `{` can therefore never swallow the lines
//   after it.
// - An object over `maxObjectBytes` is reported and skipped to the end of its line without being
//   buffered, so memory stays bounded whatever the input (a 10 MB line costs nothing).
// - Bytes that are not UTF-8, control characters and other invalid JSON are reported, not parsed.

export interface StreamObject {
  kind: 'object';
  /** 0-based position of this object among the valid objects of the stream. */
  index: number;
  /** The object's exact text. */
  raw: string;
  value: Record<string, unknown>;
  /** Byte offset of the object's `{` in the stream. */
  offset: number;
  /** 1-based line the object starts on. */
  line: number;
}

export interface StreamError {
  kind: 'error';
  reason: string;
  offset: number;
  line: number;
  /** The first bytes of what was skipped, made printable. */
  preview: string;
}

export type StreamItem = StreamObject | StreamError;

export interface SplitterOptions {
  /** Largest accepted object, in bytes (default 1 MiB; snf-image's largest, a helper stderr block, is ~5 KiB). */
  maxObjectBytes?: number;
}

export const DEFAULT_MAX_OBJECT_BYTES = 1024 * 1024;

const enum Mode {
  Idle,
  Object,
  Skip,
}

const NL = 0x0a;
const PREVIEW_BYTES = 60;
const decoder = new TextDecoder('utf-8', { fatal: true });

function preview(bytes: Uint8Array): string {
  const s = Buffer.from(bytes.subarray(0, PREVIEW_BYTES)).toString('utf8');
  return JSON.stringify(s) + (bytes.length > PREVIEW_BYTES ? '…' : '');
}

export class JsonObjectSplitter {
  readonly maxObjectBytes: number;
  private mode = Mode.Idle;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Pieces of the current object from earlier chunks. */
  private pieces: Buffer[] = [];
  private objectBytes = 0;
  private objectOffset = 0;
  private objectLine = 1;
  /** Byte offset of the start of the next chunk. */
  private offset = 0;
  private line = 1;
  private objects = 0;
  private errors = 0;

  constructor(options: SplitterOptions = {}) {
    this.maxObjectBytes = options.maxObjectBytes ?? DEFAULT_MAX_OBJECT_BYTES;
  }

  /** Counts so far: valid objects and reported errors. */
  get stats(): { objects: number; errors: number; bytes: number } {
    return { objects: this.objects, errors: this.errors, bytes: this.offset };
  }

  /** Feeds one chunk; returns the objects completed and the errors found in it, in stream order. */
  push(chunk: Uint8Array): StreamItem[] {
    const out: StreamItem[] = [];
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const n = buf.length;
    let start = 0; // where the current object starts in this chunk (Object mode)
    let i = 0;
    while (i < n) {
      switch (this.mode) {
        case Mode.Skip: {
          const nl = buf.indexOf(NL, i);
          if (nl === -1) {
            i = n;
          } else {
            this.line++;
            this.mode = Mode.Idle;
            i = nl + 1;
          }
          break;
        }
        case Mode.Idle: {
          const b = buf[i] as number;
          if (b === 0x20 || b === 0x09 || b === 0x0d) {
            i++;
          } else if (b === NL) {
            this.line++;
            i++;
          } else if (b === 0x7b /* { */) {
            this.mode = Mode.Object;
            this.depth = 1;
            this.inString = false;
            this.escaped = false;
            this.objectOffset = this.offset + i;
            this.objectLine = this.line;
            this.objectBytes = 1;
            start = i;
            i++;
          } else {
            const nl = buf.indexOf(NL, i);
            const end = nl === -1 ? n : nl;
            out.push(this.error('not a JSON object; skipping the rest of the line', this.offset + i, buf.subarray(i, end)));
            this.mode = Mode.Skip;
          }
          break;
        }
        case Mode.Object: {
          // The hot loop: scan bytes until the object closes, a newline breaks it, or it grows too big.
          let depth = this.depth;
          let inString = this.inString;
          let escaped = this.escaped;
          let closed = false;
          let broken = '';
          const limit = Math.min(n, i + Math.max(0, this.maxObjectBytes - this.objectBytes));
          const from = i;
          for (; i < limit; i++) {
            const b = buf[i] as number;
            if (inString) {
              // A newline ends the line even right after a backslash: JSON has no escaped raw newline.
              if (b === NL) {
                broken = 'line ends inside a string';
                break;
              } else if (escaped) escaped = false;
              else if (b === 0x5c) escaped = true;
              else if (b === 0x22) inString = false;
            } else if (b === 0x22) inString = true;
            else if (b === 0x7b || b === 0x5b) depth++;
            else if (b === 0x7d || b === 0x5d) {
              if (--depth === 0) {
                i++;
                closed = true;
                break;
              }
            } else if (b === NL) {
              broken = 'line ends inside an unfinished object';
              break;
            }
          }
          this.objectBytes += i - from;
          this.depth = depth;
          this.inString = inString;
          this.escaped = escaped;
          if (closed) {
            out.push(this.finish(buf.subarray(start, i)));
            this.mode = Mode.Idle;
          } else if (broken) {
            out.push(this.error(broken, this.objectOffset, this.partial(buf.subarray(start, i))));
            this.pieces = [];
            this.line++;
            this.mode = Mode.Idle;
            i++; // past the newline
          } else if (i < n) {
            // Stopped by the size limit with bytes still to come: the object cannot fit.
            out.push(this.error(`object over ${this.maxObjectBytes} bytes; skipping the rest of the line`, this.objectOffset, this.partial(buf.subarray(start, i))));
            this.pieces = [];
            this.mode = Mode.Skip;
          }
          break;
        }
      }
    }
    // The chunk ended inside an object: keep a copy of its part (the caller may reuse its buffer).
    if (this.mode === Mode.Object && start < n) this.pieces.push(Buffer.from(buf.subarray(start, n)));
    this.offset += n;
    return out;
  }

  /** Ends the stream: an object left open is reported as truncated. */
  end(): StreamItem[] {
    if (this.mode !== Mode.Object) return [];
    const item = this.error('stream ended inside an object', this.objectOffset, this.partial(Buffer.alloc(0)));
    this.pieces = [];
    this.mode = Mode.Idle;
    return [item];
  }

  private partial(tail: Buffer): Buffer {
    if (this.pieces.length === 0) return tail;
    // Only the head is shown, so there is no need to join everything.
    const head = this.pieces[0] as Buffer;
    return head.length >= PREVIEW_BYTES + 1 ? head : Buffer.concat([...this.pieces, tail]);
  }

  private finish(tail: Buffer): StreamItem {
    const bytes = this.pieces.length === 0 ? tail : Buffer.concat([...this.pieces, tail]);
    this.pieces = [];
    // Buffer's decoder is several times faster than TextDecoder; only text that came out with a
    // replacement character (rare) is checked strictly, to tell bad bytes from a real U+FFFD.
    const raw = bytes.toString('utf8');
    if (raw.includes('\uFFFD')) {
      try {
        decoder.decode(bytes);
      } catch {
        return this.error('not valid UTF-8', this.objectOffset, bytes);
      }
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return this.error(`invalid JSON (${(err as Error).message})`, this.objectOffset, bytes);
    }
    return {
      kind: 'object',
      index: this.objects++,
      raw,
      value: value as Record<string, unknown>,
      offset: this.objectOffset,
      line: this.objectLine,
    };
  }

  private error(reason: string, offset: number, bytes: Uint8Array): StreamError {
    this.errors++;
    return { kind: 'error', reason, offset, line: this.mode === Mode.Object ? this.objectLine : this.line, preview: preview(bytes) };
  }
}
