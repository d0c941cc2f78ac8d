// snf-progress-monitor's loop, with its I/O passed in (main.ts wires stdin, stderr, the publisher and
// the outbox). It fixes the original's three failure modes (spec §1.6, §6.6):
// - stdin is read to EOF at full speed, in flowing mode, whatever the broker does: publishing never
//   blocks reading. At most `memoryLimit` messages wait in the publisher; beyond that they go to the
//   outbox in batches (one entry per batch), from which eventd publishes them;
// - bytes are split by JsonObjectSplitter, so whitespace in strings survives any chunking and a bad
//   line is reported and skipped without stalling the lines after it;
// - at EOF the publisher gets a short grace period for its confirms, then whatever it still holds is
//   put into the outbox in one entry, and only then does the monitor exit 0.
// The stderr echo (`[MONITOR] <json>`, the OS log) is best effort: a broken stderr never stops it.

import type { Logger } from '../common/log.js';
import type { OutgoingMessage } from '../common/message.js';
import { JsonObjectSplitter, type StreamItem, type StreamObject } from './jsonstream.js';
import { buildProgressMessage, progressBodyText, rebuildProgressMessage, type RawProgress } from './message.js';

type Pending = OutgoingMessage | RawProgress;

/** The part of Publisher the monitor uses. */
export interface MonitorPublisher {
  start(): void;
  publish(msg: OutgoingMessage): Promise<void>;
  isConnected(): boolean;
  waitConnected(timeoutMs: number): Promise<boolean>;
  pendingCount(): number;
  close(options?: { timeoutMs?: number }): Promise<OutgoingMessage[]>;
}

/** The part of Outbox the monitor uses. */
export interface MonitorOutbox {
  put(messages: OutgoingMessage[]): Promise<string>;
}

export interface MonitorOptions {
  instance: string;
  input: NodeJS.ReadableStream;
  /** Undefined: nothing is published (settings were unusable); lines are still read and echoed. */
  publisher: MonitorPublisher | undefined;
  outbox: MonitorOutbox | undefined;
  /** Writes text to stderr, best effort. */
  echo(text: string): void;
  log: Logger;
  now?: () => number;
  /** Messages allowed to wait in the publisher before the overflow goes to the outbox; default 1,000 (more only adds memory: bench/progress). */
  memoryLimit?: number;
  /** The same bound while the publisher has no connection; default 500. */
  disconnectedLimit?: number;
  /** Overflow messages per outbox entry: at least this many (bar the last), at most twice; default 500. */
  batchSize?: number;
  /** How long a partial overflow batch may wait before it is written; default 200 ms. */
  batchDelayMs?: number;
  /** Grace period at EOF for confirms while connected; default 2,000 ms (none when disconnected). */
  closeTimeoutMs?: number;
  /** How long after start a first connection may still be awaited at EOF; default 1,000 ms. */
  connectGraceMs?: number;
  maxObjectBytes?: number;
  /** Parsing time per event-loop turn; default 5 ms. */
  sliceMs?: number;
  /** Raw input allowed to wait for parsing before stdin is paused; default 1 MiB. */
  maxQueuedBytes?: number;
  /** Resolves to end early, as at EOF (SIGTERM). */
  stop?: Promise<unknown>;
}

export interface MonitorResult {
  code: 0 | 1;
  /** Valid objects read. */
  objects: number;
  /** Malformed or oversized items skipped. */
  errors: number;
  bytes: number;
  /** Confirmed by the broker. */
  confirmed: number;
  /** Written to the outbox. */
  outboxed: number;
  outboxEntries: number;
  /** Neither confirmed nor stored (only when the outbox failed or there was none). */
  lost: number;
  /** Most messages waiting for an outbox write at once. */
  peakOverflow: number;
  /** Most raw input bytes waiting to be parsed at once. */
  peakQueuedBytes: number;
}

