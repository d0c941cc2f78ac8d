// Two dispatcher processes on one PostgreSQL database, fed a shuffled and partly duplicated stream,
// end in the state one dispatcher reaches on the ordered stream (architecture invariant 3).

import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { migrate, openDatabase } from '../../src/dispatcher/db.js';
import { AMQP_URL, scratchBroker, scratchPostgres, snapshot, waitFor, withPrefix } from '../fixtures/dispatcher/helpers.js';
import { expectedState } from '../fixtures/dispatcher/running.js';
import { isolatedEnv, spawnDaemon } from '../fixtures/dispatcher/spawn.js';
import { goldenStream, prng, shuffle, syntheticStream } from '../fixtures/dispatcher/stream.js';

t.test('two dispatchers, shuffled and duplicated stream, one PostgreSQL', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix, exchange } = broker.topology;
  const { messages: synthetic } = syntheticStream({ prefix, cluster: 'c3.example.test', vms: 80, seed: 31, firstId: 100 });
  const messages = [...withPrefix(goldenStream(), prefix), ...synthetic];
  const random = prng(41);
  const mixed = shuffle([...messages, ...messages.filter(() => random() < 0.2)], random);
  const dbUrl = await scratchPostgres(t);
  const expected = await expectedState(t, 'postgres', messages, prefix);

  const env = isolatedEnv(t);
  const args = ['--amqp-url', AMQP_URL, '--exchange', exchange, '--prefix', prefix, '--db-url', dbUrl, '--prefetch', '10', '--batch-size', '10', '--log-level', 'info'];
  const daemons = [spawnDaemon(t, args, env), spawnDaemon(t, args, env)];
  await waitFor(() => daemons.every((d) => d.lines.some((l) => l['msg'] === 'consuming')), 60_000, 'both dispatchers consuming').catch((err: Error) => {
    throw new Error(`${err.message}\n${daemons.map((d, i) => `dispatcher ${i}:\n${d.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`).join('\n')}`);
  });
  for (const m of mixed) broker.publish(m);
  await broker.channel.waitForConfirms();

  const db = openDatabase(dbUrl);
  await migrate(db);
  t.teardown(() => db.knex.destroy());
  const same = async () => isDeepStrictEqual(await snapshot(db), expected);
  // On a timeout the comparison below shows the difference.
  const started = Date.now();
  await waitFor(same, 60_000, 'the expected final state').catch(() => undefined);
  t.comment(`converged after ${Date.now() - started} ms`);
  for (const d of daemons) d.child.kill('SIGTERM');
  const exits = await Promise.all(daemons.map((d) => d.exited));
  t.same(exits, [{ code: 0, signal: null }, { code: 0, signal: null }], 'SIGTERM: both exit 0');
  t.same(await snapshot(db), expected, 'the same final state as one dispatcher on the ordered stream');

  const queues = ['op', 'network', 'net', 'progress', 'cluster'].flatMap((k) => [broker.queueName(`events-${k}`), broker.queueName(`events-${k}-dl`)]);
  for (const q of [...queues, broker.queueName('eventd-heartbeat')]) t.equal(await broker.count(q), 0, `${q} is empty: everything acknowledged, nothing dead`);
  const errors = daemons.flatMap((d) => d.lines.filter((l) => l['level'] === 'error' || l['level'] === 'fatal' || 'stderr' in l));
  t.same(errors, [], 'no error lines');
  const retried = daemons.flatMap((d) => d.lines.filter((l) => l['msg'] === 'database unavailable: holding messages unacknowledged'));
  t.comment(`${mixed.length} messages, ${retried.length} batches retried after a lock conflict`);
});
