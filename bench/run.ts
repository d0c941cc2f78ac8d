// npm run bench: every benchmark in turn, each in its own process (so one's memory and event loop
// cannot skew another's), each printing its floor and the ratio. BENCH_ONLY=eventd,hook runs a subset.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const names = ['eventd', 'hook', 'progress', 'dispatcher'];
const only = process.env.BENCH_ONLY?.split(',');
let failed = false;
for (const name of names) {
  if (only && !only.includes(name)) continue;
  const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
  if (!existsSync(script)) continue;
  process.stdout.write(`== bench/${name}\n`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', script], { stdio: 'inherit' });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
