// The consuming daemon against the real broker and both databases: what eventd, the hook and the
// monitor publish becomes the rows we expect; poison goes to the -dl queues with an error line while
// everything else is applied; shuffled and duplicated streams end in the same state.

import t from 'tap';
import { DB_KINDS, openScratch, scratchBroker, snapshot, waitFor, withPrefix } from '../fixtures/dispatcher/helpers.js';
import { expectedState, settled, startConsumer } from '../fixtures/dispatcher/running.js';
import { goldenStream, prng, shuffle, syntheticStream } from '../fixtures/dispatcher/stream.js';

for (const kind of DB_KINDS) {
  t.test(`${kind}: the captured scenario through the broker`, async (t) => {
    const broker = await scratchBroker(t);
    const { prefix } = broker.topology;
    const stream = withPrefix(goldenStream(), prefix);
    const db = await openScratch(t, kind);
    const running = await startConsumer(t, broker, db);
    for (const m of stream) broker.publish(m);
    await broker.channel.waitForConfirms();
    await waitFor(() => settled(running) === stream.length, 20_000, 'every message settled');
    t.ok(running.outcomes.every((o) => o.outcome.kind === 'ack'), 'every message acknowledged');
    t.equal(running.outcomes.filter((o) => o.outcome.kind === 'ack' && o.outcome.result === 'ignored' && o.outcome.reason === 'not-ours').length, 5, 'job 19\'s snf-bad ignored as not ours');
    const state = await snapshot(db);
    t.same(state, await expectedState(t, kind, stream, prefix), 'the rows of an in-order application');
    t.match(state['servers'], [{ name: `${prefix}-1`, operstate: 'DESTROYED', deleted: true }, { name: `${prefix}-2`, deleted: true }]);
    const queues = ['op', 'network', 'net', 'progress', 'cluster'].map((k) => broker.queueName(`events-${k}`));
    for (const q of queues) t.equal(await broker.count(q), 0, `${q} is empty`);
    t.ok(running.lines.some((l) => l['msg'] === 'message ignored' && l['level'] === 'debug' && l['reason'] === 'name without our prefix'), 'a debug line says why a message was ignored');
    await running.consumer.stop();
  });

  t.test(`${kind}: poison goes to the -dl queues, everything else is applied`, async (t) => {
    const broker = await scratchBroker(t);
    const { prefix } = broker.topology;
    const db = await openScratch(t, kind);
    const running = await startConsumer(t, broker, db);
    const op = { type: 'ganeti-op-status', instance: `${prefix}-7`, operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [1_800_000_000, 5], jobId: 7, cluster: 'c1', logmsg: null, tags: [], job_fields: {} };
    const poison: [string, string, unknown][] = [
      [`ganeti.${prefix}.event.op`, 'p-json', 'this is not JSON'],
      [`ganeti.${prefix}.event.op`, 'p-type', { ...op, type: 'ganeti-create-progress' }],
      [`ganeti.${prefix}.event.op`, 'p-field', { ...op, instance: undefined }],
      [`ganeti.${prefix}.event.op`, 'p-status', { ...op, status: 'waitlock' }],
      [`ganeti.${prefix}.event.progress`, 'p-progress', { type: 'image-copy-progress', instance: `${prefix}-7`, event_time: [1_800_000_001, 0], progress: -1 }],
      [`ganeti.${prefix}.event.progress`, 'p-progress-a', { type: 'image-copy-progress', instance: `${prefix}-7`, event_time: [1_800_000_001, 0], progress: 'a' }],
      [`ganeti.${prefix}.event.net`, 'p-nics', { type: 'ganeti-net-status', instance: `${prefix}-7`, event_time: [1, 0], nics: 'none' }],
    ];
    const good: [string, string, unknown][] = [
      [`ganeti.${prefix}.event.op`, 'g-op', op],
      [`ganeti.${prefix}.event.progress`, 'g-info', { type: 'image-info', messages: ['Starting image copy...'], instance: `${prefix}-7`, event_time: [1_799_999_999, 0] }],
      [`ganeti.${prefix}.event.net`, 'g-net', { type: 'ganeti-net-status', instance: `${prefix}-7`, event_time: [1_800_000_002, 0], nics: [{ mac: 'aa:00:00:00:00:07', ip: '10.0.0.7', network: `${prefix}-net-1` }] }],
    ];
    const mixed = shuffle([...poison, ...good], prng(5));
    for (const [key, id, body] of mixed) broker.publishRaw(key, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), id);
    await waitFor(() => settled(running) === mixed.length, 10_000, 'every message settled');
    const byId = new Map(running.outcomes.map((o) => [o.delivery.messageId, o.outcome]));
    for (const [, id] of poison) t.match(byId.get(id), { kind: 'dead-letter' }, `${id} dead-lettered`);
    for (const [, id] of good) t.match(byId.get(id), { kind: 'ack', result: 'applied' }, `${id} applied`);
    await waitFor(async () => (await broker.count(broker.queueName('events-op-dl'))) === 4, 5_000, 'op poison in the -dl queue');
    t.equal(await broker.count(broker.queueName('events-progress-dl')), 2);
    t.equal(await broker.count(broker.queueName('events-net-dl')), 1);
    t.equal(await broker.count(broker.queueName('events-op')), 0, 'nothing left in the main queue');
    const line = running.lines.find((l) => l['messageId'] === 'p-status');
    t.match(line, { level: 'error', msg: 'message dead-lettered', queue: broker.queueName('events-op'), reason: /field "status": expected one of/ }, 'an error line names the queue, message_id and reason');
    t.match((await snapshot(db))['servers'], [{ name: `${prefix}-7`, operstate: 'STARTED', nics: [{ ipv4: '10.0.0.7' }] }]);
    await running.consumer.stop();
  });
}

