// systemd's sd_notify protocol for the daemons (Type=notify units): READY=1 once the program really
// works, STATUS= lines in an operator's words, WATCHDOG=1 pings while the main loop is healthy, and
// STOPPING=1 on shutdown. Without NOTIFY_SOCKET (not started by systemd, or a unit that is not
// Type=notify) every call does nothing.
//
// How the datagram is sent: Node has no AF_UNIX datagram sockets, so either a native addon
// (npm `sd-notify` links libsystemd, `unix-dgram` builds with nan: a node-gyp build and, for the first,
// libsystemd-dev in every build) or a helper process. We run systemd's own `systemd-notify` program,
// always present where systemd is, with the assignments as arguments. Not through the npm package
// `systemd-notify` (1.0.0, unchanged since 2019): it can send only READY and STATUS (no WATCHDOG=1,
// no STOPPING=1), always adds --pid, and runs calls concurrently, so a STATUS could overtake another.
// Here calls run one after another, so messages arrive in the order they were made.
//
// The known weakness of a helper process: PID 1 learns the sender's PID from the datagram and drops
// the message when that process has already exited and cannot be mapped to a unit any more. Since
// systemd 246, systemd-notify waits after sending for PID 1 to close a barrier fd (BARRIER=1, see
// sd_notify_barrier(3)), so the helper is alive while PID 1 processes the message; systemd 252
// (bookworm) has it. The sender is a child, not the main PID, hence `NotifyAccess=all` in the units.
// A fork every WatchdogSec/2 seconds costs nothing worth measuring.

import { execFile } from 'node:child_process';

/** What a helper call did; failures are reported to `onError`, never thrown. */
export interface NotifierOptions {
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** The helper program; default `systemd-notify` (found in PATH). */
  command?: string;
  /** Told when a message could not be sent (the program keeps running). */
  onError?: (err: Error, assignments: string[]) => void;
  /** Milliseconds a helper may take, barrier included, before it is killed. */
  timeoutMs?: number;
  /** The process whose watchdog this is (WATCHDOG_PID must name it when set); default process.pid. */
  pid?: number;
}

/** One line of STATUS= text: the protocol is newline-separated, so newlines become spaces. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

export class Notifier {
  private readonly socket: string | undefined;
  private readonly command: string;
  private readonly onError: ((err: Error, assignments: string[]) => void) | undefined;
  private readonly timeoutMs: number;
  private readonly watchdogUsec: number | undefined;
  private queue: Promise<void> = Promise.resolve();
  private watchdogTimer: NodeJS.Timeout | undefined;
  private isReady = false;

  constructor(options: NotifierOptions = {}) {
    const env = options.env ?? process.env;
    this.socket = env['NOTIFY_SOCKET'] || undefined;
    this.command = options.command ?? 'systemd-notify';
    this.onError = options.onError;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    // sd_watchdog_enabled(3): WATCHDOG_USEC set and, when WATCHDOG_PID is set, naming this process.
    const usec = Number(env['WATCHDOG_USEC']);
    const pid = env['WATCHDOG_PID'];
    const forUs = pid === undefined || pid === '' || Number(pid) === (options.pid ?? process.pid);
    this.watchdogUsec = Number.isFinite(usec) && usec > 0 && forUs ? usec : undefined;
  }

  /** True when there is a socket to notify. */
  get enabled(): boolean {
    return this.socket !== undefined;
  }

  /** Milliseconds between watchdog pings (half of WATCHDOG_USEC), or undefined without a watchdog. */
  get watchdogIntervalMs(): number | undefined {
    return this.watchdogUsec === undefined ? undefined : Math.max(1, Math.floor(this.watchdogUsec / 2000));
  }

  /** READY=1, with a status line. Call it once the program does its job (connected, watching, consuming). */
  ready(statusText?: string): Promise<void> {
    this.isReady = true;
    return this.send(['READY=1', ...(statusText === undefined ? [] : [`STATUS=${oneLine(statusText)}`])]);
  }

  /** STATUS=: what the program is doing, for `systemctl status`. */
  status(text: string): Promise<void> {
    return this.send([`STATUS=${oneLine(text)}`]);
  }

  /** STOPPING=1: shutdown has begun. Await it (briefly) before exiting. */
  stopping(statusText?: string): Promise<void> {
    this.stopWatchdog();
    return this.send(['STOPPING=1', ...(statusText === undefined ? [] : [`STATUS=${oneLine(statusText)}`])]);
  }

  /** WATCHDOG=1: one keep-alive ping. */
  watchdog(): Promise<void> {
    return this.send(['WATCHDOG=1']);
  }

  /**
   * Pings the watchdog every WATCHDOG_USEC/2 while `isHealthy()` says so (a ping skipped lets systemd
   * restart the program once WatchdogSec passes without one). Nothing without WATCHDOG_USEC. The timer
   * does not keep the process alive. Returns a function that stops it.
   */
  startWatchdog(isHealthy: () => boolean): () => void {
    this.stopWatchdog();
    const interval = this.watchdogIntervalMs;
    if (!this.enabled || interval === undefined) return () => {};
    const timer = setInterval(() => {
      let healthy = false;
      try {
        healthy = isHealthy();
      } catch {
        healthy = false;
      }
      if (!healthy) return;
      // READY=1 again with the ping once ready: PID 1 ignores a repeated READY=1, and it recovers a
      // first one that was lost.
      void this.send(this.isReady ? ['WATCHDOG=1', 'READY=1'] : ['WATCHDOG=1']);
    }, interval);
    timer.unref();
    this.watchdogTimer = timer;
    return () => {
      if (this.watchdogTimer === timer) this.stopWatchdog();
    };
  }

  stopWatchdog(): void {
    if (this.watchdogTimer !== undefined) clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
  }

  /** Resolves once every message asked for so far has been handed over (or failed). */
  flush(): Promise<void> {
    return this.queue;
  }

  private send(assignments: string[]): Promise<void> {
    if (this.socket === undefined) return Promise.resolve();
    this.queue = this.queue.then(() => this.run(assignments));
    return this.queue;
  }

  private run(assignments: string[]): Promise<void> {
    return new Promise((resolve) => {
      execFile(this.command, assignments, { timeout: this.timeoutMs, env: { ...process.env, NOTIFY_SOCKET: this.socket } }, (err, _stdout, stderr) => {
        if (err) {
          const detail = String(stderr).trim();
          this.onError?.(new Error(`${this.command} ${assignments.join(' ')}: ${detail || err.message}`), assignments);
        }
        resolve();
      });
    });
  }
}

let defaultNotifier: Notifier | undefined;

/** The process-wide notifier, made from process.env on first use. */
export function notifier(options?: NotifierOptions): Notifier {
  defaultNotifier ??= new Notifier(options);
  return defaultNotifier;
}

export const ready = (statusText?: string): Promise<void> => notifier().ready(statusText);
export const status = (text: string): Promise<void> => notifier().status(text);
export const stopping = (statusText?: string): Promise<void> => notifier().stopping(statusText);
export const watchdog = (): Promise<void> => notifier().watchdog();
export const startWatchdog = (isHealthy: () => boolean): (() => void) => notifier().startWatchdog(isHealthy);
