// bench/eventd: the real snf-ganeti-eventd (compiled, as installed) replaying recorded job-file versions
// by rename into a queue directory, against the local RabbitMQ (in a private vhost), compared in the same
// run with its floor: a bare amqplib confirm channel sending the same bodies.
//
// Prints: throughput (and ratio to the pipelined floor), rename-to-confirm latency p50/p99 (and the p50
// ratio to the floor's one-at-a-time confirm), eventd's peak RSS, and the start-up time to watching with
// 5,000 live job files and 100,000 archived ones.

import { spawn, type ChildProcess } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import { declareTopology, dispatcherQueues } from '../src/common/topology.js';
import { createVhost } from '../test/helpers/vhost.js';
import { fixtureBytes, fixtureVersions, freshJobVersions, makeDirs, relabelJob, ROOT, type EventdDirs, type FreshJobVersion } from '../test/helpers/eventd.js';
import { median, percentile, report } from './stats.js';

const VERSIONS = Number(process.env.BENCH_EVENTD_VERSIONS ?? 20_200);
const ROUNDS = Number(process.env.BENCH_EVENTD_ROUNDS ?? 3);
const WARMUP_VERSIONS = Number(process.env.BENCH_EVENTD_WARMUP ?? 5000);
const LATENCY_SAMPLES = Number(process.env.BENCH_EVENTD_LATENCY ?? 1500);
/** Between two latency samples, for eventd and for the floor alike. */
const SAMPLE_PAUSE_MS = 2;
const topology = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' as const };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The node options on a script's `#!` line, so that the daemon runs as installed (BENCH_EVENTD_NODE_FLAGS overrides). */
function shebangNodeFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0] ?? '';
  return first.startsWith('#!') ? first.slice(2).trim().split(/\s+/).filter((w) => w.startsWith('--')) : [];
}

function startEventdProcess(dirs: EventdDirs, url: string, metricsPort?: number): { proc: ChildProcess; watching: Promise<number>; scanned: Promise<number> } {
  const started = performance.now();
  // Settings come from the environment, as under systemd (EnvironmentFile=), not from flags.
  const main = join(ROOT, 'dist/src/eventd/main.js');
  const flags = process.env.BENCH_EVENTD_NODE_FLAGS?.split(' ').filter(Boolean) ?? shebangNodeFlags(main);
  const proc = spawn(process.execPath, [...flags, main], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      SNF_GTOOLS_SETTINGS_FILE: '/dev/null',
      SNF_GTOOLS_QUEUE_DIR: dirs.queueDir,
      SNF_GTOOLS_GANETI_DATA_DIR: dirs.dataDir,
      SNF_GTOOLS_STATE_DIR: dirs.stateDir,
      SNF_GTOOLS_OUTBOX_DIR: dirs.outboxDir,
      SNF_GTOOLS_AMQP_URL: url,
      SNF_GTOOLS_NODE_NAME: 'node1.example.test',
      SNF_GTOOLS_HEARTBEAT_INTERVAL: '3600',
      SNF_GTOOLS_LOG_LEVEL: 'info',
      ...(metricsPort ? { SNF_GTOOLS_METRICS_PORT: String(metricsPort) } : {}),
    },
  });
  let resolveWatching: (ms: number) => void = () => undefined;
  let resolveScanned: (ms: number) => void = () => undefined;
  const watching = new Promise<number>((r) => (resolveWatching = r));
  const scanned = new Promise<number>((r) => (resolveScanned = r));
  let buffer = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.includes('"watching the queue directory"')) resolveWatching(performance.now() - started);
      if (line.includes('"start-up scan done"')) resolveScanned(performance.now() - started);
    }
  });
  return { proc, watching, scanned };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

