// The short chaos run for CI (one minute of faults; the long one: test/chaos/run.ts --long). The seed
// is printed; CHAOS_SEED replays a run.

import t from 'tap';
import { formatReport, runChaos } from './chaos.js';
import { chaosSeed } from './seed.js';

const DURATION_MS = 60_000;
// Three broker nodes, the programs and (chaos) PostgreSQL on two shared cores: slow, not stuck.
t.setTimeout(900_000);

t.test('a minute of random kills and restarts: nothing lost, the database as without faults', async (t) => {
  const seed = chaosSeed(process.env['CHAOS_SEED']);
  t.comment(`seed ${seed} (CHAOS_SEED=${seed} replays this run)`);
  const report = await runChaos({ seed, durationMs: DURATION_MS, say: (line) => t.comment(line) });
  for (const line of formatReport(report, DURATION_MS).split('\n')) t.comment(line);
  const faults = Object.values(report.faults).reduce((a, b) => a + b, 0);
  t.ok(faults >= 5, `faults happened (${faults})`);
  t.same(report.missing, [], 'every required message reached the database');
  t.equal(report.counters.lost, 0, 'lost: 0');
  t.same(report.deadLettered, [], 'nothing dead-lettered');
  t.equal(report.left, 0, 'nothing left in the queues');
  t.same(report.actual, report.expected, 'the database equals the fault-free run of the same work');
});
