// The real programs of the fault tests, run as processes against a private RabbitMQ cluster: eventd
// (test/helpers/eventd.ts), the dispatcher (its entry point under tsx), the progress monitor and the
// hook (compiled, as installed: test/hooks/build.ts). Their JSON log lines are collected, each with
// pino's `time`, which is how the tests see which broker a program is on and when it reconnected.

import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { connectFirst } from '../../src/dispatcher/admin.js';
import { declareTopology, type TopologyOptions } from '../../src/common/topology.js';
import { ROOT, startEventd, type EventdDirs, type RunningEventd } from '../helpers/eventd.js';
import { JsonLog, type LogLine } from '../helpers/json-log.js';
import { buildPrograms, ganetiEnv } from '../hooks/build.js';
import { MASTER, PREFIX, type Delivered, type HookRun, type MonitorRun } from './scenario.js';

const run = promisify(execFile);

export type { LogLine };

/** A process whose JSON log lines (stdout and stderr) are collected; the shape of RunningEventd. */
export type RunningProgram = Omit<RunningEventd, 'stderr'>;

export function spawnLogged(command: string, args: string[], env: NodeJS.ProcessEnv, stdin: 'ignore' | 'pipe' = 'ignore'): RunningProgram {
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: [stdin, 'pipe', 'pipe'] });
  const log = new JsonLog();
  // The monitor's stderr also carries its `[MONITOR] …` echo of the stream: only JSON lines count.
  log.follow(proc.stdout!, 'skip');
  log.follow(proc.stderr!, 'skip');
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    lines: log.lines,
    exited,
    waitForLog(pred, timeoutMs = 60_000) {
      return log.waitFor(pred, timeoutMs, { timeout: () => `log line not seen within ${timeoutMs} ms; last lines:\n${log.tail()}` });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** The environment of a spawned program: none of the caller's SNF_GTOOLS_*, no settings file. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SNF_GTOOLS_')));
  return { ...env, SNF_GTOOLS_SETTINGS_FILE: '/dev/null', ...extra };
}

export interface Deployment {
  urls: string[];
  topology: TopologyOptions;
}

const commonArgs = (d: Deployment): string[] => ['--amqp-url', d.urls.join(','), '--exchange', d.topology.exchange, '--prefix', d.topology.prefix, '--queue-type', d.topology.queueType];

export function runEventd(d: Deployment, dirs: EventdDirs, extra: string[] = []): RunningEventd {
  // startEventd gives --amqp-url once; a list setting takes the comma-separated URLs as they are.
  return startEventd(dirs, d.urls.join(','), ['--exchange', d.topology.exchange, '--prefix', d.topology.prefix, '--queue-type', d.topology.queueType, '--heartbeat-interval', '5', '--rescan-interval', '5', ...extra], MASTER);
}

export function runDispatcher(d: Deployment, dbUrl: string): RunningProgram {
  const main = join(ROOT, 'src', 'dispatcher', 'main.ts');
  // Debug level: every settled delivery is logged with its message id, which the tests count.
  const args = ['--import', 'tsx', main, ...commonArgs(d), '--db-url', dbUrl, '--prefetch', '50', '--batch-size', '50', '--log-level', 'debug'];
  return spawnLogged(process.execPath, args, cleanEnv({}));
}

/** The monitor as snf-image runs it, stream fed one object every `gapMs`; resolves with its exit code. */
export function runMonitor(d: Deployment, outboxDir: string, m: MonitorRun, gapMs: number): { program: RunningProgram; done: Promise<number | string> } {
  const env = cleanEnv({
    PATH: '/sbin:/bin:/usr/sbin:/usr/bin',
    SNF_GTOOLS_AMQP_URL: d.urls.join(','),
    SNF_GTOOLS_EXCHANGE: d.topology.exchange,
    SNF_GTOOLS_PREFIX: d.topology.prefix,
    SNF_GTOOLS_QUEUE_TYPE: d.topology.queueType,
    SNF_GTOOLS_OUTBOX_DIR: outboxDir,
    SNF_GTOOLS_LOG_LEVEL: 'debug',
  });
  const program = spawnLogged(buildPrograms().monitor, [m.instance], env, 'pipe');
  const stdin = program.proc.stdin!;
  stdin.on('error', () => undefined);
  const done = (async () => {
    for (const line of m.lines) {
      stdin.write(`${line}\n`);
      await new Promise((r) => setTimeout(r, gapMs));
    }
    stdin.end();
    return program.exited;
  })();
  return { program, done };
}

