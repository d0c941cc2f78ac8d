import t from 'tap';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { inotifyQueueLength, listArchivedJobIds, listJobIds, overflowDecision, QueueWatcher } from '../../src/eventd/watcher.js';

const log = pino({ level: 'silent' });

function until(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (pred() ? resolve() : Date.now() > deadline ? reject(new Error('timed out')) : setTimeout(tick, 10));
    tick();
  });
}

/** Writes a version the way Ganeti does: a temp file in the same directory, renamed over job-N. */
function ganetiWrite(dir: string, id: number, text: string, temp = `job-${id}-4242-1.tmp`): void {
  writeFileSync(join(dir, temp), text);
  renameSync(join(dir, temp), join(dir, `job-${id}`));
}

t.test('lists job files by their exact name', async (t) => {
  const dir = t.testdir({
    'job-3': '{}',
    'job-12': '{}',
    'job-3-99-1.tmp': '',
    'job-2721kvnmx.new': '',
    serial: '12\n',
    lock: '',
    archive: { '0': { 'job-1': '{}', 'job-2': '{}' }, '1': { 'job-10001': '{}' }, junk: {} },
  });
  t.same(await listJobIds(dir), [3, 12]);
  t.same(await listArchivedJobIds(dir), [1, 2, 10001]);
  t.same(await listArchivedJobIds(dir, 2), [2, 10001]);
  t.same(await listArchivedJobIds(dir, 10000), [10001], 'lower buckets are not listed');
  t.same(await listJobIds(join(dir, 'missing')), []);
});

t.test('renames over job-N are noticed; temp files and other names are not', async (t) => {
  const dir = t.testdir({ 'job-1': '{}' });
  const seen: number[] = [];
  const rescans: string[] = [];
  const w = new QueueWatcher({ queueDir: dir, log, onJob: (id) => seen.push(id), onRescan: (r) => rescans.push(r) });
  await w.start();
  t.teardown(() => w.close());
  t.same(rescans, ['watch started']);
  ganetiWrite(dir, 1, '{"v":2}');
  ganetiWrite(dir, 2, '{"v":1}', 'job-2abc_def1.new');
  writeFileSync(join(dir, 'job-3-1-1.tmp'), 'temp only');
  writeFileSync(join(dir, 'serial'), '3\n');
  await until(() => seen.includes(1) && seen.includes(2));
  await new Promise((r) => setTimeout(r, 200));
  t.same([...new Set(seen)].sort(), [1, 2], 'only job-N names reported');
});

t.test('the watch comes back when the queue directory is deleted and created again', async (t) => {
  const root = t.testdir();
  const dir = join(root, 'queue');
  mkdirSync(dir);
  const seen: number[] = [];
  const rescans: string[] = [];
  const w = new QueueWatcher({ queueDir: dir, log, onJob: (id) => seen.push(id), onRescan: (r) => rescans.push(r), checkIntervalMs: 50 });
  await w.start();
  t.teardown(() => w.close());
  rmSync(dir, { recursive: true });
  await new Promise((r) => setTimeout(r, 200));
  mkdirSync(dir);
  await until(() => rescans.includes('queue directory re-created'));
  ganetiWrite(dir, 7, '{}');
  await until(() => seen.includes(7));
  t.pass('events from the new directory arrive');
});

t.test("overflow suspicion: a turn with half the kernel queue's events raises it, the first quiet interval asks for the rescan", async (t) => {
  const threshold = 8192;
  t.same(overflowDecision(false, 10, threshold), { suspected: false, rescan: false }, 'ordinary traffic');
  t.same(overflowDecision(false, threshold, threshold), { suspected: true, rescan: false }, 'a burst: suspected, not rescanned in its middle');
  t.same(overflowDecision(true, threshold * 2, threshold), { suspected: true, rescan: false }, 'the burst goes on');
  t.same(overflowDecision(true, 0, threshold), { suspected: false, rescan: true }, 'the burst is over: rescan once');
  t.same(overflowDecision(false, 0, threshold), { suspected: false, rescan: false }, 'and not again');
  t.equal(inotifyQueueLength(), Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8')), "the kernel's inotify queue length");
});
