// The hook as Ganeti runs it: a real process under `env -i` with Ganeti's PATH and a fixture's
// variables, compiled to JavaScript as installed. Its message reaches a real RabbitMQ through a
// running eventd, also when the broker was down or hanging while the hook ran.

import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TopologyOptions } from '../../src/common/topology.js';
import { startBlackhole } from '../helpers/blackhole.js';
import { startConsumer } from '../helpers/consumer.js';
import { deleteTopology, sharedRabbitUrl, startPrivateRabbit, uniqueTopology } from '../helpers/rabbit.js';
import { buildHook, ganetiEnv } from './build.js';
import { startEventd } from './eventd.js';
import { GOLDEN_DIR, listFixtures, loadFixtureEnv } from './fixtures.js';

const BOUND_MS = 2000;
const hookJs = buildHook();

interface HookRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runHookProcess(vars: Record<string, string>): Promise<HookRun> {
  const pairs = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  const start = process.hrtime.bigint();
  const child = spawn('/usr/bin/env', ['-i', ...pairs, process.execPath, hookJs], { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - start) / 1e6 })),
  );
}

function workspace(amqpUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), 'snf-hook-test-'));
  const outbox = join(dir, 'outbox');
  const settings = join(dir, 'snf-cyclades-gtools');
  writeFileSync(settings, `# as installed in /etc/default\nSNF_GTOOLS_OUTBOX_DIR=${outbox}\nSNF_GTOOLS_NODE_NAME=node1.example.test\nSNF_GTOOLS_AMQP_URL=${amqpUrl}\n`, { mode: 0o640 });
  const entries = (): string[] => {
    try {
      return readdirSync(outbox).filter((n) => n.endsWith('.msgs')).sort();
    } catch {
      return [];
    }
  };
  const read = (name: string) => readFileSync(join(outbox, name), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return { dir, outbox, settings, entries, read };
}

const golden = (name: string) => JSON.parse(readFileSync(`${GOLDEN_DIR}${name}.json`, 'utf8'));

