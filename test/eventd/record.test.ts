import t from 'tap';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatLogLine, parseLogLine, PublishedRecord } from '../../src/eventd/record.js';

t.test('log lines round-trip; torn or foreign lines are dropped', async (t) => {
  for (const line of [
    { kind: 'op', jobId: 12, opIndex: 2, transition: 'running:3' },
    { kind: 'seen', jobId: 7 },
    { kind: 'done', jobId: 7 },
    { kind: 'floor', doneBelow: 100 },
  ] as const) {
    t.same(parseLogLine(formatLogLine(line).trimEnd()), line);
  }
  t.equal(parseLogLine('op 12 2 runn'), undefined, 'torn transition');
  t.equal(parseLogLine('op 12'), undefined);
  t.equal(parseLogLine('done x'), undefined);
  t.equal(parseLogLine('\u0000\u0001'), undefined);
});

t.test('survives a restart: snapshot plus log, torn tail ignored', async (t) => {
  const dir = t.testdir();
  const a = new PublishedRecord(dir);
  t.equal(a.fresh, true);
  a.markPublished(5, 0, 'queued:0');
  a.markPublished(5, 0, 'success:4');
  a.markSeen(6);
  a.markPublished(6, 1, 'running:2');
  a.markDone(5);
  a.flush();
  // A crash: no close(); the last append is torn.
  appendFileSync(join(dir, 'record.log'), 'op 6 1 succ');
  const b = new PublishedRecord(dir);
  t.equal(b.fresh, false);
  t.same(b.get(5), { ops: ['success:4'], done: true });
  t.same(b.get(6), { ops: [null, 'running:2'], done: false });
});

t.test('the floor passes finished jobs only up to the last full scan', async (t) => {
  const dir = t.testdir();
  const r = new PublishedRecord(dir);
  for (const id of [1, 2, 4]) {
    r.markPublished(id, 0, 'success:1');
    r.markDone(id);
  }
  r.markSeen(5);
  r.compact();
  t.equal(r.doneBelow, 0, 'no full scan yet: the floor stays');
  r.scannedBelow(10);
  r.compact();
  t.equal(r.doneBelow, 5, 'up to the first job still owed something (3 did not exist)');
  t.equal(r.isDone(3), true);
  t.equal(r.isDone(5), false);
  t.equal(r.get(1), undefined, 'finished jobs below the floor are forgotten');
  r.markDone(5);
  r.compact();
  t.equal(r.doneBelow, 10, 'never past the scan horizon');
  r.close();
  const again = new PublishedRecord(dir);
  t.equal(again.doneBelow, 10);
  t.match(readFileSync(join(dir, 'record.json'), 'utf8'), /"doneBelow":10/);
});

t.test('raiseFloor declares history handled', async (t) => {
  const r = new PublishedRecord(t.testdir());
  r.raiseFloor(50);
  t.equal(r.isDone(49), true);
  t.equal(r.isDone(50), false);
  r.raiseFloor(10);
  t.equal(r.doneBelow, 50, 'never lowered');
});

t.test('reset forgets the old cluster\'s jobs', async (t) => {
  const dir = t.testdir();
  const r = new PublishedRecord(dir);
  r.markPublished(1, 0, 'success:3');
  r.markDone(1);
  r.markSeen(9);
  r.scannedBelow(10);
  r.compact();
  t.equal(r.highestJobId(), 9);
  r.reset();
  t.equal(r.get(1), undefined);
  t.equal(r.isDone(1), false, 'job 1 of the new cluster is owed everything');
  t.equal(r.highestJobId(), -1);
  r.close();
  t.equal(new PublishedRecord(dir).isDone(1), false, 'also after a restart');
});
