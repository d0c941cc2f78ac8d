// eventd under faults, with real processes, a real broker and real renames: nothing is lost.

import t, { type Test } from 'tap';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startConsumer, type TestConsumer } from '../helpers/consumer.js';
import { startPrivateRabbit } from '../helpers/rabbit.js';
import { createVhost } from '../helpers/vhost.js';
import { dispatcherQueues } from '../../src/common/topology.js';
import { inotifyQueueLength } from '../../src/eventd/watcher.js';
import {
  fixtureBytes,
  fixtureVersions,
  freshJobVersions,
  isWatching,
  makeDirs,
  renameJobVersion,
  setSsconf,
  startEventd,
  type FixtureVersion,
} from '../helpers/eventd.js';
import { fixtureJobs, replayJob } from '../golden/eventd/replay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const topology = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' as const };
const golden = fixtureJobs().flatMap((j) => replayJob(j).published);
const goldenIds = new Set(golden.map((g) => g.messageId));

/** The last golden message of every op: what must arrive whatever happened on the way. */
function finalIds(jobs?: Set<number>): string[] {
  const last = new Map<string, string>();
  for (const g of golden) {
    const [, job, op] = g.messageId.split(':');
    if (jobs && !jobs.has(Number(job))) continue;
    last.set(`${job}:${op}`, g.messageId);
  }
  return [...last.values()];
}

async function replay(queueDir: string, versions: FixtureVersion[], gapMs = 15): Promise<void> {
  for (const v of versions) {
    renameJobVersion(queueDir, v.job, fixtureBytes(v.file));
    await sleep(gapMs);
  }
}

function assertSubsetOfGolden(t: Test, consumer: TestConsumer): void {
  const foreign = consumer.ids().filter((id) => !goldenIds.has(id) && !id.startsWith('heartbeat:'));
  t.same(foreign, [], 'every message is a golden one');
}

t.test('broker restarted in the middle of the stream: no message lost', async (t) => {
  const rabbit = await startPrivateRabbit();
  t.teardown(() => rabbit.destroy());
  const dirs = makeDirs(t.testdir());
  const eventd = startEventd(dirs, rabbit.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const versions = fixtureVersions();
  const third = Math.floor(versions.length / 3);
  await replay(dirs.queueDir, versions.slice(0, third));
  await rabbit.stop();
  await replay(dirs.queueDir, versions.slice(third, 2 * third));
  await rabbit.start();
  await replay(dirs.queueDir, versions.slice(2 * third));
  const consumer = await startConsumer(rabbit.url, topology);
  t.teardown(() => consumer.close());
  const handed = eventd.lines.filter((l) => l.msg === 'publishing').map((l) => String(l.messageId));
  const must = new Set([...handed, ...finalIds()]);
  await consumer.waitFor((ms) => [...must].every((id) => ms.some((m) => m.properties.messageId === id)), 60_000).catch(() => undefined);
  const got = new Set(consumer.ids());
  t.ok(handed.length >= finalIds().length, `eventd published ${handed.length} transitions`);
  t.same([...must].filter((id) => !got.has(id)), [], 'every transition eventd published, and every final one, arrived');
  assertSubsetOfGolden(t, consumer);
  t.ok(eventd.lines.some((l) => l.component === 'publisher' && /connected/.test(String(l.msg)) && l.level === 'info'), 'reconnected');
});

t.test('eventd killed with SIGKILL mid-stream and restarted: every final transition published', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const versions = fixtureVersions();
  const half = Math.floor(versions.length / 2);
  const first = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  await first.waitForLog(isWatching);
  await replay(dirs.queueDir, versions.slice(0, half));
  t.equal(await first.stop('SIGKILL'), 'SIGKILL');
  // Ganeti goes on while eventd is down.
  await replay(dirs.queueDir, versions.slice(half, half + 30), 5);
  const second = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => second.stop('SIGKILL'));
  await second.waitForLog(isWatching);
  const after = versions.slice(half + 30);
  await replay(dirs.queueDir, after);
  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  const must = new Set([...finalIds(), ...golden.filter((g) => after.some((v) => v.job === Number(g.messageId.split(':')[1]) && v.file.endsWith(g.version))).map((g) => g.messageId)]);
  await consumer.waitFor((ms) => [...must].every((id) => ms.some((m) => m.properties.messageId === id)), 30_000).catch(() => undefined);
  const got = new Set(consumer.ids());
  t.same([...must].filter((id) => !got.has(id)), [], 'final transitions and everything after the restart arrived');
  assertSubsetOfGolden(t, consumer);
});

t.test('a job archived while eventd was down still gets its final message', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const job5 = fixtureVersions().filter((v) => v.job === 5);
  const first = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  await first.waitForLog(isWatching);
  await replay(dirs.queueDir, job5.slice(0, 3));
  await sleep(300);
  t.equal(await first.stop('SIGTERM'), 0);
  await replay(dirs.queueDir, job5.slice(3), 2);
  mkdirSync(join(dirs.queueDir, 'archive', '0'), { recursive: true });
  renameSync(join(dirs.queueDir, 'job-5'), join(dirs.queueDir, 'archive', '0', 'job-5'));
  const second = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => second.stop('SIGKILL'));
  await second.waitForLog(isWatching);
  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  const [final] = finalIds(new Set([5]));
  await consumer.waitFor((ms) => ms.some((m) => m.properties.messageId === final), 15_000);
  t.pass(`final message ${final} published from the archive`);
  assertSubsetOfGolden(t, consumer);
});

