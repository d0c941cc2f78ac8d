// The publisher against real brokers: the shared one (with a unique topology per test) for routing,
// properties, returns, nacks, multi-host and timeouts; a private node for stops, kills and restarts.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import amqp from 'amqplib';
import { createLogger, type Logger } from '../../src/common/log.js';
import { APP_ID, CONTENT_TYPE, type OutgoingMessage } from '../../src/common/message.js';
import { Publisher, PublisherClosedError, UnpublishableMessageError, type PublisherOptions } from '../../src/common/publisher.js';
import { declareTopology, routingKey, type TopologyOptions } from '../../src/common/topology.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { startConsumer } from '../helpers/consumer.js';
import {
  deleteTopology,
  freePort,
  sharedRabbitUrl,
  startPrivateRabbit,
  uniqueTopology,
  waitForBroker,
  type PrivateRabbit,
} from '../helpers/rabbit.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function captureLog(level = 'debug'): { log: Logger; lines: string[]; text: () => string; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger({ level, name: 'test', destination: { write: (s: string) => void lines.push(s) } });
  return {
    log,
    lines,
    text: () => lines.join(''),
    records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

let counter = 0;
function message(topology: TopologyOptions, overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  const i = counter++;
  return {
    messageId: `m-${randomBytes(3).toString('hex')}-${i}`,
    routingKey: routingKey('op', topology.prefix),
    type: 'ganeti-op-status',
    timestampMs: 1_700_000_000_123 + i,
    body: { instance: `${topology.prefix}-${i}`, operation: 'OP_INSTANCE_STARTUP', status: 'success', i },
    ...overrides,
  };
}

function makePublisher(t: Test, options: Partial<PublisherOptions> & { topology: TopologyOptions; log: Logger }): Publisher {
  const p = new Publisher({ urls: [sharedRabbitUrl], backoff: { initialMs: 20, maxMs: 200 }, ...options });
  t.teardown(() => p.close({ timeoutMs: 0 }).then(() => {}));
  return p;
}

/** Settles within ms? (for "must not resolve" assertions) */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

t.test('messages arrive with every property and their JSON body', async (t) => {
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const { log } = captureLog();
  const p = makePublisher(t, { topology, log });
  p.start();
  const msgs = [
    message(topology),
    message(topology, { routingKey: routingKey('network', topology.prefix), type: 'ganeti-network-status' }),
    message(topology, { routingKey: routingKey('cluster', topology.prefix), type: 'ganeti-cluster-status' }),
  ];
  const confirmed: string[] = [];
  p.on('confirmed', (m: OutgoingMessage) => confirmed.push(m.messageId));
  await Promise.all(msgs.map((m) => p.publish(m)));
  t.equal(p.pendingCount(), 0);
  t.same(confirmed.sort(), msgs.map((m) => m.messageId).sort(), "'confirmed' fired for each");
  await consumer.waitForCount(3, 5000);
  for (const m of msgs) {
    const got = consumer.messages.find((r) => r.properties.messageId === m.messageId);
    if (!got) {
      t.fail(`missing ${m.messageId}`);
      continue;
    }
    t.equal(got.routingKey, m.routingKey);
    t.equal(got.exchange, topology.exchange);
    t.equal(got.properties.type, m.type);
    t.equal(got.properties.appId, APP_ID);
    t.equal(got.properties.contentType, CONTENT_TYPE);
    t.equal(got.properties.deliveryMode, 2, 'persistent');
    t.equal(got.properties.timestamp, Math.floor(m.timestampMs / 1000), 'timestamp in seconds');
    t.same(got.body, m.body);
  }
  t.match(
    consumer.messages.map((r) => r.queue).sort(),
    [`${topology.prefix}-events-cluster`, `${topology.prefix}-events-network`, `${topology.prefix}-events-op`],
  );
});

t.test('the topology is declared on connect: a message published before any consumer waits in its queue', async (t) => {
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const { log } = captureLog();
  const p = makePublisher(t, { topology, log, appId: 'custom-app' });
  const m = message(topology, { routingKey: routingKey('progress', topology.prefix), type: 'image-copy-progress' });
  const published = p.publish(m); // accepted before start(): sent once connected
  t.equal(p.pendingCount(), 1);
  t.notOk(p.isConnected());
  p.start();
  t.equal(await p.waitConnected(5000), true);
  await published;
  t.equal(p.pendingCount(), 0);

  const conn = await amqp.connect(sharedRabbitUrl);
  t.teardown(() => conn.close());
  const ch = await conn.createChannel();
  const q = await ch.checkQueue(`${topology.prefix}-events-progress`);
  t.equal(q.messageCount, 1, 'the message waits in the declared queue');
  const got = await ch.get(`${topology.prefix}-events-progress`, { noAck: true });
  t.ok(got);
  if (got) {
    t.equal(got.properties.messageId, m.messageId);
    t.equal(got.properties.appId, 'custom-app');
  }
});

t.test('an unroutable message is returned, never reported as sent, and retried until routable', async (t) => {
  const topology = uniqueTopology();
  const key = `nobody.home.${randomBytes(3).toString('hex')}`;
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const cap = captureLog();
  const p = makePublisher(t, { topology, log: cap.log, backoff: { initialMs: 50, maxMs: 150 } });
  const returned: string[] = [];
  let retries = 0;
  p.on('returned', (m: OutgoingMessage) => returned.push(m.messageId));
  p.on('retry', () => retries++);
  p.start();
  const m = message(topology, { routingKey: key });
  const routable = message(topology);
  const published = p.publish(m);
  await p.publish(routable); // an ordinary message on the same channel is confirmed meanwhile
  t.equal(await settledWithin(published, 1500), false, 'publish() does not resolve while the message is unroutable');
  t.ok(returned.length >= 2, `returned ${returned.length} times (retried)`);
  t.ok(returned.every((id) => id === m.messageId));
  t.ok(retries >= 2, "'retry' fired");
  t.equal(p.pendingCount(), 1);
  t.ok(
    cap.records().some((r) => r.level === 'warn' && String(r.msg).includes('returned') && r.messageId === m.messageId),
    'the return is logged with the message id',
  );
  // Once a queue is bound to the key, the retry succeeds.
  const consumer = await startConsumer(sharedRabbitUrl, topology, { queues: [], bindKeys: [key] });
  t.teardown(() => consumer.close());
  await published;
  await consumer.waitFor((msgs) => msgs.some((r) => r.properties.messageId === m.messageId), 5000);
  t.equal(p.pendingCount(), 0);
});

t.test('a message AMQP cannot carry (a field over 255 bytes) is refused at once and holds up nothing', async (t) => {
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const cap = captureLog();
  const p = makePublisher(t, { topology, log: cap.log });
  p.start();
  for (const [field, overrides] of [
    ['message id', { messageId: `m-${'x'.repeat(300)}` }],
    ['type', { type: 'é'.repeat(128) }],
    ['routing key', { routingKey: `ganeti.${'k'.repeat(260)}` }],
  ] as const) {
    const refused = p.publish(message(topology, overrides));
    await t.rejects(refused, { name: UnpublishableMessageError.name, message: new RegExp(`its ${field} is \\d+ bytes long; AMQP allows 255`) }, `${field}: refused, naming the field`);
  }
  const after = message(topology);
  await p.publish(after);
  await consumer.waitFor((msgs) => msgs.some((r) => r.properties.messageId === after.messageId), 5000);
  t.equal(p.pendingCount(), 0, 'nothing left waiting');
  t.notOk(cap.records().some((r) => String(r.msg).includes('disconnected')), 'no connection was dropped over it');
});

t.test('a nacked message (queue with x-overflow reject-publish) is retried, not reported as sent', async (t) => {
  const topology = uniqueTopology();
  const key = `full.${randomBytes(3).toString('hex')}`;
  const rejectQueue = `${topology.prefix}-full`;
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology, [rejectQueue]));
  const conn = await amqp.connect(sharedRabbitUrl);
  t.teardown(() => conn.close());
  const ch = await conn.createChannel();
  await declareTopology(ch, topology);
  await ch.assertQueue(rejectQueue, { durable: false, arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' } });
  await ch.bindQueue(rejectQueue, topology.exchange, key);

  const cap = captureLog();
  const p = makePublisher(t, { topology, log: cap.log, backoff: { initialMs: 50, maxMs: 150 } });
  const nacked: string[] = [];
  p.on('nacked', (m: OutgoingMessage) => nacked.push(m.messageId));
  p.start();
  const m = message(topology, { routingKey: key });
  const published = p.publish(m);
  t.equal(await settledWithin(published, 1500), false, 'publish() does not resolve while the broker nacks');
  t.ok(nacked.length >= 2, `nacked ${nacked.length} times (retried)`);
  t.ok(cap.records().some((r) => r.level === 'warn' && String(r.msg).includes('nack')), 'the nack is logged');

  const consumer = await startConsumer(sharedRabbitUrl, topology, { queues: [], bindKeys: [key] });
  t.teardown(() => consumer.close());
  await ch.deleteQueue(rejectQueue);
  await published;
  await consumer.waitFor((msgs) => msgs.some((r) => r.properties.messageId === m.messageId), 5000);
});

t.test('a channel error (exchange deleted under us) fails the in-flight messages, which are retried after reconnecting', async (t) => {
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const cap = captureLog();
  const p = makePublisher(t, { topology, log: cap.log });
  const errors: Error[] = [];
  p.on('disconnected', (e: Error) => errors.push(e));
  p.start();
  const first = message(topology);
  await p.publish(first);
  await consumer.channel.deleteExchange(topology.exchange);
  const later = [message(topology), message(topology), message(topology)];
  await Promise.all(later.map((m) => p.publish(m)));
  t.equal(errors.length, 1, 'one disconnect');
  t.match(errors[0]?.message, /NOT_FOUND|404/);
  await consumer.waitForCount(4, 5000);
  t.same(consumer.ids(), [first, ...later].map((m) => m.messageId), 'every message, in order');
});

t.test('several URLs, the dead ones are skipped', async (t) => {
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const dead1 = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
  const dead2 = `amqp://guest:guest@127.0.0.1:${await freePort()}`;
  for (let round = 0; round < 3; round++) {
    const cap = captureLog();
    const p = makePublisher(t, { topology, log: cap.log, urls: [dead1, dead2, sharedRabbitUrl] });
    const started = Date.now();
    p.start();
    t.equal(await p.waitConnected(3000), true, `round ${round}: connected in ${Date.now() - started} ms`);
    await p.publish(message(topology));
    t.same(await p.close(), []);
  }
});

t.test('a host that accepts TCP and never answers times out within connectTimeoutMs', async (t) => {
  const hole = await startBlackhole();
  t.teardown(() => hole.close());
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));

  const cap = captureLog();
  const alone = makePublisher(t, { topology, log: cap.log, urls: [hole.url], connectTimeoutMs: 300 });
  const started = Date.now();
  alone.start();
  t.equal(await alone.waitConnected(1200), false);
  const warn = cap.records().find((r) => r.level === 'warn' && String(r.msg).includes('cannot connect'));
  t.ok(warn, 'the timeout is logged');
  t.match(String(warn?.err), /timed out|ETIMEDOUT/);
  t.ok(Date.parse(String(warn?.time)) - started < 300 + 400, 'within connectTimeoutMs');
  t.ok(hole.accepted() >= 2, `tried again (${hole.accepted()} connections)`);
  await alone.close({ timeoutMs: 0 });

  const both = makePublisher(t, { topology, log: captureLog().log, urls: [hole.url, sharedRabbitUrl], connectTimeoutMs: 400 });
  const t0 = Date.now();
  both.start();
  t.equal(await both.waitConnected(2000), true, `moved on to the live host (${Date.now() - t0} ms)`);
  await both.publish(message(topology));
});

