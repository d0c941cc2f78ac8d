// npm run bench: every benchmark in turn, each printing `BENCH ...` lines with its floor and ratio.
// BENCH_ONLY=eventd,hook runs a subset.

import { benchEventd } from './eventd.js';

const all: Record<string, () => Promise<void>> = {
  eventd: benchEventd,
};

const only = process.env.BENCH_ONLY?.split(',');
for (const [name, run] of Object.entries(all)) {
  if (only && !only.includes(name)) continue;
  process.stdout.write(`== bench/${name}\n`);
  await run();
}
