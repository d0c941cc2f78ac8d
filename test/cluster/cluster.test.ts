// Issue 7, RabbitMQ cluster: eventd, the hook, the progress monitor and two dispatchers (on one
// PostgreSQL database) run against a private three-node RabbitMQ cluster with quorum queues. While
// copies of the captured Ganeti scenario stream through, the node each program is connected to is
// stopped in turn (and started again before the next, so that the quorum queues keep a majority):
// every program reconnects to another node, and the database ends exactly as one in-order
// application of the same work on an empty database. The hook never talks to a broker (it hands its
// message to eventd through the outbox), so it has no connection to lose.

import t from 'tap';
import { isWatching } from '../helpers/eventd.js';
import { buildPrograms } from '../hooks/build.js';
import { scratchPostgres, waitFor } from '../fixtures/dispatcher/helpers.js';
import { feedScenario } from './feed.js';
import { connections, deadLettered, disconnections, runDispatcher, runEventd, type RunningProgram } from './programs.js';
import { buildScenario } from './scenario.js';
import { settle, startWorld } from './world.js';

const PROGRESS_GAP_MS = 2000;
// Three broker nodes, the programs and (chaos) PostgreSQL on two shared cores: slow, not stuck.
t.setTimeout(900_000);

t.test('every program fails over to another node; the database ends as without faults', async (t) => {
  const world = await startWorld();
  t.teardown(() => world.destroy());
  const { cluster, deployment, dirs } = world;
  const dbUrl = await scratchPostgres(t);
  const referenceDbUrl = await scratchPostgres(t);

  const eventd = runEventd(deployment, dirs);
  const dispatchers = [runDispatcher(deployment, dbUrl), runDispatcher(deployment, dbUrl)];
  t.teardown(async () => {
    for (const p of [eventd, ...dispatchers]) await p.stop('SIGKILL');
  });
  await eventd.waitForLog(isWatching, 120_000);
  for (const d of dispatchers) await d.waitForLog((l) => l['msg'] === 'consuming', 120_000);

  buildPrograms(); // compiled now, not on the stream's clock
  const scenario = buildScenario({
    copies: 4,
    startEpochMs: Date.now() + 1000,
    spacingMs: 10_000,
    msPerSecond: 1000,
    createMs: 12 * PROGRESS_GAP_MS + 3000,
    progressGapMs: PROGRESS_GAP_MS,
  });
  const feeding = feedScenario(scenario, { deployment, queueDir: dirs.queueDir, outboxDir: dirs.outboxDir });
  let fed = false;
  const fedOrFailed = feeding.done.finally(() => (fed = true));
  fedOrFailed.catch(() => undefined);
  await waitFor(() => feeding.monitors.length > 0 && connections(feeding.monitors[0]!).length > 0, 60_000, 'the first monitor connected');

  // The monitor first: it lives only as long as its stream.
  const programs: [string, RunningProgram][] = [
    ['progress monitor', feeding.monitors[0]!],
    ['eventd', eventd],
    ['dispatcher 1', dispatchers[0]!],
    ['dispatcher 2', dispatchers[1]!],
  ];
  const nodeOf = (p: RunningProgram) => cluster.nodeOfUrl(connections(p).at(-1)?.url ?? '');
  const reconnects: { program: string; from: string; to: string; ms: number; afterNoticeMs: number }[] = [];
  const pending = new Set(programs.map(([name]) => name));
  while (pending.size > 0) {
    const [name, program] = programs.find(([n]) => pending.has(n))!;
    const node = nodeOf(program);
    if (node === undefined) throw new Error(`${name} is connected to no node of the cluster`);
    // Every program on that node loses its connection, the chosen one among them.
    const victims = programs.filter(([, p]) => nodeOf(p) === node && p.proc.exitCode === null);
    const before = new Map(victims.map(([n, p]) => [n, connections(p).length]));
    const noticed = new Map(victims.map(([n, p]) => [n, disconnections(p).length]));
    const stoppedAt = Date.now();
    await node.stop();
    for (const [n, p] of victims) {
      await waitFor(() => connections(p).length > (before.get(n) ?? 0), 120_000, `${n} reconnected after ${node.nodeName} stopped`).catch((err: Error) => {
        throw new Error(`${err.message}; its last lines:\n${p.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
      });
      const last = connections(p).at(-1)!;
      const lostAt = disconnections(p)[noticed.get(n) ?? 0] ?? NaN;
      reconnects.push({ program: n, from: node.nodeName, to: cluster.nodeOfUrl(last.url)?.nodeName ?? last.url, ms: last.time - stoppedAt, afterNoticeMs: last.time - lostAt });
      pending.delete(n);
    }
    await node.start();
    await waitFor(async () => (await cluster.runningNodes()).length === 3, 120_000, `${node.nodeName} back in the cluster`, 1000);
  }
  t.ok(!fed, 'the faults happened while the stream was still being fed');
  for (const r of reconnects) {
    t.not(r.to, r.from, `${r.program}: reconnected to another node`);
    t.comment(`${r.program}: ${r.from} stopped → connected to ${r.to} ${r.ms} ms after the stop command, ${r.afterNoticeMs} ms after it noticed the loss`);
  }
  t.same(new Set(reconnects.map((r) => r.program)), new Set(programs.map(([n]) => n)), 'every program lost its node and reconnected');

  const finals = await fedOrFailed;
  const outcome = await settle(world, scenario, {
    finals,
    dispatchers,
    dbUrl,
    referenceDbUrl,
    timeoutMs: 180_000,
    stopProducers: async () => {
      t.equal(await eventd.stop('SIGTERM'), 0, 'eventd: SIGTERM, exit 0');
    },
  });
  t.comment(`counters: ${JSON.stringify(outcome.counters)}`);
  t.same(outcome.missing, [], 'every required message reached the database');
  t.equal(outcome.counters.lost, 0, 'nothing lost');
  t.equal(outcome.left, 0, 'nothing left in the queues, nothing dead-lettered');
  t.same(dispatchers.flatMap(deadLettered), [], 'no dispatcher dead-lettered a message');
  t.same(outcome.actual, outcome.expected, 'the database equals one in-order application of the same work');
  for (const d of dispatchers) t.equal(await d.stop('SIGTERM'), 0, 'dispatcher: SIGTERM, exit 0');
});