t.test('no password in the log output, whatever fails', async (t) => {
  const hole = await startBlackhole();
  t.teardown(() => hole.close());
  const topology = uniqueTopology();
  const secrets = ['wr0ngPassw0rd', 'bl4ckh0leSecret', 'r3fusedS3cret'];
  const cap = captureLog('trace');
  const p = makePublisher(t, {
    topology,
    log: cap.log,
    connectTimeoutMs: 300,
    urls: [
      `amqp://guest:${secrets[0]}@127.0.0.1:5672`,
      `amqp://guest:${secrets[1]}@127.0.0.1:${hole.port}`,
      `amqp://guest:${secrets[2]}@127.0.0.1:${await freePort()}`,
    ],
  });
  const events: unknown[] = [];
  p.on('disconnected', (e) => events.push(e));
  p.start();
  t.equal(await p.waitConnected(2000), false);
  await p.close({ timeoutMs: 0 });
  const text = cap.text();
  for (const s of secrets) t.notOk(text.includes(s), `${s} is not logged`);
  t.match(text, /ACCESS_REFUSED/, 'the refusal is logged');
  t.match(text, /ECONNREFUSED/);
  t.match(text, /guest:\*\*\*@127\.0\.0\.1/, 'URLs appear redacted');
});

t.test('publishing 20,000 messages pipelined, compared with a bare amqplib confirm channel', async (t) => {
  const N = 20_000;
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const conn = await amqp.connect(sharedRabbitUrl);
  t.teardown(() => conn.close());
  const setup = await conn.createChannel();
  await declareTopology(setup, topology);
  const key = routingKey('op', topology.prefix);
  const queue = `${topology.prefix}-events-op`;

  // Bare amqplib: one confirm channel, every message with a callback, then waitForConfirms.
  const ch = await conn.createConfirmChannel();
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const m = message(topology);
    const ok = ch.publish(topology.exchange, key, Buffer.from(JSON.stringify(m.body)), {
      persistent: true,
      mandatory: true,
      messageId: m.messageId,
      timestamp: Math.floor(m.timestampMs / 1000),
      type: m.type,
      appId: APP_ID,
      contentType: CONTENT_TYPE,
    }, () => {});
    if (!ok) await new Promise((r) => ch.once('drain', r));
  }
  await ch.waitForConfirms();
  const bareMs = performance.now() - t0;
  await setup.purgeQueue(queue);

  const p = makePublisher(t, { topology, log: captureLog('info').log });
  p.start();
  await p.waitConnected(5000);
  const msgs = Array.from({ length: N }, () => message(topology));
  t0 = performance.now();
  await Promise.all(msgs.map((m) => p.publish(m)));
  const oursMs = performance.now() - t0;
  t.equal(p.pendingCount(), 0);
  const q = await setup.checkQueue(queue);
  t.equal(q.messageCount, N, 'every message is in the queue');
  t.comment(`bare amqplib: ${Math.round(bareMs)} ms (${Math.round((N / bareMs) * 1000)} msg/s); publisher: ${Math.round(oursMs)} ms (${Math.round((N / oursMs) * 1000)} msg/s)`);
  t.ok(oursMs < bareMs * 3 + 1000, 'near the speed of bare amqplib');

  // Order on one connection is kept.
  const first = await setup.get(queue, { noAck: true });
  t.equal(first && first.properties.messageId, msgs[0]?.messageId, 'first in, first out');
});

