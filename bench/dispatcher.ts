// bench/dispatcher: snf-dispatcher consuming a realistic backlog (op, net, network, progress, cluster
// and heartbeat messages for many VMs) from the local RabbitMQ into SQLite and into PostgreSQL, timed
// from the consumer's start until every message is committed and acknowledged. In the same run, its
// floor: the same row writes done by a bare loop against the same database, one transaction per
// message, no AMQP. Batching is what lets the dispatcher beat its floor despite the messaging.
//
// `node --import tsx bench/dispatcher.ts`; BENCH_DISPATCHER_VMS (default 1350, about 52,500 messages)
// and BENCH_DISPATCHER_DB=sqlite|postgres narrow a run.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import amqp from 'amqplib';
import knex from 'knex';
import { createLogger } from '../src/common/log.js';
import { declareTopology, deadLetterExchange, dispatcherQueues, heartbeatQueue, type TopologyOptions } from '../src/common/topology.js';
import { Consumer } from '../src/dispatcher/consumer.js';
import { migrate, openDatabase, type Database } from '../src/dispatcher/db.js';
import { decodeMessage, type DispatcherMessage } from '../src/dispatcher/messages.js';
import { dispatcherSettings } from '../src/dispatcher/settings.js';
import { Store } from '../src/dispatcher/store.js';
import { syntheticStream, type StreamMessage } from '../test/fixtures/dispatcher/stream.js';
import { report } from './stats.js';

const AMQP_URL = process.env['BENCH_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672/';
const PG_ADMIN_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const VMS = Number(process.env['BENCH_DISPATCHER_VMS'] ?? 1350);
const KINDS = (process.env['BENCH_DISPATCHER_DB'] ?? 'sqlite,postgres').split(',');
// The daemon's defaults.
const PREFETCH = dispatcherSettings.prefetch.default;
const BATCH = dispatcherSettings.batchSize.default;

const id = () => Math.random().toString(16).slice(2, 10);
const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);

/** A database that exists for one measurement. */
async function scratch(kind: string): Promise<{ url: string; drop: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'bench-disp-'));
    return { url: join(dir, 'dispatcher.sqlite'), drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `bench_disp_${id()}`;
  const admin = knex({ client: 'pg', connection: PG_ADMIN_URL });
  await admin.raw('CREATE DATABASE ??', [name]);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [name]);
      await admin.destroy();
    },
  };
}

async function openMigrated(url: string): Promise<Database> {
  const db = openDatabase(url);
  await migrate(db);
  return db;
}

/** Publishes the backlog (untimed) to a fresh exchange and prefix; returns the topology and a cleanup. */
async function fillQueues(messages: readonly StreamMessage[], topology: TopologyOptions) {
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  await declareTopology(channel, topology);
  for (const [i, m] of messages.entries()) {
    const ok = channel.publish(topology.exchange, m.routingKey, Buffer.from(JSON.stringify(m.body)), {
      persistent: true,
      messageId: m.messageId,
      type: m.type,
      appId: 'snf-cyclades-gtools',
      contentType: 'application/json',
    });
    if (!ok || i % 5000 === 4999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  return {
    waiting: async () => {
      let n = 0;
      for (const q of dispatcherQueues(topology)) n += (await channel.checkQueue(q.name)).messageCount + (await channel.checkQueue(q.deadLetterName)).messageCount;
      return n + (await channel.checkQueue(heartbeatQueue(topology).name)).messageCount;
    },
    cleanup: async () => {
      for (const q of dispatcherQueues(topology)) {
        await channel.deleteQueue(q.name);
        await channel.deleteQueue(q.deadLetterName);
      }
      await channel.deleteQueue(heartbeatQueue(topology).name);
      await channel.deleteExchange(topology.exchange);
      await channel.deleteExchange(deadLetterExchange(topology.exchange));
      await connection.close();
    },
  };
}

/** Messages per second through the broker, from the consumer's start until the last ack. */
async function throughDispatcher(kind: string, messages: readonly StreamMessage[], topology: TopologyOptions): Promise<number> {
  const queues = await fillQueues(messages, topology);
  const { url, drop } = await scratch(kind);
  const db = await openMigrated(url);
  let settled = 0;
  let failed = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const consumer = new Consumer(
    new Store(db, { prefix: topology.prefix, strict: false }),
    {
      amqpUrls: [AMQP_URL],
      topology,
      prefetch: PREFETCH,
      batchSize: BATCH,
      onOutcome: (_d, outcome) => {
        if (outcome.kind === 'retry') return;
        if (outcome.kind === 'dead-letter') failed++;
        if (++settled === messages.length) done();
      },
    },
    createLogger({ level: 'warn', name: 'bench', destination: 2 }),
  );
  const start = performance.now();
  await consumer.start();
  await finished;
  const ms = performance.now() - start;
  await consumer.stop();
  const left = await queues.waiting();
  if (failed > 0 || left > 0) throw new Error(`${kind}: ${failed} dead-lettered, ${left} left in the queues`);
  await db.knex.destroy();
  await drop();
  await queues.cleanup();
  return rate(messages.length, ms);
}

/** The floor: the dispatcher's own row writes, one transaction per message, in a bare loop. */
async function floor(kind: string, messages: readonly DispatcherMessage[], prefix: string): Promise<number> {
  const { url, drop } = await scratch(kind);
  const db = await openMigrated(url);
  const store = new Store(db, { prefix, strict: false });
  const start = performance.now();
  for (const m of messages) await store.applyBatch([m]);
  const ms = performance.now() - start;
  await db.knex.destroy();
  await drop();
  return rate(messages.length, ms);
}

export async function benchDispatcher(): Promise<void> {
  const prefix = `b${id()}`;
  const { messages } = syntheticStream({ prefix, cluster: 'bench.example.test', vms: VMS, networks: 8, seed: 2024 });
  const decoded = messages.map((m) => {
    const d = decodeMessage(Buffer.from(JSON.stringify(m.body)));
    if (!d.ok) throw new Error(`${m.messageId}: ${d.reason}`);
    return d.message;
  });
  const kinds = new Map<string, number>();
  for (const m of messages) kinds.set(m.type, (kinds.get(m.type) ?? 0) + 1);
  report(`dispatcher backlog: ${messages.length} messages for ${VMS} VMs (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')})`);
  for (const kind of KINDS) {
    const topology: TopologyOptions = { exchange: `bench-${id()}`, prefix, queueType: 'classic' };
    const through = await throughDispatcher(kind, messages, topology);
    const bare = await floor(kind, decoded, prefix);
    report(`dispatcher ${kind}: ${through} msg/s from the queues, committed and acked (prefetch ${PREFETCH}, batch ${BATCH}); floor ${bare} msg/s (one transaction per message, no AMQP); ratio ${(through / bare).toFixed(1)}x`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchDispatcher();
