// The line of totals, pure: Prometheus text from the real metric definitions, the monitors' closing
// log lines, and what "settled" means.

import t from 'tap';
import { createDispatcherMetrics, createEventdMetrics, createRegistry } from '../../src/common/metrics.js';
import { monitorCounts, parseMetrics, settled, sumOf, totalsOf } from '../../scripts/demo/totals.js';

t.test('parseMetrics reads what prom-client writes, labels and all', async (t) => {
  const samples = parseMetrics(
    [
      '# HELP x_total some help',
      '# TYPE x_total counter',
      'x_total{type="ganeti-op-status",program="snf-ganeti-eventd"} 12',
      'x_total{type="with \\"quote\\"",program="p"} 3',
      'y 0.5',
      '',
    ].join('\n'),
  );
  t.same(samples, [
    { name: 'x_total', labels: { type: 'ganeti-op-status', program: 'snf-ganeti-eventd' }, value: 12 },
    { name: 'x_total', labels: { type: 'with "quote"', program: 'p' }, value: 3 },
    { name: 'y', labels: {}, value: 0.5 },
  ]);
  t.equal(sumOf(samples, 'x_total'), 15);
  t.equal(sumOf(samples, 'x_total', { program: 'p' }), 3);
  t.equal(sumOf(samples, 'nothing'), 0);
});

t.test('totals from the daemons\' own registries and the monitors\' counts', async (t) => {
  const eventdRegistry = createRegistry('snf-ganeti-eventd', { defaultMetrics: false });
  const e = createEventdMetrics(eventdRegistry);
  e.published.inc({ type: 'ganeti-op-status' }, 90);
  e.published.inc({ type: 'ganeti-net-status' }, 10);
  e.confirmed.inc({ type: 'ganeti-op-status' }, 89);
  e.confirmed.inc({ type: 'ganeti-net-status' }, 10);
  const dispatcherRegistry = createRegistry('snf-dispatcher', { defaultMetrics: false });
  const d = createDispatcherMetrics(dispatcherRegistry);
  d.outcome('snf-events-op', 'applied', 80);
  d.outcome('snf-events-net', 'applied', 20);
  d.outcome('snf-events-progress', 'ignored', 5);
  d.outcome('snf-events-op', 'dead_lettered', 1);
  d.outcome('snf-events-op', 'retried', 2);
  const monitor = { objects: 12, confirmed: 10, outboxed: 2, lost: 0 };
  const totals = totalsOf(parseMetrics(await eventdRegistry.metrics()), parseMetrics(await dispatcherRegistry.metrics()), [monitor]);
  // The monitor's two outboxed messages are eventd's to publish (and count): only its 10 direct sends add.
  t.same(totals, { published: 110, confirmed: 109, applied: 100, ignored: 5, deadLettered: 1, retried: 2 });
  t.notOk(settled(totals), 'one message not confirmed yet');
  t.ok(settled({ published: 106, confirmed: 106, applied: 100, ignored: 5, deadLettered: 1, retried: 2 }));
  t.notOk(settled({ published: 106, confirmed: 106, applied: 99, ignored: 5, deadLettered: 1, retried: 3 }), 'one held for retry is not consumed yet');
});

t.test('monitorCounts: the closing "finished" line only', async (t) => {
  const line =
    '{"level":"info","name":"snf-progress-monitor","instance":"snf-1","objects":12,"skipped":0,"confirmed":12,"outboxed":0,"outboxEntries":0,"lost":0,"msg":"finished"}';
  t.same(monitorCounts(line), { objects: 12, confirmed: 12, outboxed: 0, lost: 0 });
  t.same(monitorCounts(line.replace('"finished"', '"finished; some messages were lost"').replace('"lost":0', '"lost":3')), { objects: 12, confirmed: 12, outboxed: 0, lost: 3 });
  t.equal(monitorCounts('{"msg":"publisher closed"}'), undefined);
  t.equal(monitorCounts('snf-progress-monitor: usage'), undefined);
});