export async function runMonitor(o: MonitorOptions): Promise<MonitorResult> {
  const now = o.now ?? Date.now;
  const memoryLimit = o.memoryLimit ?? 1000;
  const disconnectedLimit = Math.min(memoryLimit, o.disconnectedLimit ?? 500);
  const batchSize = o.batchSize ?? 500;
  const maxBatch = 2 * batchSize;
  const sliceMs = o.sliceMs ?? 5;
  const maxQueuedBytes = o.maxQueuedBytes ?? 1024 * 1024;
  const batchDelayMs = o.batchDelayMs ?? 200;
  const log = o.log;
  const splitter = new JsonObjectSplitter(o.maxObjectBytes === undefined ? {} : { maxObjectBytes: o.maxObjectBytes });
  const result: MonitorResult = { code: 0, objects: 0, errors: 0, bytes: 0, confirmed: 0, outboxed: 0, outboxEntries: 0, lost: 0, peakOverflow: 0, peakQueuedBytes: 0 };

  let closing = false;
  /**
   * Messages for the outbox, not yet handed to a write. Objects read from stdin wait as their raw
   * text (a fraction of the memory of a parsed body) and become messages only when written.
   */
  let overflow: Pending[] = [];
  let batchTimer: NodeJS.Timeout | undefined;
  /** One outbox write at a time; what arrives meanwhile joins the next batch (fewer, larger entries). */
  let writer: Promise<void> | undefined;
  let outboxFailed = false;
  let overflowWarned = false;
  /** Set while parsing waits for the outbox writer to catch up. */
  let resumeParsing: (() => void) | undefined;

  const writeOnce = async (batch: Pending[]): Promise<boolean> => {
    if (!o.outbox) {
      result.lost += batch.length;
      return true;
    }
    try {
      const entry = await o.outbox.put(batch.map((p) => ('raw' in p ? rebuildProgressMessage(o.instance, p) : p)));
      result.outboxed += batch.length;
      result.outboxEntries++;
      if (outboxFailed) log.info('the outbox is writable again');
      outboxFailed = false;
      log.debug({ entry, messages: batch.length }, 'stored messages in the outbox');
      return true;
    } catch (err) {
      if (!outboxFailed) log.error({ err, messages: batch.length }, 'cannot write to the outbox; keeping the messages in memory');
      outboxFailed = true;
      overflow = batch.concat(overflow);
      return false;
    }
  };

  /** Writes full batches while there are some; `all` also writes a last partial one. */
  const runWriter = (all: boolean): Promise<void> => {
    if (writer) return writer;
    writer = (async () => {
      // Suspend before anything else: with nothing to write, this function would otherwise run to its
      // end (clearing `writer`) before the assignment above stores its promise, leaving a settled
      // `writer` that blocks every later write, and parsing with it.
      await undefined;
      while (overflow.length >= batchSize || (all && overflow.length > 0)) {
        const batch = overflow.length > maxBatch ? overflow.splice(0, maxBatch) : overflow;
        if (batch === overflow) overflow = [];
        if (!(await writeOnce(batch))) break;
      }
      writer = undefined;
      if (overflow.length > 0 && !closing) batchTimer ??= setTimeout(flushOverflow, outboxFailed ? 1000 : batchDelayMs);
      resumeParsing?.();
    })();
    return writer;
  };

  const flushOverflow = (): void => {
    clearTimeout(batchTimer);
    batchTimer = undefined;
    void runWriter(true);
  };

  const toOutbox = (msg: Pending): void => {
    overflow.push(msg);
    if (overflow.length > result.peakOverflow) result.peakOverflow = overflow.length;
    if (overflow.length >= batchSize) void runWriter(false);
    else batchTimer ??= setTimeout(flushOverflow, batchDelayMs);
  };

  /** Hands one object to the publisher, or to the outbox when too many wait for the broker already. */
  const send = (item: StreamObject, nowMs: number): void => {
    const p = o.publisher;
    // While there is no connection, only a few messages wait in the publisher (enough for the start-up
    // race); everything else goes straight to the outbox instead of piling up in memory.
    if (!p || p.pendingCount() >= (p.isConnected() ? memoryLimit : disconnectedLimit)) {
      if (p && !overflowWarned) {
        overflowWarned = true;
        log.warn({ memoryLimit, connected: p.isConnected() }, 'broker is behind; the overflow goes to the outbox');
      }
      toOutbox({ raw: item.raw, index: item.index, nowMs });
      return;
    }
    const msg = buildProgressMessage(o.instance, item, nowMs);
    p.publish(msg).then(
      () => {
        result.confirmed++;
      },
      (err: unknown) => {
        // After close() began, close() itself returns the unconfirmed messages.
        if (closing) return;
        log.warn({ err, messageId: msg.messageId }, 'publish failed; the message goes to the outbox');
        toOutbox(msg);
      },
    );
  };

  const startedAt = performance.now();
  o.publisher?.start();

  // stdin is drained as fast as it comes: 'data' only queues the chunk. The chunks are parsed and
  // published in slices of a few milliseconds between event-loop turns, so that a firehose on stdin
  // cannot starve the broker connection or the outbox writes (libuv reads up to 2 MB from a pipe per
  // turn). The broker never slows reading: what it has not confirmed goes to the outbox. Only when the
  // monitor's own CPU and disk are behind (a firehose far beyond what snf-image writes) and
  // `maxQueuedBytes` of raw input wait does stdin pause, which keeps memory bounded.
  const queue: Buffer[] = [];
  let queuedBytes = 0;
  let scheduled = false;
  let inputPaused = false;

  const report = (item: StreamItem): void => {
    if (item.kind === 'error') {
      log.warn({ line: item.line, offset: item.offset, reason: item.reason, preview: item.preview }, 'skipped malformed input');
    }
  };

  let lastEventMs = 0;
  const processChunk = (chunk: Buffer): void => {
    const items = splitter.push(chunk);
    if (items.length === 0) return;
    let echo = '';
    for (const item of items) {
      if (item.kind === 'error') {
        report(item);
        continue;
      }
      // Strictly increasing (by 1 µs at least): the dispatcher orders a VM's build progress by
      // event_time, and objects read in one chunk would otherwise share a millisecond.
      const nowMs = Math.max(now(), lastEventMs + 0.001);
      lastEventMs = nowMs;
      echo += `[MONITOR] ${progressBodyText(o.instance, item, nowMs)}\n`;
      send(item, nowMs);
    }
    if (echo) o.echo(echo);
  };

  const processQueued = (budgetMs: number): void => {
    const deadline = performance.now() + budgetMs;
    while (queue.length > 0) {
      const chunk = queue.shift() as Buffer;
      queuedBytes -= chunk.length;
      processChunk(chunk);
      if (inputPaused && queuedBytes <= maxQueuedBytes / 4) {
        inputPaused = false;
        o.input.resume();
      }
      if (performance.now() >= deadline) break;
    }
  };

  await new Promise<void>((resolve) => {
    let ended = false;
    let done = false;
    const complete = (): void => {
      if (done) return;
      done = true;
      for (const item of splitter.end()) report(item);
      resolve();
    };
    const slice = (): void => {
      scheduled = false;
      if (done) return;
      // The outbox writer is behind: let it catch up before more messages are made. stdin is still
      // read meanwhile (into `queue`, as raw bytes, the most compact form).
      if (writer && overflow.length >= 3 * maxBatch && queue.length > 0) {
        resumeParsing = () => {
          resumeParsing = undefined;
          if (!scheduled) {
            scheduled = true;
            setImmediate(slice);
          }
        };
        return;
      }
      processQueued(sliceMs);
      if (queue.length > 0) {
        scheduled = true;
        setImmediate(slice);
      } else if (ended) complete();
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      queue.push(buf);
      queuedBytes += buf.length;
      if (queuedBytes > result.peakQueuedBytes) result.peakQueuedBytes = queuedBytes;
      if (queuedBytes > maxQueuedBytes && !inputPaused) {
        // Only when parsing and the outbox (local CPU and disk, never the broker) are behind a firehose.
        inputPaused = true;
        o.input.pause();
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(slice);
      }
    };
    const onEnd = (): void => {
      if (ended) return;
      ended = true;
      o.input.removeListener('data', onData);
      if (!scheduled) slice();
    };
    o.input.on('data', onData);
    o.input.once('end', onEnd);
    o.input.once('close', onEnd);
    o.input.once('error', (err: Error) => {
      log.error({ err }, 'error reading stdin; finishing as at EOF');
      onEnd();
    });
    o.stop?.then(() => {
      log.warn('stopping before EOF');
      onEnd();
      // What was already read is still processed, at once.
      processQueued(Infinity);
      complete();
    });
  });

  const stats = splitter.stats;
  result.objects = stats.objects;
  result.errors = stats.errors;
  result.bytes = stats.bytes;

  // EOF: everything still in memory ends up confirmed or in the outbox.
  closing = true;
  clearTimeout(batchTimer);
  batchTimer = undefined;
  const pendingWrites = runWriter(true);
  if (o.publisher) {
    const p = o.publisher;
    // A short stream can end before the first connection is up: it gets what is left of a start-up
    // grace to connect. A monitor that has run longer and is disconnected now does not wait.
    const connectGraceMs = (o.connectGraceMs ?? 1000) - (performance.now() - startedAt);
    if (!p.isConnected() && connectGraceMs > 0 && p.pendingCount() > 0) await p.waitConnected(connectGraceMs);
    const graceMs = p.isConnected() ? (o.closeTimeoutMs ?? 2000) : 0;
    const left = await p.close({ timeoutMs: graceMs });
    if (left.length > 0) {
      log.info({ messages: left.length }, 'putting unconfirmed messages in the outbox');
      await pendingWrites;
      // In one entry, whatever its size (a failed write keeps them in `overflow` for the last try).
      await writeOnce(left);
    }
  }
  await pendingWrites;
  // One last try for what an earlier failed write kept in memory.
  if (overflow.length > 0) await runWriter(true);
  if (overflow.length > 0) result.lost += overflow.length;
  result.code = result.lost > 0 ? 1 : 0;
  log.info(
    {
      objects: result.objects,
      skipped: result.errors,
      confirmed: result.confirmed,
      outboxed: result.outboxed,
      outboxEntries: result.outboxEntries,
      lost: result.lost,
      peakOverflow: result.peakOverflow,
      peakQueuedBytes: result.peakQueuedBytes,
    },
    result.lost > 0 ? 'finished; some messages were lost' : 'finished',
  );
  return result;
}
