// The demo empties its directory at each run: only when it holds nothing but what the demo makes, so
// that a mistyped --dir is never wiped.

import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyDemoDir, NotDemoDirError } from '../../scripts/demo/replay.js';

t.test('a new, an empty or an earlier demo directory is (re)made empty', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'snf-demo-dir-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  const fresh = join(base, 'a', 'demo');
  emptyDemoDir(fresh);
  t.same(readdirSync(fresh), []);
  for (const d of ['queue', 'state', 'logs']) mkdirSync(join(fresh, d));
  for (const f of ['dispatcher.sqlite', 'dispatcher.sqlite-wal', 'snf-cyclades-gtools', 'queue/job-4']) writeFileSync(join(fresh, f), 'x');
  emptyDemoDir(fresh);
  t.same(readdirSync(fresh), [], 'everything the demo made is gone');
});

t.test('a directory with anything else in it is refused and left alone', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'snf-demo-dir-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  mkdirSync(join(base, 'queue'));
  writeFileSync(join(base, 'thesis.tex'), 'x');
  let thrown: unknown;
  try {
    emptyDemoDir(base);
  } catch (err) {
    thrown = err;
  }
  t.ok(thrown instanceof NotDemoDirError, 'a NotDemoDirError (the demo prints it and exits 1)');
  t.throws(() => emptyDemoDir(base), /refusing to empty .*: it holds what the demo did not make \(thesis\.tex\)/);
  t.ok(existsSync(join(base, 'thesis.tex')));
  t.ok(existsSync(join(base, 'queue')));
});
