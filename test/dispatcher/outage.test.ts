// The database goes away in the middle of a stream: nothing is acknowledged while it is down, the
// dispatcher retries with backoff instead of looping, and once it is back every message is applied.
// PostgreSQL: a private cluster that is really stopped and started. SQLite: another connection holds
// the write lock past the busy timeout.

import knex from 'knex';
import t from 'tap';
import { migrate, openDatabase } from '../../src/dispatcher/db.js';
import { scratchBroker, scratchDir, snapshot, waitFor } from '../fixtures/dispatcher/helpers.js';
import { privatePostgres } from '../fixtures/dispatcher/postgres.js';
import { expectedState, settled, startConsumer, type Running } from '../fixtures/dispatcher/running.js';
import { syntheticStream } from '../fixtures/dispatcher/stream.js';

const acks = (r: Running) => r.outcomes.filter((o) => o.outcome.kind === 'ack').length;
const retries = (r: Running) => r.outcomes.filter((o) => o.outcome.kind === 'retry').length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('postgres stopped mid-stream', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix } = broker.topology;
  const pg = await privatePostgres(t);
  const db = openDatabase(pg.url, { lockTimeoutMs: 2000 });
  await migrate(db);
  t.teardown(() => db.knex.destroy());
  const { messages } = syntheticStream({ prefix, cluster: 'c1.example.test', vms: 30, seed: 21 });
  const half = Math.floor(messages.length / 2);
  const running = await startConsumer(t, broker, db, { batchSize: 25, prefetch: 25 });

  for (const m of messages.slice(0, half)) broker.publish(m);
  await waitFor(() => settled(running) === half, 20_000, 'the first half applied');
  await pg.stop();
  for (const m of messages.slice(half)) broker.publish(m);
  await waitFor(() => retries(running) >= 3, 20_000, 'retries while the database is down');
  const acked = acks(running);
  const attempts = () => running.lines.filter((l) => l['msg'] === 'database unavailable: holding messages unacknowledged' && l['level'] === 'warn').length;
  const before = attempts();
  await sleep(1500);
  t.equal(acks(running), acked, 'nothing acknowledged while the database is down');
  t.equal(acked, half, 'only the first half was acknowledged');
  // Backoff 50 ms doubling to 500 ms here (200 ms to 10 s by default): a few attempts, not a hot loop.
  t.ok(attempts() - before <= 8, `backoff: ${attempts() - before} attempts in 1.5 s, each with a warning`);

  await pg.start();
  await waitFor(() => settled(running) === messages.length, 30_000, 'every message applied once the database is back');
  t.notOk(running.outcomes.some((o) => o.outcome.kind === 'dead-letter'), 'nothing dead-lettered');
  t.same(await snapshot(db), await expectedState(t, 'postgres', messages, prefix), 'the same rows as without the outage');
  await running.consumer.stop();
});

t.test('sqlite locked by another connection mid-stream', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix } = broker.topology;
  const path = `${scratchDir(t)}/dispatcher.sqlite`;
  const db = openDatabase(path, { lockTimeoutMs: 150 });
  await migrate(db);
  t.teardown(() => db.knex.destroy());
  const { messages } = syntheticStream({ prefix, cluster: 'c2.example.test', vms: 30, seed: 22 });
  const half = Math.floor(messages.length / 2);
  const running = await startConsumer(t, broker, db, { batchSize: 25, prefetch: 25 });

  for (const m of messages.slice(0, half)) broker.publish(m);
  await waitFor(() => settled(running) === half, 20_000, 'the first half applied');
  const locker = knex({ client: 'better-sqlite3', connection: { filename: path }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  t.teardown(() => locker.destroy());
  await locker.raw('BEGIN EXCLUSIVE');
  for (const m of messages.slice(half)) broker.publish(m);
  await waitFor(() => retries(running) >= 3, 20_000, 'retries while the database is locked');
  await sleep(1000);
  t.equal(acks(running), half, 'nothing acknowledged while the database is locked');
  await locker.raw('ROLLBACK');
  await waitFor(() => settled(running) === messages.length, 30_000, 'every message applied once the lock is gone');
  t.notOk(running.outcomes.some((o) => o.outcome.kind === 'dead-letter'), 'nothing dead-lettered');
  t.same(await snapshot(db), await expectedState(t, 'sqlite', messages, prefix), 'the same rows as without the outage');
  await running.consumer.stop();
});
