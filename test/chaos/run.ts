// The chaos run from the command line: `npm run chaos` (one minute of faults, as in CI) or
// `npm run chaos -- --long` (200 s of faults; with the set-up, under 5 minutes on an idle machine);
// `--seed N` (or CHAOS_SEED=N) replays a run.
// Prints the counters block; exits 1 when anything was lost or the database differs.

import { isDeepStrictEqual, parseArgs } from 'node:util';
import { formatReport, runChaos } from './chaos.js';
import { chaosSeed } from './seed.js';

const { values } = parseArgs({ options: { long: { type: 'boolean', default: false }, seed: { type: 'string' } } });
const durationMs = values.long ? 200_000 : 60_000;
const seed = chaosSeed(values.seed ?? process.env['CHAOS_SEED']);
const started = Date.now();
const say = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}\n`);
say(`seed ${seed} (--seed ${seed} replays this run)`);
const report = await runChaos({ seed, durationMs, say });
process.stdout.write(`${formatReport(report, durationMs)}\n`);
const ok = report.counters.lost === 0 && report.missing.length === 0 && report.deadLettered.length === 0 && report.left === 0 && isDeepStrictEqual(report.actual, report.expected);
if (!ok) {
  for (const m of report.missing) process.stdout.write(`missing: ${m}\n`);
  if (!report.same) process.stdout.write(`database differs:\nactual ${JSON.stringify(report.actual)}\nexpected ${JSON.stringify(report.expected)}\n`);
}
say(ok ? 'passed' : 'FAILED');
process.exit(ok ? 0 : 1);
