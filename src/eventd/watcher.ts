// Watches Ganeti's queue directory. Ganeti writes every job-file version to a temp file and renames
// it over `job-N`, so a watcher sees a new (or replaced) `job-N` entry; its temp files
// (`job-N-<pid>-<n>.tmp`, `job-N<random>.new`) also start with `job-` and are filtered out by the
// exact name. inotify can overflow and the directory can be deleted and created again
// (`gnt-cluster destroy` / `init`): in both cases, and on any watcher error, the owner is asked to
// rescan, and the watch is re-established on the new directory by itself.
//
// Node cannot say that inotify overflowed: libuv drops the kernel's IN_Q_OVERFLOW event (it names
// no watch). An overflow happens only when the kernel queue filled up (max_queued_events, 16,384 by
// default) before eventd read it; libuv then reads the whole queue and hands every event over in
// the same turn of the event loop. So a turn that brought at least half that many events is taken
// as one that may have overflowed, and the owner is asked to rescan once the burst is over. An
// eventd that keeps up sees far fewer: at most ~3,300 in one turn during bench/eventd's burst of
// 80,000 events a second.
//
// Two watchers, each for what it does best:
// - job renames come from a plain `fs.watch` (inotify) on the queue directory: it reports each
//   name with no further I/O. chokidar is not used for them because on every event in a directory it
//   re-reads the whole directory (readdir + lstat of every entry), which with thousands of live jobs
//   starves the reads eventd needs (measured: rename-to-confirm p50 39 ms instead of ~2 ms), and it
//   drops a 'change' that follows another within 50 ms, while Ganeti writes a job 4 ms apart;
// - chokidar watches the directory that holds the queue (one entry: the queue directory itself), to
//   notice at once that the queue directory was deleted or created again.

import { readFileSync, watch as fsWatch, type FSWatcher as NodeWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import type { Logger } from '../common/log.js';
import { jobIdFromName, JOB_FILE_NAME } from './processor.js';

export interface QueueWatcherOptions {
  queueDir: string;
  log: Logger;
  onJob: (jobId: number, noticedAtMs: number) => void;
  /** The directory may have changed without events (new directory, watcher error, overflow). */
  onRescan: (reason: string) => void;
  /** How often to check that the watched directory is still the same one. */
  checkIntervalMs?: number;
}

/** The kernel's inotify queue length (events), or its usual default when it cannot be read. */
export function inotifyQueueLength(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 16384;
  } catch {
    return 16384;
  }
}

/**
 * After each check interval, given the most events one turn of the event loop brought during it: a
 * turn with `threshold` or more makes an overflow suspected; the first quieter interval after that
 * asks for the rescan (a rescan in the middle of a burst would read files about to change again).
 */
export function overflowDecision(suspected: boolean, mostEventsInATurn: number, threshold: number): { suspected: boolean; rescan: boolean } {
  if (mostEventsInATurn >= threshold) return { suspected: true, rescan: false };
  return { suspected: false, rescan: suspected };
}

