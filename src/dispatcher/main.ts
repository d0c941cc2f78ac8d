#!/usr/bin/env node
// snf-dispatcher's entry point: settings, logger, signals, and the operator subcommands. Without a
// subcommand it runs the daemon in the foreground until SIGTERM.

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { createLogger, type Logger } from '../common/log.js';
import { redactText } from '../common/redact.js';
import { envName, loadSettings, SettingsError, warnIfSettingsFileExposed, type Settings } from '../common/settings.js';
import { readAmqpTls, type AmqpTls } from '../common/tls.js';
import type { QueueType, TopologyOptions } from '../common/topology.js';
import { splitArgv } from '../common/args.js';
import { packageVersion } from '../common/version.js';
import { allQueues, connectFirst, drainQueue, purgeQueues, queueCounts, retryDeadLetters } from './admin.js';
import { Consumer, backoffDelay } from './consumer.js';
import { DEFAULT_DATABASE_OPTIONS, isTransientDbError, migrate, openDatabase, type Database } from './db.js';
import { dispatcherSettings, FLAG_ONLY } from './settings.js';
import { Store } from './store.js';
import * as notify from '../common/notify.js';
import { createDispatcherMetrics, createRegistry, startMetricsServer, type DispatcherMetrics } from '../common/metrics.js';
import { heartbeats, networks, servers, table } from './views.js';

const PROGRAM = 'snf-dispatcher';

/** The settings, and the TLS files they name, read once at start. */
type DispatcherSettings = Settings<typeof dispatcherSettings> & { amqpTls: AmqpTls | undefined };

const USAGE = `Usage: $0 [command] [options]

Without a command: consume the Ganeti event queues and keep the database true to Ganeti (foreground).

Commands:
  servers                      the VMs in the database (--json for scripts)
  networks                     the networks and their backend networks (--json)
  queues                       messages waiting in every queue and -dl queue (--json)
  drain-queue <queue>          discard every message waiting in one of our queues (asks; --yes)
  purge-queues                 delete every queue and -dl queue, empty or not (asks; --yes)
  retry-dead-letters [queue]   move dead-lettered messages back to their routing key, once (asks; --yes)
  status-check                 per cluster: the eventd master, when last heard; exit 1 if one is silent`;

const COMMANDS = ['servers', 'networks', 'queues', 'drain-queue', 'purge-queues', 'retry-dead-letters', 'status-check'];

class UsageError extends Error {}

/** --yes and --json are typed by an operator; a variable or a line in the settings file must not set them. */
function withoutFlagOnly(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; readFile: (path: string) => string | undefined } {
  const hidden = new Set<string>(FLAG_ONLY.map(envName));
  const cleanEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !hidden.has(k)));
  return {
    env: cleanEnv,
    readFile: (path) => {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new SettingsError(`settings file ${path}: ${(err as Error).message}`);
      }
      return text
        .split(/\r?\n/)
        .filter((line) => !hidden.has(/^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1] ?? ''))
        .join('\n');
    },
  };
}

function topologyOf(s: DispatcherSettings): TopologyOptions {
  return { exchange: s.exchange, prefix: s.prefix, queueType: s.queueType as QueueType };
}

async function confirm(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY) throw new UsageError('not asking without a terminal: pass --yes to confirm');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const answer = await rl.question(`${question} [y/N] `);
  rl.close();
  return /^y(es)?$/i.test(answer.trim());
}

const print = (text: string) => process.stdout.write(text);
const printJson = (value: unknown) => print(JSON.stringify(value, null, 2) + '\n');

