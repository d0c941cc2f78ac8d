// Replays the captured Ganeti 3.0 job files (test/fixtures/ganeti-3.0) through eventd's pure core
// the way the daemon does on each job-file write: parse → build → publish on change → record.
// Shared by golden.test.ts and regenerate.ts so both see exactly the same replay.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { routingPrefix } from '../../../src/common/topology.js';
import { parseJobFile } from '../../../src/eventd/jobfile.js';
import { buildOpEvents, type BuildContext } from '../../../src/eventd/opmessages.js';
import { opsToPublish, recordAfter, type JobRecord } from '../../../src/eventd/transitions.js';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURES = join(here, '..', '..', 'fixtures', 'ganeti-3.0');
export const GOLDEN_DIR = here;

export const GOLDEN_CONTEXT: BuildContext = {
  cluster: 'cluster1.example.test',
  nowMs: 1_795_600_000_000,
  acceptsName: (name) => routingPrefix(name) === 'snf',
};

interface IndexFile {
  jobs: { job: number; versions: { file: string }[] }[];
}

export interface GoldenJob {
  job: number;
  /** Every message published while replaying the versions in write order. */
  published: { version: string; opIndex: number; routingKey: string; messageId: string; type: string; body: unknown; warning?: string }[];
  /** Ops that were not published, with why (one entry per version in which they were seen). */
  notPublished: { version: string; opIndex: number; kind: string; reason: string }[];
}

export function fixtureJobs(): IndexFile['jobs'] {
  return (JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8')) as IndexFile).jobs;
}

/** The bytes of a fixture version as captured; the fuzz tests pass re-serialised versions instead. */
export const readFixture = (file: string): Buffer => readFileSync(join(FIXTURES, file));

export function replayJob(
  entry: IndexFile['jobs'][number],
  ctx: BuildContext = GOLDEN_CONTEXT,
  read: (file: string) => string | Uint8Array = readFixture,
): GoldenJob {
  const golden: GoldenJob = { job: entry.job, published: [], notPublished: [] };
  let record: JobRecord | undefined;
  for (const { file } of entry.versions) {
    const version = file.split('/').pop() ?? file;
    const events = buildOpEvents(parseJobFile(read(file), file), ctx);
    const toPublish = opsToPublish(record, events);
    for (const e of toPublish) {
      const { routingKey, messageId, type, body } = e.message;
      golden.published.push({ version, opIndex: e.opIndex, routingKey, messageId, type, body, ...(e.warning ? { warning: e.warning } : {}) });
    }
    for (const e of events) {
      if (e.kind !== 'publish') golden.notPublished.push({ version, opIndex: e.opIndex, kind: e.kind, reason: e.reason });
    }
    record = recordAfter(record, toPublish);
  }
  return golden;
}

export const goldenPath = (job: number): string => join(GOLDEN_DIR, `job-${job}.json`);

/** Stable text: two-space JSON with a final newline, so diffs of regenerated files are readable. */
export const goldenText = (golden: GoldenJob): string => `${JSON.stringify(golden, null, 2)}\n`;