/** CPU time (user + system) a process has used so far, in ms, from /proc (10 ms resolution). */
function cpuMs(pid: number): number {
  // Fields after the `(comm)`: state is field 3, utime 14 and stime 15 of proc(5).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Resolves once a process used less than 10 ms of CPU in half a second. */
async function untilIdle(pid: number): Promise<void> {
  for (let before = cpuMs(pid); ; ) {
    await sleep(500);
    const now = cpuMs(pid);
    if (now - before < 10) return;
    before = now;
  }
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

interface Arrivals {
  /** When each message id arrived (performance.now()). */
  seen: Map<string, number>;
  /** Resolves when every one of these ids has arrived, or after `timeoutMs`; true if they all did. */
  waitFor: (ids: string[], timeoutMs: number) => Promise<boolean>;
  close: () => Promise<void>;
}

/**
 * Consumes every dispatcher queue of the vhost, noting when each message id arrived. Waiting is
 * event-driven: a bench that polled in a loop would keep a core busy and slow down the very daemon
 * and broker it measures on a 2-core machine.
 */
async function arrivals(url: string): Promise<Arrivals> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await declareTopology(ch, topology);
  await ch.prefetch(5000);
  const seen = new Map<string, number>();
  let waiter: { ids: string[]; done: (all: boolean) => void } | undefined;
  const allSeen = (ids: string[]) => ids.every((x) => seen.has(x));
  for (const q of dispatcherQueues(topology)) {
    await ch.consume(q.name, (m) => {
      if (!m) return;
      seen.set(String(m.properties.messageId), performance.now());
      if (waiter && allSeen(waiter.ids)) waiter.done(true);
    }, { noAck: true });
  }
  const waitFor = (ids: string[], timeoutMs: number) =>
    allSeen(ids)
      ? Promise.resolve(true)
      : new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => waiter?.done(false), timeoutMs);
          waiter = {
            ids,
            done: (all) => {
              clearTimeout(timer);
              waiter = undefined;
              resolve(all);
            },
          };
        });
  return { seen, waitFor, close: () => conn.close() };
}

type FloorMessage = { routingKey: string; body: unknown; messageId: string; type: string };

function floorProps(m: FloorMessage) {
  return {
    persistent: true,
    mandatory: true,
    messageId: m.messageId,
    timestamp: Math.floor(Date.now() / 1000),
    type: m.type,
    appId: 'floor',
    contentType: 'application/json',
  };
}

/** The throughput floor: the same bodies through a bare confirm channel, pipelined, no consumer attached. */
async function floorPipelined(url: string, bodies: FloorMessage[]): Promise<{ rate: number; cpuUs: number }> {
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  await declareTopology(ch, topology);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const b of bodies) {
    if (!ch.publish('ganeti', b.routingKey, Buffer.from(JSON.stringify(b.body)), floorProps(b))) await new Promise((r) => ch.once('drain', r));
  }
  await ch.waitForConfirms();
  const rate = bodies.length / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  await conn.close();
  return { rate, cpuUs: (cpu.user + cpu.system) / bodies.length };
}

/**
 * The latency floor: one message at a time, each confirmed before the next, under the conditions of
 * eventd's latency samples: the same consumer attached and the same pause between samples. Both
 * matter to the broker: with a consumer it confirms on delivery instead of after writing to disk, and
 * an idle pause lets its schedulers sleep (measured here: confirm p50 0.18 ms back to back, 0.37 ms
 * with 2 ms pauses).
 */
async function floorOneAtATime(url: string, messages: FloorMessage[], consumer: Arrivals): Promise<{ confirm: number[]; arrival: number[] }> {
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  const confirm: number[] = [];
  const arrival: number[] = [];
  for (const m of messages) {
    const start = performance.now();
    await new Promise<void>((resolve, reject) =>
      ch.publish('ganeti', m.routingKey, Buffer.from(JSON.stringify(m.body)), floorProps(m), (err) => (err ? reject(err) : resolve())),
    );
    confirm.push(performance.now() - start);
    if (await consumer.waitFor([m.messageId], 5000)) arrival.push(consumer.seen.get(m.messageId)! - start);
    await sleep(SAMPLE_PAUSE_MS);
  }
  await conn.close();
  return { confirm, arrival };
}

async function purge(url: string): Promise<void> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  for (const q of dispatcherQueues(topology)) await ch.purgeQueue(q.name);
  await conn.close();
}

/** Messages waiting in the dispatcher's queues: what the broker accepted (and confirmed). */
type Queued = { count: () => Promise<number>; close: () => Promise<void> };

async function queuedCounter(url: string): Promise<Queued> {
  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  const names = dispatcherQueues(topology).map((q) => q.name);
  return {
    count: async () => {
      let n = 0;
      for (const q of names) n += (await ch.checkQueue(q)).messageCount;
      return n;
    },
    close: () => conn.close(),
  };
}

interface BurstResult {
  versions: number;
  renamedMs: number;
  seconds: number;
  confirmed: number;
  expected: number;
  rate: number;
  /** eventd's CPU time (all its threads) per confirmed message, in µs. */
  cpuUs: number;
}

/**
 * Renames a burst of versions into the queue directory back to back and waits until the broker holds
 * every message they must produce. Ganeti writes each version to a temp file first; that is not
 * eventd's work, so the temp files are written before the clock starts and only the renames are timed.
 */
