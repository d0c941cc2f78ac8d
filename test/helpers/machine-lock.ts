// A lock between test files that change what the whole machine sees. tap runs two test files at
// once; the package install test links the packaged hook into /etc/ganeti/hooks while the real-Ganeti
// e2e test runs Ganeti operations, and Ganeti would then run both hooks. Such tests hold this lock.
// mkdir is atomic, and a lock left by a test process that died is taken over.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const LOCK_ROOT = '/run/lock';

function ownerAlive(dir: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
  } catch {
    // Being created right now (the pid file follows the mkdir): treat as held.
    return true;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Waits until this process holds the named lock; returns its release function. */
export async function holdMachineLock(name: string, options: { timeoutMs: number; onWait?: (message: string) => void }): Promise<() => void> {
  mkdirSync(LOCK_ROOT, { recursive: true });
  const dir = join(LOCK_ROOT, `snf-gtools-test-${name}`);
  const deadline = Date.now() + options.timeoutMs;
  let told = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!ownerAlive(dir)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`machine lock ${dir} still held after ${options.timeoutMs} ms`);
    if (!told) options.onWait?.(`waiting for ${dir}, held by another test process`);
    told = true;
    await new Promise((r) => setTimeout(r, 500));
  }
  const release = (): void => {
    process.off('exit', release);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', release);
  return release;
}
