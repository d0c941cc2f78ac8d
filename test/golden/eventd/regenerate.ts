// Rewrites test/golden/eventd/job-<N>.json from the fixtures: `npx tsx test/golden/eventd/regenerate.ts`.
// Review the diff by hand against the spec before committing: the goldens are the expected output.

import { writeFileSync } from 'node:fs';
import { fixtureJobs, goldenPath, goldenText, replayJob } from './replay.js';

for (const entry of fixtureJobs()) {
  const golden = replayJob(entry);
  writeFileSync(goldenPath(entry.job), goldenText(golden));
  console.log(`job-${entry.job}: ${golden.published.length} published, ${golden.notPublished.length} not published`);
}