/** Job ids of the `job-N` files directly in a directory; none when it does not exist. */
export async function listJobIds(dir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const ids: number[] = [];
  for (const name of names) {
    const id = jobIdFromName(name);
    if (id !== undefined) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Job ids in `queue/archive/<n>/`, only in the subdirectories that can hold ids at or above `fromId`. */
export async function listArchivedJobIds(queueDir: string, fromId = 0): Promise<number[]> {
  const archive = join(queueDir, 'archive');
  let subdirs: string[];
  try {
    subdirs = await readdir(archive);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const minBucket = Math.floor(fromId / 10000);
  const ids: number[] = [];
  for (const sub of subdirs) {
    if (!/^\d+$/.test(sub) || Number(sub) < minBucket) continue;
    for (const id of await listJobIds(join(archive, sub))) if (id >= fromId) ids.push(id);
  }
  return ids.sort((a, b) => a - b);
}

/** Ganeti's `queue/serial`: the last job id it handed out, or undefined when missing or unreadable. */
export async function readQueueSerial(queueDir: string): Promise<number | undefined> {
  try {
    const text = (await readFile(join(queueDir, 'serial'), 'utf8')).trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

export class QueueWatcher {
  private watcher: NodeWatcher | undefined;
  private parentWatcher: FSWatcher | undefined;
  private dirIdentity: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private everWatched = false;
  private ready: Promise<void> = Promise.resolve();
  /** Checks run one after another, so two can never both install a watch. */
  private checking: Promise<void> = Promise.resolve();
  /** Events delivered in the current turn of the event loop, and the most in one turn since the last check. */
  private eventsThisTurn = 0;
  private mostEventsInATurn = 0;
  private overflowSuspected = false;

  constructor(private readonly options: QueueWatcherOptions) {}

  /** Starts watching (or waiting for the directory to appear); resolves once the watch is in place. */
  async start(): Promise<void> {
    await this.watchParent();
    await this.check();
    // A safety net under the parent watch (which a missing parent directory would disable).
    // Events in one turn that may mean an overflow: half the kernel's queue.
    const overflowThreshold = Math.floor(inotifyQueueLength() / 2);
    this.timer = setInterval(() => {
      void this.check();
      this.checkOverflow(overflowThreshold);
    }, this.options.checkIntervalMs ?? 1000);
    this.timer.unref();
    await this.ready;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.watcher?.close();
    this.watcher = undefined;
    await this.parentWatcher?.close();
  }

  private checkOverflow(threshold: number): void {
    const decision = overflowDecision(this.overflowSuspected, this.mostEventsInATurn, threshold);
    this.mostEventsInATurn = 0;
    this.overflowSuspected = decision.suspected;
    if (!decision.rescan) return;
    this.options.log.warn({ queueDir: this.options.queueDir, threshold }, 'a burst of events may have overflowed the inotify queue; rescanning');
    this.options.onRescan('inotify may have overflowed');
  }

  /** Re-creates the watch when the directory appeared, vanished or was replaced by a new one. */
  private check(): Promise<void> {
    this.checking = this.checking.then(() => this.checkNow());
    return this.checking;
  }

  private async checkNow(): Promise<void> {
    if (this.closed) return;
    // A directory created right after the old one was deleted often gets the same inode number; its
    // birth time tells them apart.
    const identity = await stat(this.options.queueDir).then(
      (s) => (s.isDirectory() ? `${s.dev}:${s.ino}:${s.birthtimeMs}` : undefined),
      () => undefined,
    );
    if (identity === this.dirIdentity) return;
    const { log, queueDir } = this.options;
    this.dirIdentity = identity;
    this.watcher?.close();
    this.watcher = undefined;
    if (identity === undefined) {
      log.warn({ queueDir }, 'queue directory is gone; waiting for it to come back');
      return;
    }
    const again = this.everWatched;
    this.everWatched = true;
    if (again) log.warn({ queueDir }, 'queue directory was re-created; watching the new one');
    this.ready = this.watchDir();
    await this.ready;
    this.options.onRescan(again ? 'queue directory re-created' : 'watch started');
  }

  private watchDir(): Promise<void> {
    const { queueDir, log, onJob } = this.options;
    const watcher = fsWatch(queueDir, { persistent: true });
    watcher.on('change', (event, name) => {
      // libuv hands over all the events it read in its poll phase; setImmediate runs after it.
      if (this.eventsThisTurn++ === 0) {
        setImmediate(() => {
          this.mostEventsInATurn = Math.max(this.mostEventsInATurn, this.eventsThisTurn);
          this.eventsThisTurn = 0;
        });
      }
      const id = typeof name === 'string' ? jobIdFromName(name) : undefined;
      if (id !== undefined) onJob(id, Date.now());
      // The directory itself deleted or moved away (inotify IN_DELETE_SELF / IN_MOVE_SELF).
      else if (event === 'rename' && (name === null || name === basename(queueDir))) void this.check();
    });
    watcher.on('error', (err: unknown) => {
      log.error({ err }, 'queue watcher error; rescanning');
      void this.check();
      this.options.onRescan('watcher error');
    });
    this.watcher = watcher;
    return Promise.resolve();
  }

  private watchParent(): Promise<void> {
    const { queueDir, log } = this.options;
    const parent = chokidarWatch(dirname(queueDir), {
      depth: 0,
      ignoreInitial: true,
      persistent: false,
      ignored: (path: string) => path !== dirname(queueDir) && path !== queueDir,
    });
    parent.on('addDir', (path: string) => path === queueDir && void this.check());
    parent.on('unlinkDir', (path: string) => path === queueDir && void this.check());
    parent.on('error', (err: unknown) => log.warn({ err }, 'watch on the queue directory\'s parent failed; polling instead'));
    this.parentWatcher = parent;
    return new Promise((resolve) => parent.once('ready', () => resolve()));
  }
}