t.test('every fixture as a real process with a cleared environment', async (t) => {
  const ws = workspace('amqp://guest:guest@127.0.0.1:1/');
  for (const f of listFixtures()) {
    const before = ws.entries();
    const r = await runHookProcess(ganetiEnv(loadFixtureEnv(f.name), { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
    t.equal(r.code, 0, `${f.name}: exit 0`);
    t.equal(r.stdout, '', `${f.name}: nothing on stdout`);
    t.equal(r.stderr, '', `${f.name}: nothing on stderr`);
    t.ok(r.ms < BOUND_MS, `${f.name}: ${r.ms.toFixed(0)} ms`);
    const added = ws.entries().filter((e) => !before.includes(e));
    const g = golden(f.name);
    if (g.action === 'net-status') {
      t.equal(added.length, 1, `${f.name}: one outbox entry`);
      const [msg] = ws.read(added[0] as string);
      t.same({ ...msg.body, event_time: null }, { ...g.message.body, event_time: null }, `${f.name}: the golden body`);
      t.match(msg.messageId, new RegExp(`^net:snf-1:${f.hooksPath}:\\d+\\.\\d{6}$`));
      t.ok(Math.abs(msg.body.event_time[0] - Date.now() / 1000) < 60, `${f.name}: event_time is the hook's clock`);
    } else {
      t.equal(added.length, 0, `${f.name}: nothing queued`);
    }
  }
  t.equal(ws.entries().length, 8);
});

t.test('no-op invocations do not even read the settings', async (t) => {
  const missing = { SNF_GTOOLS_SETTINGS_FILE: '/nonexistent/settings' };
  for (const name of ['06-instance-add-pre', '09-instance-stop-post', '45-network-remove-post']) {
    const r = await runHookProcess(ganetiEnv(loadFixtureEnv(name), missing));
    t.equal(r.code, 0, name);
    t.equal(r.stderr, '', name);
  }
  const r = await runHookProcess(ganetiEnv(loadFixtureEnv('07-instance-add-post'), missing));
  t.equal(r.code, 1, 'a publishing hook with a missing settings file fails');
  t.match(r.stderr, /settings file \/nonexistent\/settings does not exist/);
});

t.test('not the master, or a foreign instance: exit 0, nothing queued', async (t) => {
  const ws = workspace('amqp://guest:guest@127.0.0.1:1/');
  const env = loadFixtureEnv('11-instance-start-post');
  let r = await runHookProcess(ganetiEnv({ ...env, GANETI_MASTER: 'node9.example.test' }, { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
  t.equal(r.code, 0);
  r = await runHookProcess(ganetiEnv({ ...env, GANETI_INSTANCE_NAME: 'web-1', GANETI_POST_INSTANCE_NAME: 'web-1' }, { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
  t.equal(r.code, 0);
  t.same(ws.entries(), []);
});

t.test('a malformed environment: a clear error on stderr, exit 1, nothing queued', async (t) => {
  const ws = workspace('amqp://guest:guest@127.0.0.1:1/');
  const env = { ...loadFixtureEnv('19-instance-modify-post'), GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '2001:db8:10::/56' };
  const r = await runHookProcess(ganetiEnv(env, { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
  t.equal(r.code, 1);
  t.equal(r.stderr, 'snf-ganeti-hook: error: GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: "2001:db8:10::/56" is not an IPv6 /64 prefix (prefix length 56, must be 64); nothing was sent\n');
  t.same(ws.entries(), []);
});

/** Waits for `net` messages on a private queue bound to the fixture instance's key. */
async function netConsumer(url: string, topology: TopologyOptions) {
  return startConsumer(url, topology, { queues: [], bindKeys: ['ganeti.snf.event.net'] });
}

t.test('against the shared RabbitMQ: the message arrives through a running eventd', async (t) => {
  const topology = uniqueTopology();
  const ws = workspace(sharedRabbitUrl);
  const consumer = await netConsumer(sharedRabbitUrl, topology);
  const eventd = startEventd({ outboxDir: ws.outbox, urls: [sharedRabbitUrl], topology });
  t.teardown(async () => {
    await eventd.stop();
    await consumer.close();
    await deleteTopology(sharedRabbitUrl, topology);
  });
  const r = await runHookProcess(ganetiEnv(loadFixtureEnv('07-instance-add-post'), { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
  t.equal(r.code, 0);
  const exitedAt = Date.now();
  const [got] = await consumer.waitForCount(1, 20_000);
  t.comment(`published ${Date.now() - exitedAt} ms after the hook exited (includes eventd's start-up)`);
  t.equal(got?.routingKey, 'ganeti.snf.event.net');
  t.match(got?.properties, { type: 'ganeti-net-status', deliveryMode: 2, contentType: 'application/json', messageId: /^net:snf-1:instance-add:/ });
  const body = got?.body as Record<string, unknown>;
  t.same(body['nics'], golden('07-instance-add-post').message.body.nics);
  t.equal(body['instance'], 'snf-1');
  t.equal(body['type'], 'ganeti-net-status');
  // A second hook while eventd runs: published within moments.
  const r2 = await runHookProcess(ganetiEnv(loadFixtureEnv('11-instance-start-post'), { SNF_GTOOLS_SETTINGS_FILE: ws.settings }));
  t.equal(r2.code, 0);
  const t0 = Date.now();
  await consumer.waitForCount(2, 10_000);
  t.comment(`second message published ${Date.now() - t0} ms after the hook exited`);
  t.match(consumer.messages[1]?.properties.messageId, /^net:snf-1:instance-start:/);
  for (let i = 0; i < 50 && ws.entries().length > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.same(ws.entries(), [], 'the outbox is empty again');
});

t.test('broker stopped, then a broker that accepts connections and never answers', async (t) => {
  const rabbit = await startPrivateRabbit();
  const hole = await startBlackhole();
  // The private node carries Synnefo's own topology, so the fixture's snf-1 is routed to snf-events-net.
  const topology: TopologyOptions = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' };
  t.teardown(async () => {
    await hole.close();
    await rabbit.destroy();
  });
  const declare = await startConsumer(rabbit.url, topology, { queues: [] });
  await declare.close();

  await rabbit.stop();
  const down = workspace(rabbit.url);
  const r1 = await runHookProcess(ganetiEnv(loadFixtureEnv('13-instance-reboot-post'), { SNF_GTOOLS_SETTINGS_FILE: down.settings }));
  t.equal(r1.code, 0, 'broker down: exit 0');
  t.ok(r1.ms < BOUND_MS, `broker down: ${r1.ms.toFixed(0)} ms`);
  t.equal(down.entries().length, 1, 'broker down: the message is in the outbox');

  const hung = workspace(hole.url);
  const r2 = await runHookProcess(ganetiEnv(loadFixtureEnv('15-instance-reboot-post'), { SNF_GTOOLS_SETTINGS_FILE: hung.settings }));
  t.equal(r2.code, 0, 'broker hanging: exit 0');
  t.ok(r2.ms < BOUND_MS, `broker hanging: ${r2.ms.toFixed(0)} ms`);
  t.equal(hung.entries().length, 1, 'broker hanging: the message is in the outbox');
  t.equal(hole.accepted(), 0, 'the hook never even connects');

  // eventd starts while the broker is still down, and publishes once it is back.
  const e1 = startEventd({ outboxDir: down.outbox, urls: [rabbit.url], topology });
  const e2 = startEventd({ outboxDir: hung.outbox, urls: [rabbit.url], topology });
  t.teardown(async () => {
    await e1.stop();
    await e2.stop();
  });
  await new Promise((res) => setTimeout(res, 1500));
  t.equal(down.entries().length, 1, 'still in the outbox while the broker is down');
  await rabbit.start();
  const consumer = await startConsumer(rabbit.url, topology, { queues: ['snf-events-net'] });
  t.teardown(() => consumer.close());
  await consumer.waitForCount(2, 30_000);
  const ids = consumer.ids().sort();
  t.match(ids, [/^net:snf-1:instance-reboot:/, /^net:snf-1:instance-reboot:/]);
  t.equal(new Set(ids).size, 2);
  for (let i = 0; i < 50 && down.entries().length + hung.entries().length > 0; i++) await new Promise((res) => setTimeout(res, 100));
  t.same([...down.entries(), ...hung.entries()], [], 'both outboxes drained');
});
