// Turns job files into published transitions: read → parse → build → publish-on-change → record after
// confirm. Notified jobs wait in an ordered set (a job notified twice is read once, at its newest
// version) and are read synchronously in time slices that yield to the event loop between them: a job
// file is a few KiB in the page cache, and four plain syscalls cost ~20 µs where the promise API's
// four thread-pool round trips cost ~15 times more (measured in bench/eventd).

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import type { OutgoingMessage } from '../common/message.js';
import { PublisherClosedError, type SentCallback } from '../common/publisher.js';
import { JobFileError, MAX_JOB_FILE_BYTES, parseJobFile, type GanetiJob } from './jobfile.js';
import { buildOpEvents } from './opmessages.js';
import type { PublishedRecord } from './record.js';
import { opsToPublish, recordAfter, type JobRecord } from './transitions.js';

export const JOB_FILE_NAME = /^job-(\d+)$/;
const FINAL_STATUSES = new Set(['success', 'error', 'canceled']);

/** Ganeti archives job N as `archive/<N / 10000>/job-N`. */
export function archivedJobPath(queueDir: string, jobId: number): string {
  return join(queueDir, 'archive', String(Math.floor(jobId / 10000)), `job-${jobId}`);
}

/** Reads from `offset` until end of file or a full buffer; returns the bytes now in the buffer. */
function readInto(fd: number, buffer: Buffer, offset: number): number {
  let filled = offset;
  while (filled < buffer.length) {
    const n = readSync(fd, buffer, filled, buffer.length - filled, filled);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}

export function jobIdFromName(name: string): number | undefined {
  const m = JOB_FILE_NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function jobIsFinished(job: GanetiJob): boolean {
  return job.ops.every((op) => FINAL_STATUSES.has(op.status));
}

export interface PublishContext {
  cluster: string;
}

export interface ProcessorOptions {
  queueDir: string;
  /** Publisher.send: calls back once the broker confirmed the message (or with an error at shutdown). */
  send: (msg: OutgoingMessage, done: SentCallback) => void;
  record: PublishedRecord;
  log: Logger;
  /** The cluster to publish for, or undefined while this node must not publish (not master). */
  publishContext: () => PublishContext | undefined;
  acceptsName: (name: string) => boolean;
  /** Longest run of synchronous reading before yielding to the event loop. */
  sliceMs?: number;
  /**
   * Reading pauses while this many messages wait for their confirm: a burst of job files then waits
   * on disk, where it already is, instead of in memory (eventd's RSS stays bounded).
   */
  maxUnconfirmed?: number;
  /** Called on every confirm, with the time the job file's change was noticed (for latency). */
  onConfirmed?: (messageId: string, noticedAtMs: number) => void;
  onParseError?: (error: JobFileError) => void;
}

interface Pending {
  /** Re-read even if the file looks unchanged (an inotify event says it changed). */
  force: boolean;
  noticedAtMs: number;
  /** Read from the archive: the job was archived while eventd was not watching. */
  archived: boolean;
}

/**
 * What a message that is still unconfirmed stands for, so that it can be recorded once it is safe.
 * Not the message itself: the publisher holds that, and thousands of copies would add up.
 */
interface InFlight {
  jobId: number;
  opIndex: number;
  transition: string;
  noticedAtMs: number;
}

export class JobProcessor {
  private readonly pending = new Map<number, Pending>();
  /**
   * What was handed to the publisher per job while some of it is unconfirmed: the basis for
   * "changed?" then. Once all of a job's messages are confirmed the record says the same, and the
   * entry goes, so this holds only the jobs in flight, not every live job.
   */
  private readonly sent = new Map<number, JobRecord>();
  /** Identity of the file version last read per job, to skip unchanged files on rescans. */
  private readonly seenVersion = new Map<number, string>();
  private readonly inFlight = new Map<string, InFlight>();
  /** Unconfirmed messages per job; the job is marked done when its last one confirms. */
  private readonly unconfirmedPerJob = new Map<number, number>();
  private readonly finishedJobs = new Set<number>();
  private readonly idleWaiters: (() => void)[] = [];
  /** Job files are a few KiB; this holds any of them, and grows for a larger one. */
  private readBuffer = Buffer.allocUnsafe(64 * 1024);
  private scheduled = false;
  private stopped = false;

  /** `<queue dir>/job-`: the live path of a job is this and its id. */
  private readonly liveJobPrefix: string;

  constructor(private readonly options: ProcessorOptions) {
    this.liveJobPrefix = join(options.queueDir, 'job-');
  }

  /** Schedules a job to be read. `force`: an event says the file changed, read even if it looks the same. */
  notify(jobId: number, how: { force?: boolean; archived?: boolean; noticedAtMs?: number } = {}): void {
    if (this.stopped) return;
    const previous = this.pending.get(jobId);
    this.pending.set(jobId, {
      force: (previous?.force ?? false) || (how.force ?? true),
      noticedAtMs: previous?.noticedAtMs ?? how.noticedAtMs ?? Date.now(),
      archived: how.archived ?? false,
    });
    this.pump();
  }

  /**
   * Forgets the file identities of jobs no longer in the queue directory (archived), so a daemon that
   * runs for months keeps state only for live jobs.
   */
  forgetAllBut(liveJobIds: Iterable<number>): void {
    const live = new Set(liveJobIds);
    for (const id of this.seenVersion.keys()) if (!live.has(id)) this.seenVersion.delete(id);
  }

  /** Forgets what was handed to the publisher but not confirmed: used when this node stops being master. */
  resetSent(): void {
    this.sent.clear();
    this.seenVersion.clear();
  }

  /** Resolves when no job is waiting to be read (confirms may still be outstanding). */
  idle(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.pending.clear();
  }

  /** Messages handed to the publisher and not confirmed yet. */
  unconfirmedCount(): number {
    return this.inFlight.size;
  }

  /** Whether a message is a job message of this processor still waiting for its confirm. */
  owns(messageId: string): boolean {
    return this.inFlight.has(messageId);
  }

  /**
   * The publisher could not confirm these before shutdown and they were put into the outbox: they
   * are now durable, so they count as published.
   */
  recordHandedOff(messages: OutgoingMessage[]): void {
    for (const msg of messages) this.settled(msg.messageId, true);
  }

  private pump(): void {
    if (this.scheduled || this.pending.size === 0) return;
    this.scheduled = true;
    setImmediate(() => this.runSlice());
  }

  private runSlice(): void {
    this.scheduled = false;
    const until = performance.now() + (this.options.sliceMs ?? 10);
    const maxUnconfirmed = this.options.maxUnconfirmed ?? 2000;
    for (const [jobId, pending] of this.pending) {
      if (this.inFlight.size >= maxUnconfirmed) {
        // Confirms will make room; look again shortly rather than spinning.
        this.scheduled = true;
        setTimeout(() => this.runSlice(), 2);
        return;
      }
      this.pending.delete(jobId);
      this.work(jobId, pending);
      if (performance.now() >= until) break;
    }
    if (this.pending.size > 0) this.pump();
    else for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private work(jobId: number, pending: Pending): void {
    const { log } = this.options;
    try {
      const context = this.options.publishContext();
      if (!context) return;
      const read = this.read(jobId, pending);
      if (!read) return;
      this.handle(jobId, read.job, read.source, context, pending.noticedAtMs);
    } catch (err) {
      if (err instanceof JobFileError) {
        log.error({ file: err.source, where: err.where, reason: err.reason }, `job file not usable: ${err.message}`);
        this.options.onParseError?.(err);
      } else {
        log.error({ err, jobId }, 'reading a job file failed');
      }
    }
  }

  private read(jobId: number, pending: Pending): { job: GanetiJob; source: string } | undefined {
    const live = this.liveJobPrefix + jobId;
    if (!pending.archived) {
      const job = this.readPath(jobId, live, pending.force);
      if (job !== 'missing') return job && { job, source: live };
    }
    const archived = archivedJobPath(this.options.queueDir, jobId);
    const job = this.readPath(jobId, archived, pending.force);
    if (job !== 'missing') return job && { job, source: archived };
    this.options.log.debug({ jobId }, 'job file vanished before it was read (archived or deleted)');
    return undefined;
  }

  /**
   * One job file: parsed, `undefined` when a rescan finds it unchanged, 'missing' when it is not there.
   * An inotify event (`force`) needs no fstat: the file changed, and it is read into a buffer kept
   * between reads; only a file that fills that buffer is measured. Rescans (not forced) compare the
   * file's identity with the one they saw last, so that the periodic rescan reads only what changed.
   */
  private readPath(jobId: number, path: string, force: boolean): GanetiJob | undefined | 'missing' {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      throw err;
    }
    try {
      if (force) {
        // Its identity is unknown now; the next rescan reads it once more and notes it.
        this.seenVersion.delete(jobId);
      } else {
        const stat = fstatSync(fd);
        const version = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
        if (this.seenVersion.get(jobId) === version) return undefined;
        this.seenVersion.set(jobId, version);
      }
      let filled = readInto(fd, this.readBuffer, 0);
      if (filled === this.readBuffer.length) {
        const size = fstatSync(fd).size;
        if (size > MAX_JOB_FILE_BYTES) {
          throw new JobFileError(path, '(document)', `file of ${size} bytes is over the ${MAX_JOB_FILE_BYTES}-byte limit`);
        }
        // Grows for good: a queue with one job file this big is likely to have more.
        const bigger = Buffer.allocUnsafe(Math.max(size + 1, this.readBuffer.length * 2));
        this.readBuffer.copy(bigger, 0, 0, filled);
        this.readBuffer = bigger;
        filled = readInto(fd, this.readBuffer, filled);
      }
      // parseJobFile decodes the bytes before it returns, so the shared buffer may be reused after.
      return parseJobFile(this.readBuffer.subarray(0, filled), path);
    } finally {
      closeSync(fd);
    }
  }

  private handle(jobId: number, job: GanetiJob, source: string, context: PublishContext, noticedAtMs: number): void {
    const { log, record } = this.options;
    if (job.id !== jobId) {
      throw new JobFileError(source, 'id', `job id ${job.id} does not match the file name`);
    }
    const events = buildOpEvents(job, { cluster: context.cluster, nowMs: Date.now(), acceptsName: this.options.acceptsName });
    for (const event of events) {
      if (event.kind === 'invalid') log.warn({ file: source, op: event.opIndex, reason: event.reason }, `op ${event.opIndex} of ${source} not published: ${event.reason}`);
      else if (event.kind === 'ignored') log.trace({ file: source, op: event.opIndex, reason: event.reason }, 'op ignored');
      else if (event.warning) log.warn({ file: source, op: event.opIndex }, event.warning);
    }
    const base: JobRecord | undefined = this.sent.get(jobId) ?? record.get(jobId);
    const toPublish = opsToPublish(base, events);
    const finished = jobIsFinished(job);
    if (finished) this.finishedJobs.add(jobId);
    if (toPublish.length === 0) {
      if (finished && !this.unconfirmedPerJob.has(jobId)) this.finishJob(jobId);
      return;
    }
    this.sent.set(jobId, recordAfter(base, toPublish));
    // The record gets an entry before the first confirm, so that its floor cannot pass over a job
    // that is still owed one if eventd dies now.
    record.markSeen(jobId);
    for (const event of toPublish) {
      log.debug({ messageId: event.message.messageId, routingKey: event.message.routingKey }, 'publishing');
      this.inFlight.set(event.message.messageId, { jobId, opIndex: event.opIndex, transition: event.transition, noticedAtMs });
      this.unconfirmedPerJob.set(jobId, (this.unconfirmedPerJob.get(jobId) ?? 0) + 1);
      // The message itself is the publisher's to hold until confirmed; this keeps only what it stands for.
      this.options.send(event.message, this.onSent);
    }
  }

  /** One callback for every message, so that a message in flight costs no closure of its own. */
  private readonly onSent: SentCallback = (err, messageId) => {
    if (!err) {
      const entry = this.settled(messageId, true);
      if (entry) this.options.onConfirmed?.(messageId, entry.noticedAtMs);
      return;
    }
    // At shutdown: main hands the unconfirmed messages to the outbox and records them then.
    if (err instanceof PublisherClosedError) return;
    // Refused whatever is retried (see UnpublishableMessageError): it must not hold a window slot.
    this.options.log.error({ err, messageId }, 'job message cannot be published; dropped');
    this.settled(messageId, false);
  };

  /**
   * A message left the window: confirmed (`published`), or refused for good by the publisher.
   * Returns what it stood for, undefined when it was not this processor's (or already settled).
   */
  private settled(messageId: string, published: boolean): InFlight | undefined {
    const entry = this.inFlight.get(messageId);
    if (!entry) return undefined;
    this.inFlight.delete(messageId);
    if (published) this.options.record.markPublished(entry.jobId, entry.opIndex, entry.transition);
    const left = (this.unconfirmedPerJob.get(entry.jobId) ?? 1) - 1;
    if (left > 0) {
      this.unconfirmedPerJob.set(entry.jobId, left);
      return entry;
    }
    this.unconfirmedPerJob.delete(entry.jobId);
    this.sent.delete(entry.jobId);
    if (this.finishedJobs.has(entry.jobId)) this.finishJob(entry.jobId);
    return entry;
  }

  private finishJob(jobId: number): void {
    this.finishedJobs.delete(jobId);
    this.sent.delete(jobId);
    this.options.record.markDone(jobId);
  }
}
