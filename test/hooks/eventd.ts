// Runs the real snf-ganeti-eventd (src/eventd/main.ts under tsx) for tests that need "a running eventd
// publishes it": with empty Ganeti directories it is not the master and only drains its outbox.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TopologyOptions } from '../../src/common/topology.js';
import { ROOT } from './build.js';

export interface RunningEventd {
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

export function startEventd(o: { outboxDir: string; urls: string[]; topology: TopologyOptions }): RunningEventd {
  const dir = mkdtempSync(join(tmpdir(), 'snf-eventd-'));
  for (const d of ['queue', 'ganeti', 'state']) mkdirSync(join(dir, d));
  const args = [
    '--import', 'tsx',
    join(ROOT, 'src/eventd/main.ts'),
    '--queue-dir', join(dir, 'queue'),
    '--ganeti-data-dir', join(dir, 'ganeti'),
    '--state-dir', join(dir, 'state'),
    '--outbox-dir', o.outboxDir,
    '--amqp-url', o.urls.join(','),
    '--exchange', o.topology.exchange,
    '--prefix', o.topology.prefix,
    '--node-name', 'node1',
    '--log-level', 'debug',
  ];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, SNF_GTOOLS_SETTINGS_FILE: '/dev/null' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