async function replayBurst(
  dirs: EventdDirs,
  burst: FreshJobVersion[],
  queued: Queued,
  eventdPid: number,
): Promise<BurstResult> {
  const expected = burst.reduce((n, s) => n + s.messages.length, 0);
  const temps = burst.map((s) => {
    const temp = join(dirs.queueDir, `job-${s.id}-4242-1.tmp`);
    writeFileSync(temp, s.bytes);
    return { temp, target: join(dirs.queueDir, `job-${s.id}`) };
  });
  const cpu0 = cpuMs(eventdPid);
  const t0 = performance.now();
  for (const { temp, target } of temps) renameSync(temp, target);
  const renamedMs = performance.now() - t0;
  const deadline = Date.now() + 300_000;
  let confirmed = 0;
  while ((confirmed = await queued.count()) < expected && Date.now() < deadline) await sleep(10);
  const seconds = (performance.now() - t0) / 1000;
  const cpuUs = ((cpuMs(eventdPid) - cpu0) * 1000) / confirmed;
  return { versions: burst.length, renamedMs, seconds, confirmed, expected, rate: confirmed / seconds, cpuUs };
}

/** A running eventd with its own queue and state directories, warmed up. */
interface WarmEventd {
  root: string;
  dirs: EventdDirs;
  proc: ChildProcess;
}

/**
 * Starts eventd on fresh directories and warms it up. A daemon runs for months, so what matters is
 * its steady state, not V8 compiling its hot paths during the first seconds (in a cold run that
 * compiling was ~0.2 s of CPU on V8's background threads, competing with the broker for the 2 cores).
 */
async function startWarmEventd(url: string, queued: Queued): Promise<WarmEventd> {
  const root = mkdtempSync(join(tmpdir(), 'bench-eventd-'));
  const dirs = makeDirs(root);
  const eventd = startEventdProcess(dirs, url);
  await eventd.watching;
  await replayBurst(dirs, freshJobVersions(WARMUP_VERSIONS, 50_000), queued, eventd.proc.pid!);
  await purge(url);
  return { root, dirs, proc: eventd.proc };
}

async function throughputAndLatency(url: string): Promise<void> {
  const queued = await queuedCounter(url);
  // The floor is warmed up the same way.
  const floorWarm = freshJobVersions(WARMUP_VERSIONS, 50_000).flatMap((s) => s.messages);
  await floorPipelined(url, floorWarm);
  await purge(url);

  // Throughput: every version a fresh job (nothing can be coalesced), renamed back to back. Counted
  // as messages in the queues (the broker accepted them), with no consumer attached, as for the floor.
  // Several rounds, each an eventd burst then a floor burst, and the medians are compared: on a
  // shared 2-core machine one burst of either can be 20% off (measured: the floor alone ranged over
  // 22,000-31,000 msg/s in consecutive runs). Each round has its own eventd and queue directory, so
  // that no round starts with the previous rounds' 20,000 jobs still live (more than Ganeti's queue
  // holds); the peak RSS reported is the highest of the rounds.
  const rounds: { eventd: BurstResult; floor: { rate: number; cpuUs: number }; rssMb: number }[] = [];
  let eventd: WarmEventd | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    if (eventd) {
      await stopProcess(eventd.proc);
      rmSync(eventd.root, { recursive: true, force: true });
    }
    eventd = await startWarmEventd(url, queued);
    const burst = freshJobVersions(VERSIONS, 100_000);
    const result = await replayBurst(eventd.dirs, burst, queued, eventd.proc.pid!);
    // The floor runs on a machine where eventd is idle again (done with its records and logs).
    await untilIdle(eventd.proc.pid!);
    await purge(url);
    const floor = await floorPipelined(url, burst.flatMap((s) => s.messages));
    await purge(url);
    rounds.push({ eventd: result, floor, rssMb: peakRssMb(eventd.proc.pid!) });
  }
  await queued.close();
  const { dirs, proc, root } = eventd!;
  await purge(url);
  const consumer = await arrivals(url);

  // Latency: one rename at a time; rename → arrival at a consumer, an upper bound of rename → confirm
  // (it adds the broker's delivery to the consumer). As in the burst, Ganeti's writing of the temp
  // file is done before the clock starts (creating a file here costs ~0.3 ms, more than eventd's part).
  await sleep(500);
  const latencies: number[] = [];
  for (const s of freshJobVersions(LATENCY_SAMPLES, 900_000, true)) {
    const temp = join(dirs.queueDir, `job-${s.id}-4242-1.tmp`);
    writeFileSync(temp, s.bytes);
    await sleep(SAMPLE_PAUSE_MS);
    const start = performance.now();
    renameSync(temp, join(dirs.queueDir, `job-${s.id}`));
    const ids = s.messages.map((m) => m.messageId);
    if (await consumer.waitFor(ids, 5000)) latencies.push(Math.max(...ids.map((x) => consumer.seen.get(x)!)) - start);
  }
  const rss = Math.max(peakRssMb(proc.pid!), ...rounds.map((r) => r.rssMb));
  await stopProcess(proc);

  // The floor's message ids are its own, so that the consumer cannot count an eventd message for one.
  const single = await floorOneAtATime(
    url,
    floorWarm.slice(0, LATENCY_SAMPLES).map((m) => ({ ...m, messageId: `floor:${m.messageId}` })),
    consumer,
  );
  await consumer.close();
  await purge(url);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  const floorP50 = percentile(single.confirm, 50);
  const byRate = [...rounds].sort((a, b) => a.eventd.rate - b.eventd.rate);
  const mid = byRate[Math.floor((byRate.length - 1) / 2)]!;
  const floorRate = median(rounds.map((r) => r.floor.rate));
  const missing = rounds.reduce((n, r) => n + r.eventd.expected - r.eventd.confirmed, 0);
  report(
    `eventd throughput (median of ${rounds.length} rounds): ${mid.eventd.versions} job-file versions renamed in ${mid.eventd.renamedMs.toFixed(0)} ms, ` +
      `${mid.eventd.confirmed} messages confirmed in ${mid.eventd.seconds.toFixed(2)} s = ${mid.eventd.rate.toFixed(0)} msg/s (${missing} missing in all rounds); ` +
      `floor pipelined ${floorRate.toFixed(0)} msg/s; ratio ${(mid.eventd.rate / floorRate).toFixed(2)} (target >= 0.5); ` +
      `per round ${rounds.map((r) => `${r.eventd.rate.toFixed(0)}/${r.floor.rate.toFixed(0)}`).join(', ')}`,
  );
  // Less sensitive to a busy machine than the rates: what each side spent per message on its own CPU.
  report(
    `eventd CPU per message: ${median(rounds.map((r) => r.eventd.cpuUs)).toFixed(0)} µs (read + parse + build + publish + confirm); ` +
      `floor publisher ${median(rounds.map((r) => r.floor.cpuUs)).toFixed(0)} µs (publish + confirm)`,
  );
  report(
    `eventd latency rename->confirm, as rename->arrival at a consumer (n=${latencies.length}): p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms; floor one-at-a-time confirm p50 ${floorP50.toFixed(2)} ms, ` +
      `p99 ${percentile(single.confirm, 99).toFixed(2)} ms (publish->arrival p50 ${percentile(single.arrival, 50).toFixed(2)} ms); p50 ratio ${(p50 / floorP50).toFixed(2)} (target <= 3)`,
  );
  report(`eventd peak RSS: ${rss.toFixed(1)} MB (target <= 100)`);
  rmSync(root, { recursive: true, force: true });
}

