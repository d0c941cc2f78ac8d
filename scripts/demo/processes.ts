// The demo's child processes: each one's output goes to its own log file (the terminal belongs to
// the view), its lines can be waited for, and it is ended by its pid, never by name.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';

export interface Child {
  name: string;
  proc: ChildProcess;
  /** Resolves with the exit code (or the signal's name) once it has exited. */
  exited: Promise<number | string>;
  /** Resolves with the first output line (stdout or stderr) that matches; rejects on exit or timeout. */
  waitForLine(pred: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Every output line so far. */
  lines: string[];
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  // Whatever way the demo ends, nothing it started outlives it.
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

export interface StartOptions extends Pick<SpawnOptions, 'env' | 'cwd'> {
  /** Appends the child's stdout and stderr here. */
  logFile: string;
  /** Keep stdin open as a pipe (the progress monitor reads its stream from it). */
  stdin?: boolean;
}

export function startChild(name: string, command: string, args: string[], options: StartOptions): Child {
  const log: WriteStream = createWriteStream(options.logFile, { flags: 'a' });
  // Own process group: a Ctrl-C at the terminal reaches the demo only, which then stops its children
  // in order (programs first, the broker last).
  const proc = spawn(command, args, {
    env: options.env,
    cwd: options.cwd,
    detached: true,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  const collect = (stream: NodeJS.ReadableStream | null) => {
    let buffered = '';
    stream?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      buffered += chunk.toString('utf8');
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        lines.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
      for (const w of waiters) w();
    });
  };
  collect(proc.stdout);
  collect(proc.stderr);
  proc.stdin?.on('error', () => {});
  const exited = new Promise<number | string>((resolve) => {
    proc.on('error', (err) => {
      lines.push(`cannot start ${command}: ${err.message}`);
      running.delete(proc);
      resolve(-1);
    });
    proc.on('close', (code, signal) => {
      running.delete(proc);
      log.end();
      for (const w of waiters) w();
      resolve(code ?? signal ?? -1);
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    name,
    proc,
    exited,
    lines,
    waitForLine(pred, timeoutMs) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            if (pred(lines[seen]!)) {
              finish();
              resolve(lines[seen]!);
              return;
            }
          }
          if (done) {
            finish();
            reject(new Error(`${name} exited before it was ready; its log: ${options.logFile}\n${lines.slice(-8).join('\n')}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`${name} not ready within ${timeoutMs / 1000} s; its log: ${options.logFile}\n${lines.slice(-8).join('\n')}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (!done) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

