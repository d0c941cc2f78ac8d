// bench/progress: 100,000 progress lines through snf-progress-monitor (compiled, as installed), with
// the broker up and with it down: lines per second (spawn to exit, so start-up and the EOF hand-off
// are included) and peak RSS (/usr/bin/time's maximum resident set). Targets: >= 50,000 lines/s either
// way, peak RSS <= 100 MB.
//
//   node --import tsx bench/progress.ts [--lines N] [--runs N] [--url amqp://...]

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deleteTopology, freePort, sharedRabbitUrl, uniqueTopology } from '../test/helpers/rabbit.js';
import { buildPrograms } from '../test/hooks/build.js';
import { median } from './stats.js';

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '3' },
    url: { type: 'string', default: sharedRabbitUrl },
  },
});
const LINES = Number(values.lines);
const RUNS = Number(values.runs);

function progressLine(i: number): string {
  return JSON.stringify({ type: 'image-copy-progress', total: 2147483648, position: i * 4096, progress: Math.round((i / LINES) * 10000) / 100, timestamp: 1500000000 + i / 100 });
}

export interface ProgressRun {
  seconds: number;
  linesPerSecond: number;
  peakRssMb: number;
  /** From the spawn until stdin was fully accepted. */
  readSeconds: number;
  outboxMessages: number;
  code: number | null;
}

const input = Buffer.from(Array.from({ length: LINES }, (_, i) => progressLine(i)).join('\n') + '\n');

async function runOnce(monitor: string, env: Record<string, string>, instance: string): Promise<ProgressRun> {
  const dir = mkdtempSync(join(tmpdir(), 'snf-bench-progress-'));
  const outbox = join(dir, 'outbox');
  const timeFile = join(dir, 'time');
  const start = process.hrtime.bigint();
  // Run through its shebang line (`#!/usr/bin/node --max-semi-space-size=1`), as installed.
  const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%M', monitor, instance], {
    env: { ...process.env, SNF_GTOOLS_SETTINGS_FILE: '/dev/null', SNF_GTOOLS_OUTBOX_DIR: outbox, ...env },
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const stdin = child.stdin;
  const CHUNK = 64 * 1024;
  for (let i = 0; i < input.length; i += CHUNK) {
    if (!stdin.write(input.subarray(i, i + CHUNK))) await new Promise((r) => stdin.once('drain', r));
  }
  await new Promise<void>((r) => stdin.end(r));
  const readSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  const code = await exited;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  let outboxMessages = 0;
  try {
    for (const f of readdirSync(outbox)) outboxMessages += readFileSync(join(outbox, f), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    // no outbox: everything was confirmed
  }
  const peakRssMb = Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) / 1024;
  return { seconds, linesPerSecond: LINES / seconds, peakRssMb, readSeconds, outboxMessages, code };
}

function report(name: string, runs: ProgressRun[]): void {
  const lps = median(runs.map((r) => r.linesPerSecond));
  const rss = Math.max(...runs.map((r) => r.peakRssMb));
  const ok = lps >= 50_000 && rss <= 100 && runs.every((r) => r.code === 0);
  console.log(
    `progress ${name}: ${LINES} lines, median ${Math.round(lps)} lines/s (${runs.map((r) => r.seconds.toFixed(2)).join(' ')} s; stdin read in ${runs.map((r) => r.readSeconds.toFixed(2)).join(' ')} s), peak RSS ${rss.toFixed(0)} MB, outbox ${runs.map((r) => r.outboxMessages).join('/')} msgs, exit ${runs.map((r) => r.code).join('/')} — target >= 50000 lines/s, <= 100 MB: ${ok ? 'PASS' : 'FAIL'}`,
  );
}

async function main(): Promise<void> {
  const { monitor } = buildPrograms();

  const topology = uniqueTopology();
  const up: ProgressRun[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      up.push(await runOnce(monitor, { SNF_GTOOLS_AMQP_URL: values.url, SNF_GTOOLS_EXCHANGE: topology.exchange, SNF_GTOOLS_PREFIX: topology.prefix }, `${topology.prefix}-42`));
    }
  } finally {
    await deleteTopology(values.url, topology).catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
  }
  report('broker up', up);

  const port = await freePort();
  const down: ProgressRun[] = [];
  for (let i = 0; i < RUNS; i++) down.push(await runOnce(monitor, { SNF_GTOOLS_AMQP_URL: `amqp://guest:guest@127.0.0.1:${port}` }, 'snf-42'));
  report('broker down', down);
}

await main();
