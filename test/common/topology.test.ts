import t from 'tap';
import {
  declareTopology,
  dispatcherQueues,
  heartbeatQueue,
  routingKey,
  routingKeyForName,
  routingPrefix,
  type DeclaringChannel,
} from '../../src/common/topology.js';

t.test('routing prefix: the name up to the first dash', async (t) => {
  t.equal(routingPrefix('snf-42'), 'snf');
  t.equal(routingPrefix('snf-net-7'), 'snf');
  t.equal(routingPrefix('plain.example.com'), 'plain.example.com');
  t.equal(routingPrefix('-x'), '');
});

t.test('routing keys are Synnefo\'s', async (t) => {
  t.equal(routingKey('op', 'snf'), 'ganeti.snf.event.op');
  t.equal(routingKey('network', 'snf'), 'ganeti.snf.event.network');
  t.equal(routingKey('net', 'snf'), 'ganeti.snf.event.net');
  t.equal(routingKey('progress', 'snf'), 'ganeti.snf.event.progress');
  t.equal(routingKey('cluster', 'snf'), 'ganeti.event.cluster');
  t.equal(routingKeyForName('progress', 'snf-42'), 'ganeti.snf.event.progress');
});

t.test('dispatcher queues and their dead-letter twins', async (t) => {
  const qs = dispatcherQueues({ exchange: 'ganeti', prefix: 'snf', queueType: 'quorum' });
  t.same(
    qs.map((q) => [q.name, q.routingKey, q.deadLetterName]),
    [
      ['snf-events-op', 'ganeti.snf.event.op', 'snf-events-op-dl'],
      ['snf-events-network', 'ganeti.snf.event.network', 'snf-events-network-dl'],
      ['snf-events-net', 'ganeti.snf.event.net', 'snf-events-net-dl'],
      ['snf-events-progress', 'ganeti.snf.event.progress', 'snf-events-progress-dl'],
      ['snf-events-cluster', 'ganeti.event.cluster', 'snf-events-cluster-dl'],
    ],
  );
  for (const q of qs) {
    t.same(q.arguments, { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': 'ganeti-dl' });
    t.same(q.deadLetterArguments, { 'x-queue-type': 'quorum' });
  }
  t.equal(heartbeatQueue({ exchange: 'ganeti', prefix: 'snf', queueType: 'classic' }).routingKey, 'eventd.heartbeat');
});

t.test('declareTopology declares exchanges, queues, twins and bindings', async (t) => {
  const calls: string[] = [];
  const channel: DeclaringChannel = {
    assertExchange: async (name, type, o) => calls.push(`exchange ${name} ${type} durable=${o.durable}`),
    assertQueue: async (name, o) => calls.push(`queue ${name} ${JSON.stringify(o.arguments)}`),
    bindQueue: async (q, ex, key) => calls.push(`bind ${q} ${ex} ${key}`),
  };
  await declareTopology(channel, { exchange: 'ex', prefix: 'p', queueType: 'classic' });
  t.ok(calls.includes('exchange ex topic durable=true'));
  t.ok(calls.includes('exchange ex-dl topic durable=true'));
  t.ok(calls.includes('queue p-events-op {"x-queue-type":"classic","x-dead-letter-exchange":"ex-dl"}'));
  t.ok(calls.includes('bind p-events-op ex ganeti.p.event.op'));
  t.ok(calls.includes('bind p-events-op-dl ex-dl ganeti.p.event.op'));
  t.ok(calls.includes('bind p-eventd-heartbeat ex eventd.heartbeat'));
  t.equal(calls.filter((c) => c.startsWith('queue ')).length, 11);
});
