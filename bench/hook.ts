// bench/hook: wall time of the snf-ganeti-hook process as Ganeti runs it (compiled, executed through
// its shebang with a fixture's cleared environment), against the floor of publishing it directly: a
// minimal Node script that connects, publishes one persistent message with a confirm and closes.
// Target: hook median <= 0.6 x floor median. Then the hook with a broker that accepts connections and
// never answers: <= 2 s.
//
//   node --import tsx bench/hook.ts [--runs N] [--url amqp://...]

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { startBlackhole } from '../test/helpers/blackhole.js';
import { sharedRabbitUrl } from '../test/helpers/rabbit.js';
import { loadFixtureEnv } from '../test/hooks/fixtures.js';
import { buildPrograms, ganetiEnv } from '../test/hooks/build.js';
import { percentile } from './stats.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    url: { type: 'string', default: sharedRabbitUrl },
  },
});
const RUNS = Number(values.runs);
const URL_ = values.url;

const FLOOR = `
import amqp from 'amqplib';
const [url, queue, body] = process.argv.slice(2);
const conn = await amqp.connect(url);
const ch = await conn.createConfirmChannel();
ch.publish('', queue, Buffer.from(body), { persistent: true, contentType: 'application/json' });
await ch.waitForConfirms();
await conn.close();
`;

function timed(cmd: string, args: string[], env: Record<string, string>): Promise<{ ms: number; code: number | null; stderr: string }> {
  const start = process.hrtime.bigint();
  const child = spawn(cmd, args, { env, cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, code, stderr })),
  );
}

const fmt = (xs: number[]) => `median ${percentile(xs, 50).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms`;

async function main(): Promise<void> {
  const { hook } = buildPrograms();
  const dir = mkdtempSync(join(tmpdir(), 'snf-bench-hook-'));
  const outbox = join(dir, 'outbox');
  const settings = (amqpUrl: string) => {
    const file = join(dir, `settings-${Math.random().toString(16).slice(2)}`);
    writeFileSync(file, `SNF_GTOOLS_OUTBOX_DIR=${outbox}\nSNF_GTOOLS_NODE_NAME=node1.example.test\nSNF_GTOOLS_AMQP_URL=${amqpUrl}\n`);
    return file;
  };
  const fixture = loadFixtureEnv('07-instance-add-post');
  const hookEnv = (amqpUrl: string) => ganetiEnv(fixture, { SNF_GTOOLS_SETTINGS_FILE: settings(amqpUrl) });

  // The floor script lives beside the compiled programs, whose node_modules link resolves amqplib.
  const floor = join(dirname(dirname(dirname(hook))), 'floor.mjs');
  writeFileSync(floor, FLOOR);
  const queue = `bench-hook-floor-${process.pid}`;
  const conn = await amqp.connect(URL_);
  const ch = await conn.createChannel();
  await ch.assertQueue(queue, { durable: true });
  const body = JSON.stringify({ type: 'ganeti-net-status', instance: 'snf-1', nics: [] });

  const hookMs: number[] = [];
  const floorMs: number[] = [];
  const upEnv = hookEnv(URL_);
  try {
    // Warm the page cache, then alternate, so that both see the same machine.
    await timed(hook, [], upEnv);
    await timed(process.execPath, [floor, URL_, queue, body], { PATH: '/usr/bin:/bin' });
    for (let i = 0; i < RUNS; i++) {
      const h = await timed(hook, [], upEnv);
      if (h.code !== 0) throw new Error(`hook exited ${h.code}: ${h.stderr}`);
      hookMs.push(h.ms);
      const f = await timed(process.execPath, [floor, URL_, queue, body], { PATH: '/usr/bin:/bin' });
      if (f.code !== 0) throw new Error(`floor exited ${f.code}: ${f.stderr}`);
      floorMs.push(f.ms);
    }
  } finally {
    await ch.deleteQueue(queue).catch(() => {});
    await conn.close().catch(() => {});
  }
  const queued = readdirSync(outbox).filter((n) => n.endsWith('.msgs')).length;
  const ratio = percentile(hookMs, 50) / percentile(floorMs, 50);
  console.log(`hook (broker up, ${RUNS} runs): ${fmt(hookMs)}; ${queued} outbox entries`);
  console.log(`floor (connect + 1 persistent publish + confirm + close): ${fmt(floorMs)}`);
  console.log(`hook/floor median ratio ${ratio.toFixed(2)} — target <= 0.6: ${ratio <= 0.6 ? 'PASS' : 'FAIL'}`);

  const hole = await startBlackhole();
  const holeMs: number[] = [];
  try {
    const env = hookEnv(hole.url);
    for (let i = 0; i < Math.min(RUNS, 10); i++) {
      const h = await timed(hook, [], env);
      if (h.code !== 0) throw new Error(`hook exited ${h.code}: ${h.stderr}`);
      holeMs.push(h.ms);
    }
  } finally {
    await hole.close();
  }
  const worst = Math.max(...holeMs);
  console.log(`hook (broker accepts and never answers, ${holeMs.length} runs): ${fmt(holeMs)}, max ${worst.toFixed(1)} ms — target <= 2000 ms: ${worst <= 2000 ? 'PASS' : 'FAIL'}`);
  rmSync(dir, { recursive: true, force: true });
}

await main();