/** The hook as Ganeti runs it: a cleared environment with the fixture's variables; resolves when it exits. */
export async function runHook(h: HookRun, outboxDir: string): Promise<void> {
  const env = ganetiEnv(h.env, { SNF_GTOOLS_SETTINGS_FILE: '/dev/null', SNF_GTOOLS_OUTBOX_DIR: outboxDir, SNF_GTOOLS_NODE_NAME: MASTER, SNF_GTOOLS_PREFIX: PREFIX });
  await run(buildPrograms().hook, [], { env, cwd: '/', timeout: 60_000 });
}

// ---- what the logs tell ----

/** The broker URL of a "connected" line: the publisher's (eventd, monitor) or the dispatcher's consumer. */
export function connectedUrl(line: LogLine): string | undefined {
  if (line['msg'] === 'connected to AMQP broker' && typeof line['url'] === 'string') return line['url'];
  if (line['msg'] === 'consuming' && typeof line['broker'] === 'string') return line['broker'];
  return undefined;
}

/** The connections a program made, in order: broker URL and its log time (ms; pino writes ISO times). */
export const connections = (p: { lines: LogLine[] }): { url: string; time: number }[] =>
  p.lines.flatMap((l) => {
    const url = connectedUrl(l);
    return url === undefined ? [] : [{ url, time: Date.parse(String(l['time'])) }];
  });

/** Log times (ms) at which a program noticed it lost its broker connection. */
export const disconnections = (p: { lines: LogLine[] }): number[] =>
  p.lines.flatMap((l) => (l['msg'] === 'disconnected from AMQP broker' || l['msg'] === 'lost the broker connection; reconnecting' ? [Date.parse(String(l['time']))] : []));

/** Ids of the deliveries a dispatcher settled (applied or ignored), one entry per delivery. */
export const settledIds = (p: { lines: LogLine[] }): string[] =>
  p.lines.flatMap((l) => ((l['msg'] === 'message applied' || l['msg'] === 'message ignored') && typeof l['messageId'] === 'string' ? [l['messageId']] : []));

export const appliedIds = (p: { lines: LogLine[] }): string[] =>
  p.lines.flatMap((l) => (l['msg'] === 'message applied' && typeof l['messageId'] === 'string' ? [l['messageId']] : []));

export const deadLettered = (p: { lines: LogLine[] }): LogLine[] => p.lines.filter((l) => l['msg'] === 'message dead-lettered');

// ---- the audit queue: a copy of everything the exchange routed ----

export const auditQueue = (t: TopologyOptions): string => `${t.prefix}-audit`;

/** Declares the topology and a quorum queue bound to every key of the exchange (one copy of each routed message). */
export async function declareWithAudit(url: string, topology: TopologyOptions): Promise<void> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    await declareTopology(ch, topology);
    await ch.assertQueue(auditQueue(topology), { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(auditQueue(topology), topology.exchange, '#');
    await ch.close();
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Messages waiting in the topology's event and heartbeat queues (ready ones; unacknowledged are not counted). */
export async function queuedCount(urls: string[], names: string[]): Promise<number> {
  const conn = await connectFirst(urls);
  conn.on('error', () => undefined);
  try {
    const ch = await conn.createChannel();
    let total = 0;
    for (const q of names) total += (await ch.checkQueue(q)).messageCount;
    await ch.close();
    return total;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Takes every message out of the audit queue (through the first node that answers). */
export async function drainAudit(urls: string[], topology: TopologyOptions): Promise<Delivered[]> {
  const conn = await connectFirst(urls);
  conn.on('error', () => undefined);
  const out: Delivered[] = [];
  try {
    const ch = await conn.createChannel();
    for (let msg = await ch.get(auditQueue(topology), { noAck: true }); msg !== false; msg = await ch.get(auditQueue(topology), { noAck: true })) {
      out.push({
        messageId: String(msg.properties.messageId),
        routingKey: msg.fields.routingKey,
        type: String(msg.properties.type),
        body: JSON.parse(msg.content.toString('utf8')) as Record<string, unknown>,
      });
    }
    await ch.close();
  } finally {
    await conn.close().catch(() => undefined);
  }
  return out;
}
