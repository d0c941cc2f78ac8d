// eventd's durable record of what it published for each job (architecture invariant 2). It lets a
// restarted daemon publish exactly the transitions it missed, including those of jobs archived while
// it was down, without re-reading the whole archive: every job below `doneBelow` is finished and fully
// handled, so the start-up scan only opens archived files at or above it.
//
// Storage: a snapshot (`record.json`, replaced by rename) plus an append-only log (`record.log`) of
// what was confirmed since. Appends are not fsynced: losing the tail in a power cut only means those
// transitions are published again, and duplicates are harmless (invariant 3), while losing a
// transition is not possible because a line is written only after the broker's confirm.

import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface JobEntry {
  /** Last transition published per op index (`status:logSerial`), null when none was. */
  ops: (string | null)[];
  /** Every op reached a final status and nothing more is owed for this job. */
  done: boolean;
}

interface Snapshot {
  version: 1;
  doneBelow: number;
  jobs: Record<string, JobEntry>;
}

const SNAPSHOT = 'record.json';
const LOG = 'record.log';
/** Compact when the log has this many lines, so start-up never replays an unbounded log. */
const COMPACT_AFTER = 50_000;

export type LogLine =
  | { kind: 'op'; jobId: number; opIndex: number; transition: string }
  | { kind: 'seen'; jobId: number }
  | { kind: 'done'; jobId: number }
  | { kind: 'floor'; doneBelow: number };

export function formatLogLine(line: LogLine): string {
  switch (line.kind) {
    case 'op':
      return `op ${line.jobId} ${line.opIndex} ${line.transition}\n`;
    case 'seen':
    case 'done':
      return `${line.kind} ${line.jobId}\n`;
    case 'floor':
      return `floor ${line.doneBelow}\n`;
  }
}

/** Parses one log line; a torn last line (crash mid-append) yields undefined and is dropped. */
export function parseLogLine(text: string): LogLine | undefined {
  const parts = text.split(' ');
  const int = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);
  if (parts[0] === 'op' && parts.length === 4) {
    const jobId = int(parts[1]);
    const opIndex = int(parts[2]);
    const transition = parts[3];
    if (jobId !== undefined && opIndex !== undefined && transition && /^[a-z]+:\d+$/.test(transition)) {
      return { kind: 'op', jobId, opIndex, transition };
    }
  } else if ((parts[0] === 'done' || parts[0] === 'seen') && parts.length === 2) {
    const jobId = int(parts[1]);
    if (jobId !== undefined) return { kind: parts[0], jobId };
  } else if (parts[0] === 'floor' && parts.length === 2) {
    const doneBelow = int(parts[1]);
    if (doneBelow !== undefined) return { kind: 'floor', doneBelow };
  }
  return undefined;
}

