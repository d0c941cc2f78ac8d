// The real daemon against a real broker: every recorded job-file version renamed into a real queue
// directory in Ganeti's order; a consumer that starts only afterwards receives exactly the golden
// messages (so they waited in queues eventd declared), with their properties, in order per op.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { declareTopology, dispatcherQueues } from '../../src/common/topology.js';
import { startConsumer } from '../helpers/consumer.js';
import { createVhost } from '../helpers/vhost.js';
import { fixtureBytes, fixtureVersions, isWatching, makeDirs, renameJobVersion, startEventd } from '../helpers/eventd.js';
import { fixtureJobs, replayJob } from '../golden/eventd/replay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const topology = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' as const };

t.test('fixture replay by rename → the golden messages, with properties, in order per op', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const eventd = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);

  const expected = fixtureJobs().flatMap((j) => replayJob(j).published);
  // Paced by queue depth, not by consuming (the consumer must start only at the end): after each
  // version that should produce messages, wait until they wait in the queues. Without pacing, a busy
  // machine lets Ganeti's next rename overwrite a version before eventd read it, which is correct
  // behaviour but not what this test is about.
  const probe = await amqp.connect(vhost.url);
  t.teardown(() => probe.close());
  const channel = await probe.createChannel();
  // eventd says it watches before its publisher has necessarily declared the queues; a passive
  // check of a queue not declared yet closes the channel. The same declaration is idempotent.
  await declareTopology(channel, topology);
  const queues = dispatcherQueues(topology).map((q) => q.name);
  const waiting = async () => {
    let n = 0;
    for (const q of queues) n += (await channel.checkQueue(q)).messageCount;
    return n;
  };
  let produced = 0;
  for (const v of fixtureVersions()) {
    renameJobVersion(dirs.queueDir, v.job, fixtureBytes(v.file));
    const version = v.file.split('/').pop();
    produced += expected.filter((e) => e.version === version && e.messageId.split(':')[1] === String(v.job)).length;
    const deadline = Date.now() + 10_000;
    while ((await waiting()) < produced && Date.now() < deadline) await sleep(2);
  }

  const byId = new Map(expected.map((e) => [e.messageId, e]));
  t.equal(byId.size, expected.length, 'golden message ids are unique');

  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  const received = await consumer.waitForCount(expected.length, 30_000).catch(() => consumer.messages);
  const missing = expected.filter((e) => !consumer.ids().includes(e.messageId)).map((e) => e.messageId);
  t.same(missing, [], 'every golden message arrived');
  await sleep(500);
  t.equal(consumer.messages.length, expected.length, 'no message beyond the golden ones');

  for (const m of received) {
    const id = String(m.properties.messageId);
    const golden = byId.get(id);
    if (!golden) {
      t.fail(`unexpected message ${id}`);
      continue;
    }
    t.equal(m.exchange, 'ganeti');
    t.equal(m.routingKey, golden.routingKey, `${id} routing key`);
    t.same(m.body, golden.body, `${id} body`);
    t.equal(m.properties.type, golden.type);
    t.equal(m.properties.appId, 'snf-cyclades-gtools');
    t.equal(m.properties.contentType, 'application/json');
    t.equal(m.properties.deliveryMode, 2, 'persistent');
    t.type(m.properties.timestamp, 'number');
  }

  // Order per op: within each op the arrival order is the golden order.
  const perOp = (ids: string[]) => {
    const groups = new Map<string, string[]>();
    for (const id of ids) {
      const key = id.split(':').slice(0, 3).join(':');
      groups.set(key, [...(groups.get(key) ?? []), id]);
    }
    return groups;
  };
  const arrived = perOp(received.map((m) => String(m.properties.messageId)));
  for (const [op, ids] of perOp(expected.map((e) => e.messageId))) t.same(arrived.get(op), ids, `order of ${op}`);

  const code = await Promise.race([eventd.stop('SIGTERM'), sleep(5000).then(() => 'timeout')]);
  t.equal(code, 0, 'SIGTERM: exits 0 within 5 s');
  const record = JSON.parse(readFileSync(join(dirs.stateDir, 'record.json'), 'utf8')) as { jobs: Record<string, { done: boolean }>; doneBelow: number };
  const finished = fixtureJobs().filter((j) => j.job !== 31 && j.job !== 32);
  for (const j of finished) t.ok(j.job < record.doneBelow || record.jobs[String(j.job)]?.done, `job ${j.job} recorded as done`);
});
