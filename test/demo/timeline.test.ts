// The replay's timeline, pure, on the recorded Ganeti 3.0 run itself: every job-file version, the post
// hooks of the paths the package installs the hook into, and snf-image's stream inside the create.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { recordedVersions, replayTimeline } from '../../scripts/demo/replay.js';
import { buildTimeline, fitStream, installedHookPaths, monitoredInstances, type Step } from '../../scripts/demo/timeline.js';
import { ROOT } from '../helpers/eventd.js';
import { listFixtures } from '../hooks/fixtures.js';
import { STREAM_A, lines } from '../progress-monitor/streams.js';

t.test('installedHookPaths: the post.d directories of the debhelper links file', async (t) => {
  t.same(installedHookPaths(readFileSync(join(ROOT, 'debian', 'snf-cyclades-gtools.links'), 'utf8')), [
    'instance-add',
    'instance-start',
    'instance-reboot',
    'instance-modify',
    'instance-stop',
  ]);
  t.same(installedHookPaths('usr/lib/x/main.js usr/bin/x\nusr/lib/x/h etc/ganeti/hooks/instance-add-pre.d/h\n'), [], 'pre phases and other links are not post hooks');
});

t.test('fitStream keeps the relative spacing inside the window', async (t) => {
  const stream = ['{"timestamp": 10}', '{"timestamp": 12}', '{"timestamp": 20}'];
  t.same(
    fitStream(stream, 100, 105).map((s) => s.t),
    [100, 101, 105],
  );
  t.same(fitStream(['{"timestamp": 3}'], 7, 9), [{ t: 7, line: '{"timestamp": 3}' }], 'one line goes at the start');
  t.throws(() => fitStream(['{"type": "x"}'], 0, 1), /without a numeric timestamp/);
});

const byKind = (steps: Step[], kind: Step['kind']) => steps.filter((s) => s.kind === kind);

t.test('the recorded run on one timeline, at its recorded pace', async (t) => {
  const versions = recordedVersions();
  const steps = replayTimeline(1);
  t.equal(byKind(steps, 'job').length, versions.length, 'every recorded job-file version once');
  t.same(
    steps.map((s) => s.at),
    [...steps.map((s) => s.at)].sort((a, b) => a - b),
    'in time order',
  );
  t.equal(steps[0]!.at, 0);
  const span = (Math.max(...versions.map((v) => v.t)) - Math.min(...versions.map((v) => v.t))) * 1000;
  t.ok(Math.abs(steps[steps.length - 1]!.at - span) < 1, `the last step at the recorded span (${span.toFixed(0)} ms)`);

  const hooks = byKind(steps, 'hook');
  const expected = listFixtures().filter((h) => h.phase === 'post' && h.hooksPath.startsWith('instance-') && h.hooksPath !== 'instance-remove');
  t.same(
    hooks.map((h) => (h.kind === 'hook' ? h.name : '')),
    expected.map((h) => h.name),
    'the post hooks of add, start, reboot, modify and stop, in order; no pre hooks, no network or cluster hooks',
  );

  // snf-image ran inside the one successful create (job 4, snf-1); job 19's create failed its prerequisites.
  t.same(monitoredInstances(steps), ['snf-1']);
  const streamed = byKind(steps, 'monitor-line');
  t.same(
    streamed.map((s) => (s.kind === 'monitor-line' ? s.line : '')),
    lines(STREAM_A),
    'the recorded stream, line by line',
  );
  const job4 = steps.filter((s) => s.kind === 'job' && s.job === 4);
  const running = job4.find((s) => s.label.endsWith('running'))!;
  const postHook = hooks.find((h) => h.kind === 'hook' && h.name === '07-instance-add-post')!;
  const end = byKind(steps, 'monitor-end')[0]!;
  t.equal(streamed[0]!.at, running.at, 'the stream starts when the op runs');
  t.ok(streamed[streamed.length - 1]!.at < postHook.at, 'and ends before the post hook');
  t.equal(end.at, postHook.at, 'stdin is closed at the post hook');
});

t.test('the speed factor divides every offset', async (t) => {
  const one = replayTimeline(1);
  const eight = replayTimeline(8);
  t.equal(eight.length, one.length);
  for (const [i, s] of eight.entries()) t.ok(Math.abs(s.at * 8 - one[i]!.at) < 1e-6, `step ${i}`);
  t.throws(() => buildTimeline({ versions: [], hooks: [], hookPaths: [], progressStream: [], speed: 0 }), /speed must be positive/);
});