export class PublishedRecord {
  private jobs = new Map<number, JobEntry>();
  private doneBelowValue = 0;
  private horizon = 0;
  private logFd: number | undefined;
  private logLines = 0;
  /** Lines not written yet: appends of one event-loop turn go out in one write. */
  private unwritten: string[] = [];
  /** True when no snapshot existed: a first start on this node. */
  readonly fresh: boolean;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    this.fresh = !this.load();
    this.compact();
  }

  get doneBelow(): number {
    return this.doneBelowValue;
  }

  get(jobId: number): JobEntry | undefined {
    return this.jobs.get(jobId);
  }

  /** Whether the start-up scan may skip this job without reading it. */
  isDone(jobId: number): boolean {
    return jobId < this.doneBelowValue || this.jobs.get(jobId)?.done === true;
  }

  markPublished(jobId: number, opIndex: number, transition: string): void {
    const entry = this.entry(jobId);
    while (entry.ops.length <= opIndex) entry.ops.push(null);
    entry.ops[opIndex] = transition;
    this.append({ kind: 'op', jobId, opIndex, transition });
  }

  /** Makes sure the job has an entry (not done), durably. */
  markSeen(jobId: number): void {
    if (this.jobs.has(jobId)) return;
    this.entry(jobId);
    this.append({ kind: 'seen', jobId });
  }

  markDone(jobId: number): void {
    const entry = this.entry(jobId);
    if (entry.done) return;
    entry.done = true;
    this.append({ kind: 'done', jobId });
  }

  /**
   * Declares every job below `jobId` handled: used on a first start, where the archive holds history
   * from before this daemon was installed, which is not published again.
   */
  raiseFloor(jobId: number): void {
    if (jobId <= this.doneBelowValue) return;
    this.doneBelowValue = jobId;
    this.append({ kind: 'floor', doneBelow: jobId });
  }

  /** The highest job id this record knows of (or below its floor), -1 when it knows none. */
  highestJobId(): number {
    let highest = this.doneBelowValue - 1;
    for (const id of this.jobs.keys()) if (id > highest) highest = id;
    return highest;
  }

  /**
   * Forgets everything: the queue was re-created (`gnt-cluster destroy` and `init`), and Ganeti
   * numbers the new cluster's jobs from 1 again.
   */
  reset(): void {
    this.jobs.clear();
    this.doneBelowValue = 0;
    this.horizon = 0;
    this.compact();
  }

  /** Rewrites the snapshot, folding the log into it and dropping jobs below the floor. */
  compact(): void {
    // The snapshot below includes every pending line's effect: they need not be written.
    this.unwritten = [];
    this.advanceFloor();
    for (const [id, entry] of this.jobs) if (id < this.doneBelowValue && entry.done) this.jobs.delete(id);
    const snapshot: Snapshot = { version: 1, doneBelow: this.doneBelowValue, jobs: Object.fromEntries(this.jobs) };
    const tmp = join(this.dir, `${SNAPSHOT}.tmp`);
    const fd = openSync(tmp, 'w', 0o640);
    try {
      writeSync(fd, JSON.stringify(snapshot));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, SNAPSHOT));
    this.closeLog();
    this.logFd = openSync(join(this.dir, LOG), 'w', 0o640);
    this.logLines = 0;
  }

  close(): void {
    this.compact();
    this.closeLog();
  }

  /**
   * Records that a full scan of the queue and the archive saw every job below `jobId`: an id below it
   * without an entry does not exist (Ganeti may skip ids), so the floor may pass over it.
   */
  scannedBelow(jobId: number): void {
    this.horizon = Math.max(this.horizon, jobId);
  }

  /**
   * Moves the floor up to the first job still owed something, but never past the last full scan: a
   * job above that may exist without this record having seen it yet.
   */
  private advanceFloor(): void {
    let firstOpen = Infinity;
    for (const [id, entry] of this.jobs) if (!entry.done && id < firstOpen) firstOpen = id;
    this.doneBelowValue = Math.max(this.doneBelowValue, Math.min(firstOpen, this.horizon));
  }

  private entry(jobId: number): JobEntry {
    let entry = this.jobs.get(jobId);
    if (!entry) {
      entry = { ops: [], done: false };
      this.jobs.set(jobId, entry);
    }
    return entry;
  }

  private append(line: LogLine): void {
    if (this.logFd === undefined) return;
    if (this.unwritten.length === 0) setImmediate(() => this.flush());
    this.unwritten.push(formatLogLine(line));
  }

  /** Writes the pending lines (also before compaction and on close, so none is ever dropped). */
  flush(): void {
    if (this.logFd === undefined || this.unwritten.length === 0) return;
    const lines = this.unwritten;
    this.unwritten = [];
    writeSync(this.logFd, lines.join(''));
    this.logLines += lines.length;
    if (this.logLines >= COMPACT_AFTER) this.compact();
  }

  private closeLog(): void {
    if (this.logFd !== undefined) closeSync(this.logFd);
    this.logFd = undefined;
  }

  /** Returns whether a snapshot existed. */
  private load(): boolean {
    let text: string;
    try {
      text = readFileSync(join(this.dir, SNAPSHOT), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    const snapshot = JSON.parse(text) as Snapshot;
    if (snapshot.version !== 1 || typeof snapshot.doneBelow !== 'number' || typeof snapshot.jobs !== 'object') {
      throw new Error(`${join(this.dir, SNAPSHOT)}: not a version 1 record`);
    }
    this.doneBelowValue = snapshot.doneBelow;
    for (const [id, entry] of Object.entries(snapshot.jobs)) this.jobs.set(Number(id), entry);
    let log = '';
    try {
      log = readFileSync(join(this.dir, LOG), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const raw of log.split('\n')) {
      const line = parseLogLine(raw);
      if (!line) continue;
      if (line.kind === 'op') {
        const entry = this.entry(line.jobId);
        while (entry.ops.length <= line.opIndex) entry.ops.push(null);
        entry.ops[line.opIndex] = line.transition;
      } else if (line.kind === 'seen') {
        this.entry(line.jobId);
      } else if (line.kind === 'done') {
        this.entry(line.jobId).done = true;
      } else {
        this.doneBelowValue = Math.max(this.doneBelowValue, line.doneBelow);
      }
    }
    return true;
  }
}
