// Bad job files: each is logged with the file and the reason; the daemon keeps running and
// everything else is still published.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startConsumer } from '../helpers/consumer.js';
import { createVhost } from '../helpers/vhost.js';
import { fixtureBytes, fixtureVersions, isWatching, makeDirs, renameJobVersion, startEventd } from '../helpers/eventd.js';
import { fixtureJobs, replayJob } from '../golden/eventd/replay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('bad job files are reported with file and reason; good ones still published', async (t) => {
  const vhost = await createVhost();
  t.teardown(() => vhost.remove());
  const dirs = makeDirs(t.testdir());
  const eventd = startEventd(dirs, vhost.url, ['--heartbeat-interval', '3600']);
  t.teardown(() => eventd.stop('SIGKILL'));
  await eventd.waitForLog(isWatching);
  const q = dirs.queueDir;
  const good = fixtureBytes('jobs/job-5/v006.json').toString('utf8');

  renameJobVersion(q, 100, good.slice(0, 300).replace('"id":5', '"id":100').replace('"id": 5', '"id": 100'));
  renameJobVersion(q, 101, JSON.stringify({ id: 101, ops: [{ input: { OP_ID: 'OP_INSTANCE_STARTUP' }, status: 7, result: null, log: [] }] }));
  const big = Buffer.alloc(50 * 1024 * 1024, 0x20);
  big.write('{"id": 102, "ops": [');
  renameJobVersion(q, 102, big);
  renameJobVersion(q, 103, randomBytes(4096));
  // Vanishes between the event and the read.
  writeFileSync(join(q, 'job-104.tmp'), good.replace(/"id": ?5,/, '"id": 104,'));
  renameSync(join(q, 'job-104.tmp'), join(q, 'job-104'));
  unlinkSync(join(q, 'job-104'));
  renameJobVersion(
    q,
    105,
    JSON.stringify({
      id: 105,
      received_timestamp: [1795597950, 1],
      start_timestamp: null,
      end_timestamp: null,
      ops: [
        { input: { OP_ID: 'OP_MADE_UP', instance_name: 'snf-9' }, status: 'queued', result: null, log: [] },
        { input: { OP_ID: 'OP_INSTANCE_STARTUP', instance_name: 'snf-9' }, status: 'exploded', result: null, log: [] },
        { input: { OP_ID: 'OP_INSTANCE_SHUTDOWN', instance_name: 'snf-9' }, status: 'queued', result: null, log: [] },
      ],
    }),
  );
  await sleep(300);
  for (const v of fixtureVersions().filter((v) => v.job === 5)) {
    renameJobVersion(q, 5, fixtureBytes(v.file));
    await sleep(10);
  }

  const errorFor = (job: number) =>
    eventd.waitForLog((l) => (l.level === 'error' || l.level === 'warn') && String(l.file ?? '').endsWith(`job-${job}`), 20_000);
  const truncated = await errorFor(100);
  t.match(truncated.reason, /JSON|end|truncat/i, 'truncated JSON: reason given');
  const shape = await errorFor(101);
  t.match(shape.where, /ops\[0\]\.status/, 'wrong shape: the place is named');
  const huge = await errorFor(102);
  t.match(huge.reason, /over the .*limit/, 'oversized: refused before parsing');
  const binary = await errorFor(103);
  t.type(binary.reason, 'string');
  const unknown = await errorFor(105);
  t.match(unknown.reason, /exploded/, 'unknown status named');
  t.notOk(eventd.lines.some((l) => l.level === 'error' && String(l.file ?? '').endsWith('job-104')), 'a vanished file is not an error');

  const consumer = await startConsumer(vhost.url, { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' });
  t.teardown(() => consumer.close());
  const job5 = replayJob(fixtureJobs().find((j) => j.job === 5)!).published.map((p) => p.messageId);
  await consumer.waitFor((ms) => job5.every((id) => ms.some((m) => m.properties.messageId === id)), 15_000);
  t.pass('job 5 fully published after the bad files');
  await consumer.waitFor((ms) => ms.some((m) => m.properties.messageId === 'cluster1.example.test:105:2:queued:0'), 5000);
  t.pass('the good op of the job with an unknown status and an unknown op id is published');
  t.equal(eventd.proc.exitCode, null, 'still running');
});
