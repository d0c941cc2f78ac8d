// Replays every captured version of every fixture job and compares what would be published with
// the committed, hand-checked goldens in test/golden/eventd/. After an intended change, run
// `npx tsx test/golden/eventd/regenerate.ts` and review the diff against the spec.

import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fixtureJobs, GOLDEN_DIR, goldenPath, replayJob, type GoldenJob } from '../golden/eventd/replay.js';

const jobs = fixtureJobs();

t.test('one golden per fixture job, no stale goldens', async (t) => {
  const goldens = readdirSync(GOLDEN_DIR).filter((f) => /^job-\d+\.json$/.test(f)).sort();
  t.same(goldens, jobs.map((j) => `job-${j.job}.json`).sort());
});

for (const entry of jobs) {
  t.test(`job ${entry.job}`, async (t) => {
    const path = goldenPath(entry.job);
    if (!existsSync(path)) return t.fail(`missing ${path}`);
    const expected = JSON.parse(readFileSync(path, 'utf8')) as GoldenJob;
    t.same(replayJob(entry), expected);
  });
}

t.test('what the fixtures exercise (guards against an empty or trivial golden set)', async (t) => {
  const all = jobs.map((j) => replayJob(j));
  const published = all.flatMap((g) => g.published);
  t.equal(published.length, 96);
  t.same([...new Set(published.map((p) => p.type))].sort(), ['ganeti-cluster-status', 'ganeti-network-status', 'ganeti-op-status']);
  t.same([...new Set(published.map((p) => p.routingKey))].sort(), ['ganeti.event.cluster', 'ganeti.snf.event.network', 'ganeti.snf.event.op']);
  t.equal(new Set(published.map((p) => p.messageId)).size, published.length, 'message ids are unique');
  const silent = all.filter((g) => g.published.length === 0).map((g) => g.job);
  t.same(silent, [1, 21, 22, 24, 27, 32], 'POST_INIT, TEST_DELAY ×3, a plain cluster tag, DESTROY');
});
