// A private PostgreSQL 15 server for tests that stop, restart or kill the database: initdb + pg_ctl as
// user postgres, its own data directory and socket directory, a free port on 127.0.0.1, trust auth.
// The machine's shared server (5432) is never touched.

import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './rabbit.js';

const run = promisify(execFile);
export const PG_BIN = process.env['SNF_TEST_PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  dir: string;
  start(): Promise<void>;
  /** `pg_ctl stop`: `fast` disconnects clients and checkpoints; `immediate` is a crash (recovery at start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** SIGKILLs the postmaster and every backend: connections die without a word, as on a host crash. */
  kill(): Promise<void>;
  /** Stops the server (if running) and removes its directory. */
  destroy(): Promise<void>;
}

async function asPostgres(args: string[]): Promise<void> {
  // runuser needs root; as the postgres user itself the command runs directly.
  if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', ...args], { timeout: 120_000 });
  else await run(args[0] as string, args.slice(1), { timeout: 120_000 });
}

/** The postmaster's pid (first line of postmaster.pid), or undefined when it is not running. */
function postmasterPid(data: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Pids whose parent is `parent` (the backends of a postmaster), read from /proc. */
function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Field 4 is the parent pid; the command name (field 2) may hold spaces, so read after its ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const living = new Set<string>();
process.on('exit', () => {
  // Never leave a private server behind, even when a test crashes.
  for (const data of living) {
    const pid = postmasterPid(data);
    if (pid === undefined) continue;
    for (const child of childrenOf(pid)) {
      try {
        process.kill(child, 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'snf-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout: uid } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(uid.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const pg: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    start: () => asPostgres([join(PG_BIN, 'pg_ctl'), '-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '120', 'start']),
    stop: (mode = 'fast') => asPostgres([join(PG_BIN, 'pg_ctl'), '-D', data, '-m', mode, '-w', '-t', '120', 'stop']),
    async restart(mode = 'fast') {
      await pg.stop(mode);
      await pg.start();
    },
    async kill() {
      const pid = postmasterPid(data);
      if (pid === undefined) return;
      const backends = childrenOf(pid);
      for (const p of [pid, ...backends]) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          // gone
        }
      }
      // pg_ctl start refuses while an old backend still holds the shared memory: wait for all of them.
      for (let i = 0; i < 200 && [pid, ...backends].some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    },
    async destroy() {
      if (postmasterPid(data) !== undefined) await pg.stop('immediate').catch(() => pg.kill());
      living.delete(data);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await asPostgres([join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    living.add(data);
    await pg.start();
  } catch (err) {
    await pg.destroy().catch(() => undefined);
    throw err;
  }
  return pg;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