/** Opens the database, waiting for it when it is down (a PostgreSQL server still starting, say). */
async function openReady(s: DispatcherSettings, log: Logger, signal: AbortSignal): Promise<Database> {
  const db = openDatabase(s.dbUrl, { ...DEFAULT_DATABASE_OPTIONS, log });
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(db);
      return db;
    } catch (err) {
      const code = String((err as { code?: unknown }).code ?? '');
      // Two dispatchers starting together race for the migration lock and table; that settles itself.
      const race = (err as Error).name === 'MigrationLocked' || code === '23505' || code === '42P07';
      if (signal.aborted || code === 'SQLITE_CANTOPEN' || !(race || isTransientDbError(err))) {
        await db.knex.destroy();
        throw err;
      }
      const delay = backoffDelay(attempt, 200, 10_000);
      log.warn({ err, retryInMs: delay }, 'database not ready');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

async function daemon(s: DispatcherSettings, log: Logger): Promise<void> {
  const stopping = new AbortController();
  let consumer: Consumer | null = null;
  let db: Database | null = null;
  let exiting = false;
  const onSignal = (signal: string) => {
    if (exiting) return;
    exiting = true;
    log.info({ signal }, 'stopping: finishing the batch in hand');
    stopping.abort();
    const told = notify.stopping('stopping: finishing the batch in hand');
    void (async () => {
      await Promise.race([told, new Promise((r) => setTimeout(r, 2000))]);
      await consumer?.stop();
      await db?.knex.destroy();
      log.info('stopped');
      process.exit(0);
    })().catch((err: unknown) => {
      log.fatal({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  log.info({ database: redactText(s.dbUrl), prefix: s.prefix, strict: s.strict, prefetch: s.prefetch, batchSize: s.batchSize }, 'starting');
  db = await openReady(s, log, stopping.signal);
  if (stopping.signal.aborted) return;
  const store = new Store(db, { prefix: s.prefix, strict: s.strict });
  const openDb = db;
  const metrics = s.metricsPort === undefined ? undefined : await serveMetrics(s, openDb);
  const counts = { applied: 0, ignored: 0, dead_lettered: 0, retried: 0 };
  let lastError = '';
  let connections = 0;
  consumer = new Consumer(
    store,
    {
      amqpUrls: s.amqpUrl,
      tls: s.amqpTls,
      topology: topologyOf(s),
      prefetch: s.prefetch,
      batchSize: s.batchSize,
      onOutcome: (delivery, outcome) => {
        const name = outcome.kind === 'ack' ? outcome.result : outcome.kind === 'dead-letter' ? 'dead_lettered' : 'retried';
        counts[name]++;
        if (outcome.kind !== 'ack') lastError = `${outcome.kind} on ${delivery.queue}: ${outcome.reason}`;
        metrics?.outcome(delivery.queue, name);
      },
      onTransaction: (seconds) => metrics?.transactionSeconds.observe(seconds),
      onConnection: (connected) => {
        if (connected && connections++ > 0) metrics?.reconnects.inc();
        metrics?.connected.set(connected ? 1 : 0);
        if (!connected) lastError = 'broker connection lost';
      },
    },
    log,
  );
  await consumer.start();
  if (stopping.signal.aborted) return;
  notify.startWatchdog(() => !exiting);
  const statusLine = () =>
    `consuming prefix ${s.prefix} into ${openDb.dialect}: ${counts.applied} applied, ${counts.ignored} ignored, ` +
    `${counts.dead_lettered} dead-lettered, ${counts.retried} held for retry${lastError ? `; last problem: ${lastError}` : ''}`;
  await notify.ready(statusLine());
  setInterval(() => void notify.status(statusLine()), 10_000).unref();
}

/** The metrics endpoint; heartbeat ages are read from the database at scrape time. */
async function serveMetrics(s: DispatcherSettings, db: Database): Promise<DispatcherMetrics> {
  const registry = createRegistry(PROGRAM);
  const metrics = createDispatcherMetrics(registry, {
    heartbeatAges: async () =>
      (await heartbeats(db, s.maxSilence)).flatMap((h) => (h.lastAgeSeconds === null ? [] : [{ cluster: h.cluster, ageSeconds: h.lastAgeSeconds }])),
  });
  await startMetricsServer({ registry, host: s.metricsHost, port: s.metricsPort! });
  return metrics;
}

async function withDb<T>(s: DispatcherSettings, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = openDatabase(s.dbUrl);
  try {
    await migrate(db);
    return await fn(db);
  } finally {
    await db.knex.destroy();
  }
}

async function withBroker<T>(s: DispatcherSettings, fn: (connection: Awaited<ReturnType<typeof connectFirst>>) => Promise<T>): Promise<T> {
  const connection = await connectFirst(s.amqpUrl, s.amqpTls);
  connection.on('error', () => undefined);
  try {
    return await fn(connection);
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Runs an operator command; returns the exit code. */
async function command(name: string, args: string[], s: DispatcherSettings): Promise<number> {
  const topology = topologyOf(s);
  const maxArgs = name === 'drain-queue' || name === 'retry-dead-letters' ? 1 : 0;
  if (args.length > maxArgs) throw new UsageError(`${name}: unexpected argument ${JSON.stringify(args[maxArgs])}`);
  switch (name) {
    case 'servers': {
      const rows = await withDb(s, servers);
      if (s.json) printJson(rows);
      else {
        print(
          table(
            ['NAME', 'CLUSTER', 'STATE', 'BUILD%', 'JOB', 'OPCODE', 'STATUS', 'BACKENDTIME', 'NICS', 'DELETED'],
            rows.map((v) => [
              v.name,
              v.cluster,
              v.operstate,
              v.buildpercentage,
              v.job.id,
              v.job.opcode,
              v.job.status,
              v.backendtime,
              v.nics.map((n) => `${n.index}:${n.ipv4 ?? n.mac}${n.network ? '@' + n.network : ''}`).join(',') || null,
              v.deleted,
            ]),
          ),
        );
      }
      return 0;
    }
    case 'networks': {
      const rows = await withDb(s, networks);
      if (s.json) printJson(rows);
      else {
        print(
          table(
            ['NAME', 'STATE', 'SUBNET', 'GATEWAY', 'BACKENDS', 'RESERVED', 'IN USE', 'DELETED'],
            rows.map((n) => [
              n.name,
              n.operstate,
              n.subnet,
              n.gateway,
              n.backends.map((b) => `${b.cluster}:${b.operstate}`).join(',') || null,
              n.reserved.join(',') || null,
              n.inUse.length,
              n.deleted,
            ]),
          ),
        );
      }
      return 0;
    }
    case 'status-check': {
      const rows = await withDb(s, (db) => heartbeats(db, s.maxSilence));
      if (s.json) printJson(rows);
      else if (rows.length === 0) print('no cluster known yet: no event or heartbeat recorded\n');
      else {
        print(
          table(
            ['CLUSTER', 'MASTER', 'MASTER HEARD (s ago)', 'LAST NODE', 'ROLE', 'OUTBOX', 'LAST HEARD (s ago)', 'STATUS'],
            rows.map((h) => [h.cluster, h.master, h.masterAgeSeconds, h.lastNode, h.lastRole, h.lastOutbox, h.lastAgeSeconds, h.silent ? 'SILENT' : 'ok']),
          ),
        );
      }
      return rows.some((h) => h.silent) ? 1 : 0;
    }
    case 'queues': {
      const rows = await withBroker(s, (c) => queueCounts(c, topology));
      if (s.json) printJson(rows);
      else print(table(['QUEUE', 'MESSAGES', 'CONSUMERS'], rows.map((q) => [q.queue, q.messages ?? 'missing', q.consumers])));
      return 0;
    }
    case 'drain-queue': {
      const queue = args[0];
      if (queue === undefined) throw new UsageError('drain-queue: which queue? (see the queues command)');
      if (!allQueues(topology).includes(queue)) throw new UsageError(`drain-queue: ${JSON.stringify(queue)} is not one of our queues: ${allQueues(topology).join(', ')}`);
      if (!(await confirm(`Discard every message waiting in ${queue}?`, s.yes))) return 1;
      print(`${queue}: ${await withBroker(s, (c) => drainQueue(c, queue))} messages discarded\n`);
      return 0;
    }
    case 'purge-queues': {
      if (!(await confirm(`Delete every queue of prefix ${s.prefix}, with the messages in them?`, s.yes))) return 1;
      for (const q of await withBroker(s, (c) => purgeQueues(c, topology))) print(`${q.queue}: deleted with ${q.messages} messages\n`);
      return 0;
    }
    case 'retry-dead-letters': {
      const mains = allQueues(topology).filter((q) => q.includes('-events-') && !q.endsWith('-dl'));
      const target = args[0];
      if (target !== undefined && !mains.includes(target.replace(/-dl$/, ''))) {
        throw new UsageError(`retry-dead-letters: ${JSON.stringify(target)} is not one of our event queues: ${mains.join(', ')}`);
      }
      const queues = target === undefined ? mains : [target.replace(/-dl$/, '')];
      if (!(await confirm(`Move the dead-lettered messages of ${queues.join(', ')} back to their queues?`, s.yes))) return 1;
      await withBroker(s, async (c) => {
        for (const q of queues) {
          const r = await retryDeadLetters(c, q, s.exchange);
          print(`${r.queue}: ${r.moved} moved back, ${r.kept} left (already retried once)\n`);
        }
      });
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(name)} (commands: ${COMMANDS.join(', ')})`);
  }
}


async function main(): Promise<void> {
  const { flags, positionals } = splitArgv(process.argv.slice(2), dispatcherSettings);
  let settings: DispatcherSettings;
  try {
    const loaded = await loadSettings(dispatcherSettings, {
      argv: flags,
      ...withoutFlagOnly(process.env),
      scriptName: PROGRAM,
      usage: USAGE,
      version: packageVersion(),
    });
    settings = { ...loaded, amqpTls: readAmqpTls(loaded) };
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`${PROGRAM}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const [name, ...args] = positionals;
  // Commands write their result to stdout, so their log lines go to stderr.
  const log = createLogger({ level: settings.logLevel, name: PROGRAM, ...(name === undefined ? {} : { destination: 2 }) });
  warnIfSettingsFileExposed(log, settings.settingsFile);
  if (name === undefined) {
    try {
      await daemon(settings, log);
    } catch (err) {
      log.fatal({ err }, 'the dispatcher could not start');
      process.exit(1);
    }
    return;
  }
  try {
    process.exitCode = await command(name, args, settings);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${PROGRAM}: ${err.message}\n`);
      process.exitCode = 2;
    } else {
      log.error({ err }, `${name} failed`);
      process.exitCode = 1;
    }
  }
}

await main();