async function startup(url: string): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'bench-eventd-start-'));
  const dirs = makeDirs(root);
  const versions = fixtureVersions();
  // 100,000 archived jobs (hard links to one finished job file: content is not read when the record
  // says they are done) and 5,000 live ones with real, varied content.
  for (let id = 1; id <= 100_000; id++) {
    const bucket = join(dirs.queueDir, 'archive', String(Math.floor(id / 10000)));
    // One source file per bucket: ext4 allows 65,000 links to one inode.
    const source = join(root, `archived-job-${Math.floor(id / 10000)}`);
    if (id % 10000 === 0 || id === 1) {
      mkdirSync(bucket, { recursive: true });
      writeFileSync(source, fixtureBytes('jobs/job-5/v007.json'));
    }
    linkSync(source, join(bucket, `job-${id}`));
  }
  for (let i = 0; i < 5000; i++) {
    const v = versions[i % versions.length]!;
    const id = 100_001 + i;
    writeFileSync(join(dirs.queueDir, `job-${id}`), relabelJob(fixtureBytes(v.file), id));
  }
  const first = startEventdProcess(dirs, url);
  const firstWatching = await first.watching;
  const firstScanned = await first.scanned;
  await sleep(3000);
  await stopProcess(first.proc);
  const second = startEventdProcess(dirs, url);
  const secondWatching = await second.watching;
  const secondScanned = await second.scanned;
  await stopProcess(second.proc);
  report(
    `eventd start-up with 5000 live and 100000 archived job files: to watching ${firstWatching.toFixed(0)} ms (first start), ` +
      `${secondWatching.toFixed(0)} ms (restart) (target <= 1000); start-up scan done at ${firstScanned.toFixed(0)} / ${secondScanned.toFixed(0)} ms`,
  );
  rmSync(root, { recursive: true, force: true });
}

export async function benchEventd(): Promise<void> {
  const vhost = await createVhost();
  try {
    await throughputAndLatency(vhost.url);
    await startup(vhost.url);
  } finally {
    await vhost.remove();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await benchEventd();