t.test('sqlite: shuffled and duplicated through the broker, small batches', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix } = broker.topology;
  const { messages } = syntheticStream({ prefix, cluster: 'c7.example.test', vms: 40, seed: 9 });
  const random = prng(3);
  const mixed = shuffle([...messages, ...messages.filter(() => random() < 0.25)], random);
  const db = await openScratch(t, 'sqlite');
  const running = await startConsumer(t, broker, db, { batchSize: 7, prefetch: 5 });
  for (const m of mixed) broker.publish(m);
  await waitFor(() => settled(running) === mixed.length, 60_000, 'every message settled');
  t.same(await snapshot(db), await expectedState(t, 'sqlite', messages, prefix));
  t.equal(await broker.count(broker.queueName('eventd-heartbeat')), 0, 'heartbeats consumed');
  t.match((await snapshot(db))['backends'], [{ clustername: 'c7.example.test', masterNode: 'node1.example.test' }], 'newest heartbeat recorded');
  await running.consumer.stop();
});

t.test('stop(): finishes the batch in hand, leaves the rest in the queue', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix } = broker.topology;
  const { messages } = syntheticStream({ prefix, cluster: 'c8.example.test', vms: 30, seed: 4 });
  const db = await openScratch(t, 'sqlite');
  const running = await startConsumer(t, broker, db, { batchSize: 20, prefetch: 20 });
  for (const m of messages) broker.publish(m);
  await waitFor(() => settled(running) >= 100, 20_000, 'some messages settled');
  await running.consumer.stop();
  const done = settled(running);
  t.ok(done < messages.length, `stopped after ${done} of ${messages.length}`);
  const queues = ['op', 'network', 'net', 'progress', 'cluster'].map((k) => broker.queueName(`events-${k}`));
  let left = 0;
  for (const q of queues) left += await broker.count(q);
  left += await broker.count(broker.queueName('eventd-heartbeat'));
  t.equal(left, messages.length - done, 'every unsettled message is back in its queue');
  t.notOk(running.outcomes.some((o) => o.outcome.kind === 'retry'), 'no retries');
});

t.test('quorum queues (a RabbitMQ cluster): applied and dead-lettered alike', async (t) => {
  const broker = await scratchBroker(t, 'quorum');
  const { prefix } = broker.topology;
  const db = await openScratch(t, 'sqlite');
  const running = await startConsumer(t, broker, db);
  const op = { type: 'ganeti-op-status', instance: `${prefix}-3`, operation: 'OP_INSTANCE_SHUTDOWN', status: 'success', event_time: [1_800_000_000, 0], jobId: 3, cluster: 'c1' };
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify(op)), 'good');
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from('{"type":'), 'poison');
  await waitFor(() => settled(running) === 2, 10_000, 'both settled');
  await waitFor(async () => (await broker.count(broker.queueName('events-op-dl'))) === 1, 5_000, 'poison in the -dl queue');
  t.match((await snapshot(db))['servers'], [{ name: `${prefix}-3`, operstate: 'STOPPED' }]);
  await running.consumer.stop();
});

t.test('a queue deleted under the consumer (purge-queues): it reconnects, declares and consumes again', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix } = broker.topology;
  const db = await openScratch(t, 'sqlite');
  const running = await startConsumer(t, broker, db);
  const op = (n: number, s: number) => ({ type: 'ganeti-op-status', instance: `${prefix}-${n}`, operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [s, 0], jobId: n, cluster: 'c1' });
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify(op(1, 1_800_000_000))), 'a');
  await waitFor(() => settled(running) === 1, 10_000, 'the first message');
  const admin = await broker.connection.createChannel();
  await admin.deleteQueue(broker.queueName('events-op'));
  await waitFor(() => running.lines.some((l) => l['msg'] === 'the broker cancelled our consumer; reconnecting'), 10_000, 'the cancel noticed');
  await waitFor(() => running.lines.filter((l) => l['msg'] === 'consuming').length === 2, 10_000, 'consuming again');
  await admin.checkQueue(broker.queueName('events-op'));
  await admin.close();
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify(op(2, 1_800_000_001))), 'b');
  await waitFor(() => settled(running) === 2, 10_000, 'the second message');
  t.match((await snapshot(db))['servers'], [{ name: `${prefix}-1`, operstate: 'STARTED' }, { name: `${prefix}-2`, operstate: 'STARTED' }]);
  await running.consumer.stop();
});
