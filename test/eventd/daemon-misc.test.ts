// eventd's command line, heartbeats, outbox draining, and shutdown with the broker down.

import t from 'tap';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Outbox } from '../../src/common/outbox.js';
import { startConsumer } from '../helpers/consumer.js';
import { startPrivateRabbit, uniqueTopology, deleteTopology, sharedRabbitUrl } from '../helpers/rabbit.js';
import { createVhost } from '../helpers/vhost.js';
import { fixtureBytes, fixtureVersions, isWatching, makeDirs, renameJobVersion, ROOT, startEventd } from '../helpers/eventd.js';
import { fixtureJobs, replayJob } from '../golden/eventd/replay.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const main = join(ROOT, 'src/eventd/main.ts');
const topology = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' as const };

t.test('command line: --version, --help, and settings errors', async (t) => {
  const version = await run(process.execPath, ['--import', 'tsx', main, '--version'], { cwd: ROOT });
  t.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  const help = await run(process.execPath, ['--import', 'tsx', main, '--help'], { cwd: ROOT });
  for (const flag of ['--queue-dir', '--ganeti-data-dir', '--state-dir', '--outbox-dir', '--amqp-url', '--exchange', '--node-name', '--heartbeat-interval', '--log-level', '--help', '--version']) {
    t.match(help.stdout, flag, `--help lists ${flag}`);
  }
  t.match(help.stdout, /SNF_GTOOLS_QUEUE_DIR/, 'with the environment variable of each setting');
  const bad = await run(process.execPath, ['--import', 'tsx', main, '--settings-file', '/dev/null', '--heartbeat-interval', 'often'], { cwd: ROOT }).then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  );
  t.equal(bad?.code, 2, 'exit 2 on a bad setting');
  t.match(bad?.stderr, /snf-ganeti-eventd: setting heartbeat-interval \(flag --heartbeat-interval\): "often" is not a number/);
  const url = await run(process.execPath, ['--import', 'tsx', main, '--settings-file', '/dev/null', '--amqp-url', 'http://u:hunter2@h'], { cwd: ROOT }).then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  );
  t.match(url?.stderr, /amqp-url/);
  t.notMatch(url?.stderr, /hunter2/, 'a password is never echoed');
});

t.test('heartbeats carry cluster, node, role and outbox size; the outbox drains on a non-master', async (t) => {
  const topo = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topo));
  const dirs = makeDirs(t.testdir(), 'cluster1.example.test', 'node2.example.test');
  const outbox = new Outbox(dirs.outboxDir);
  const before = { messageId: 'net:snf-1:before', routingKey: `ganeti.${topo.prefix}.event.net`, type: 'ganeti-net-status', timestampMs: Date.now(), body: { type: 'ganeti-net-status', instance: `${topo.prefix}-1`, nics: [] } };
  outbox.putSync([before]);
  const consumer = await startConsumer(sharedRabbitUrl, topo);
  t.teardown(() => consumer.close());
  const eventd = startEventd(dirs, sharedRabbitUrl, ['--exchange', topo.exchange, '--prefix', topo.prefix, '--heartbeat-interval', '0.5']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const during = { ...before, messageId: 'net:snf-1:during' };
  await outbox.put([during]);
  await consumer.waitFor((ms) => ['net:snf-1:before', 'net:snf-1:during'].every((id) => ms.some((m) => m.properties.messageId === id)), 10_000);
  t.pass('entries written before the start and while running are published by a non-master eventd');
  await sleep(300);
  t.same(readdirSync(dirs.outboxDir).filter((n) => n.endsWith('.msgs')), [], 'and removed after their confirm');
  const beats = await consumer.waitFor((ms) => ms.filter((m) => m.routingKey === 'eventd.heartbeat').length >= 2, 10_000);
  const beat = beats.find((m) => m.routingKey === 'eventd.heartbeat')!;
  t.match(beat.body, { type: 'eventd-heartbeat', cluster: 'cluster1.example.test', node: 'node1.example.test', role: 'candidate' });
  t.type((beat.body as { outbox: unknown }).outbox, 'number');
  t.equal(beat.properties.type, 'eventd-heartbeat');
});

t.test('SIGTERM with the broker down: exits 0 within 5 s, unconfirmed messages wait in the outbox', async (t) => {
  const rabbit = await startPrivateRabbit();
  t.teardown(() => rabbit.destroy());
  const dirs = makeDirs(t.testdir());
  const first = startEventd(dirs, rabbit.url, ['--heartbeat-interval', '3600']);
  await first.waitForLog(isWatching);
  await first.waitForLog((l) => l.msg === 'connected to AMQP broker');
  await rabbit.stop();
  for (const v of fixtureVersions().filter((v) => v.job === 6)) {
    renameJobVersion(dirs.queueDir, 6, fixtureBytes(v.file));
    await sleep(15);
  }
  await sleep(300);
  const started = Date.now();
  t.equal(await first.stop('SIGTERM'), 0, 'exit 0');
  t.ok(Date.now() - started < 5000, `within 5 s (${Date.now() - started} ms)`);
  t.ok(first.lines.some((l) => l.msg === 'unconfirmed job messages saved to the outbox'), 'handed to the outbox');
  t.ok(readdirSync(dirs.outboxDir).some((n) => n.endsWith('.msgs')), 'an outbox entry exists');

  await rabbit.start();
  const second = startEventd(dirs, rabbit.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => second.stop('SIGKILL'));
  await second.waitForLog(isWatching);
  const consumer = await startConsumer(rabbit.url, topology);
  t.teardown(() => consumer.close());
  const job6 = replayJob(fixtureJobs().find((j) => j.job === 6)!).published;
  const final = job6.at(-1)!.messageId;
  await consumer.waitFor((ms) => ms.some((m) => m.properties.messageId === final), 15_000);
  const seen = new Set(consumer.ids());
  const handed = first.lines.filter((l) => l.msg === 'publishing').map((l) => String(l.messageId));
  t.same(handed.filter((id) => !seen.has(id)), [], 'every message handed over before the stop arrives after the restart');
});