t.test('the queue directory deleted and created again (gnt-cluster destroy / init)', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const eventd = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const versions = fixtureVersions();
  await replay(dirs.queueDir, versions.filter((v) => v.job === 5));
  rmSync(dirs.queueDir, { recursive: true });
  await sleep(300);
  mkdirSync(dirs.queueDir);
  await eventd.waitForLog((l) => l.msg === 'queue directory was re-created; watching the new one');
  await replay(dirs.queueDir, versions.filter((v) => v.job === 6));
  // The new cluster numbers its jobs from 1 again: its job 5 must be published although the old
  // cluster's job 5 was.
  await replay(dirs.queueDir, versions.filter((v) => v.job === 5));
  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  const must = [...finalIds(new Set([5])), ...finalIds(new Set([6]))];
  await consumer.waitFor((ms) => must.every((id) => ms.some((m) => m.properties.messageId === id)), 15_000);
  t.pass('jobs before and after the re-creation published');
  const final5 = finalIds(new Set([5]))[0];
  await consumer.waitFor((ms) => ms.filter((m) => m.properties.messageId === final5).length >= 2, 10_000);
  t.pass("the new cluster's job 5 is published too, not taken for the old one");
});

t.test('not master: nothing published until ssconf says this node is master', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir(), 'cluster1.example.test', 'node2.example.test');
  const eventd = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  await replay(dirs.queueDir, fixtureVersions().filter((v) => v.job === 5 || v.job === 6));
  await sleep(1000);
  t.same(consumer.ids(), [], 'a candidate publishes no job message');
  setSsconf(dirs, 'cluster1.example.test', 'node1.example.test');
  await eventd.waitForLog((l) => /became master/.test(String(l.msg)));
  const must = finalIds(new Set([5, 6]));
  await consumer.waitFor((ms) => must.every((id) => ms.some((m) => m.properties.messageId === id)), 15_000);
  t.pass('after the failover the current state of every queued job is published');
  assertSubsetOfGolden(t, consumer);
});

t.test('the queue re-created while eventd was down: the new cluster\'s jobs are published', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const versions = fixtureVersions();
  const first = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  await first.waitForLog(isWatching);
  await replay(dirs.queueDir, versions.filter((v) => v.job === 5 || v.job === 6));
  await sleep(300);
  t.equal(await first.stop('SIGTERM'), 0);
  rmSync(dirs.queueDir, { recursive: true });
  mkdirSync(dirs.queueDir);
  writeFileSync(join(dirs.queueDir, 'serial'), '5\n');
  await replay(dirs.queueDir, versions.filter((v) => v.job === 5), 2);
  const second = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => second.stop('SIGKILL'));
  await second.waitForLog((l) => /re-created while eventd was down/.test(String(l.msg)));
  const consumer = await startConsumer(vhost.url, topology);
  t.teardown(() => consumer.close());
  const final5 = finalIds(new Set([5]))[0];
  await consumer.waitFor((ms) => ms.filter((m) => m.properties.messageId === final5).length >= 2, 10_000);
  t.pass('job 5 of the new cluster published');
});

t.test('inotify overflows while eventd cannot read: the burst is noticed, a rescan publishes every job', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  // No periodic rescan within the test: only the overflow detection can find the jobs inotify dropped.
  const eventd = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600', '--rescan-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const consumer = await startConsumer(vhost.url, topology, { queues: dispatcherQueues(topology).map((q) => q.name) });
  t.teardown(() => consumer.close());

  // One rename makes two events (moved from the temp name, moved to job-N): renaming as many files as
  // the kernel queue holds events, while eventd is stopped, overflows it for certain.
  const jobs = freshJobVersions(inotifyQueueLength(), 10_000, true);
  const temps = jobs.map((j) => {
    const temp = join(dirs.queueDir, `job-${j.id}-4242-1.tmp`);
    writeFileSync(temp, j.bytes);
    return { temp, target: join(dirs.queueDir, `job-${j.id}`) };
  });
  await sleep(1500); // eventd reads the temp files' events before it stops
  eventd.proc.kill('SIGSTOP');
  for (const { temp, target } of temps) renameSync(temp, target);
  eventd.proc.kill('SIGCONT');

  await eventd.waitForLog((l) => l.msg === 'a burst of events may have overflowed the inotify queue; rescanning', 20_000);
  const expected = jobs.flatMap((j) => j.messages.map((m) => m.messageId));
  await consumer.waitForCount(expected.length, 60_000).catch(() => undefined);
  const got = new Set(consumer.ids());
  t.equal(expected.filter((id) => !got.has(id)).length, 0, `all ${expected.length} messages of ${jobs.length} jobs arrived`);
});