t.test('with a private broker', async (t) => {
  let rabbit: PrivateRabbit;
  try {
    rabbit = await startPrivateRabbit();
  } catch (err) {
    t.fail(`cannot start a private RabbitMQ: ${(err as Error).message}`);
    return;
  }
  t.teardown(() => rabbit.destroy());
  // A user with a real password, to check it never reaches the logs.
  const secret = `Pr1v-${randomBytes(6).toString('hex')}`;
  const ctl = (...args: string[]) => run('rabbitmqctl', ['-n', rabbit.nodeName, ...args]);
  await ctl('add_user', 'tester', secret);
  await ctl('set_permissions', '-p', '/', 'tester', '.*', '.*', '.*');
  const url = `amqp://tester:${secret}@127.0.0.1:${rabbit.port}`;
  await waitForBroker(url, 10_000);

  for (const how of ['stop', 'kill'] as const) {
    await t.test(`broker ${how === 'stop' ? 'stopped' : 'killed'} mid-stream and started again: every message confirmed, none lost`, async (t) => {
      const topology = uniqueTopology();
      const cap = captureLog();
      // The default heartbeat: a stop (close frame) and a kill (reset) are seen on the socket at once,
      // and a 2 s heartbeat can also drop a healthy connection on a loaded machine, which the
      // "disconnect logged once" check below would count as a second disconnect (a full CI run once
      // saw two).
      const p = makePublisher(t, { topology, log: cap.log, urls: [url], maxInFlight: 200 });
      let disconnects = 0;
      let retries = 0;
      p.on('disconnected', () => disconnects++);
      p.on('retry', () => retries++);
      p.start();
      t.equal(await p.waitConnected(5000), true);
      const N = 6000;
      const msgs = Array.from({ length: N }, () => message(topology));
      let confirmed = 0;
      const all = Promise.all(msgs.map((m) => p.publish(m).then(() => void confirmed++)));
      while (confirmed < 500) await sleep(5);
      t.ok(confirmed < N, `${confirmed} confirmed when the broker goes away`);
      if (how === 'stop') await rabbit.stop();
      else await rabbit.kill();
      await sleep(300);
      t.notOk(p.isConnected(), 'disconnected');
      await sleep(700);
      await rabbit.start();
      await all;
      t.equal(p.pendingCount(), 0);
      t.ok(disconnects >= 1, "'disconnected' fired");
      // A stopping broker confirms what it received before it closes the connection, so only a kill is
      // sure to leave messages unconfirmed.
      if (how === 'kill') t.ok(retries >= 1, `'retry' fired for unconfirmed messages (${retries})`);
      else t.comment(`${retries} messages retried after the stop`);
      const consumer = await startConsumer(url, topology);
      t.teardown(() => consumer.close());
      await consumer.waitFor((got) => new Set(got.map((r) => r.properties.messageId)).size >= N, 20_000);
      const ids = new Set(consumer.ids());
      t.equal(msgs.filter((m) => !ids.has(m.messageId)).length, 0, 'no message lost');
      t.comment(`${consumer.messages.length - N} duplicates after the ${how}`);
      const text = cap.text();
      t.notOk(text.includes(secret), 'the password is not logged');
      t.match(text, /disconnected from AMQP broker/);
      t.match(text, /connected to AMQP broker/);
      t.equal(cap.records().filter((r) => r.msg === 'connected to AMQP broker').length, 2, 'each connect logged once');
      t.equal(cap.records().filter((r) => r.msg === 'disconnected from AMQP broker').length, 1, 'the disconnect logged once');
      await p.close();
      await deleteTopology(url, topology);
    });
  }

  await t.test('close() while the broker is down returns the unconfirmed messages in order', async (t) => {
    const topology = uniqueTopology();
    const p = makePublisher(t, { topology, log: captureLog().log, urls: [url] });
    p.start();
    t.equal(await p.waitConnected(5000), true);
    await p.publish(message(topology));
    await rabbit.stop();
    const msgs = [message(topology), message(topology), message(topology)];
    const results = msgs.map((m) => p.publish(m).then(() => 'sent', (e: unknown) => e));
    t.equal(p.pendingCount(), 3);
    const started = Date.now();
    const left = await p.close({ timeoutMs: 400 });
    t.ok(Date.now() - started < 2500, 'close() keeps to its timeout');
    t.same(left.map((m) => m.messageId), msgs.map((m) => m.messageId));
    for (const r of await Promise.all(results)) t.type(r, PublisherClosedError);
    await t.rejects(p.publish(message(topology)), PublisherClosedError, 'publish() after close() rejects');
    t.equal(p.pendingCount(), 0);
    t.same(await p.close(), left, 'close() is idempotent');
    await rabbit.start();
    await deleteTopology(url, topology);
  });
});

t.test('timers do not keep the process alive after close()', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pubexit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const script = path.join(dir, 'run.ts');
  const publisherPath = path.resolve(here, '../../src/common/publisher.ts');
  const logPath = path.resolve(here, '../../src/common/log.ts');
  fs.writeFileSync(
    script,
    `import { Publisher } from ${JSON.stringify(publisherPath)};
import { createLogger } from ${JSON.stringify(logPath)};
const p = new Publisher({ urls: ['amqp://guest:guest@127.0.0.1:${await freePort()}'], topology: { exchange: 'x', prefix: 'x', queueType: 'classic' },
  log: createLogger({ level: 'silent', name: 't' }), backoff: { initialMs: 5000, maxMs: 60000 } });
p.start();
void p.publish({ messageId: 'a', routingKey: 'k', type: 't', timestampMs: 0, body: {} }).catch(() => {});
setTimeout(async () => { const left = await p.close({ timeoutMs: 100 }); console.log('closed', left.length); }, 300);
`,
  );
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve(here, '../..'), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  t.equal(code, 0, out);
  t.match(out, /closed 1/);
  t.ok(Date.now() - started < 6000, `exited by itself after close() (${Date.now() - started} ms)`);
});
