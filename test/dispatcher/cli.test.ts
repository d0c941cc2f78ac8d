// The real entry point: --help/--version, the daemon (SIGTERM exits 0; SIGKILL mid-stream loses
// nothing: the redelivered messages end in the same rows), and the operator subcommands.

import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import { allQueues } from '../../src/dispatcher/admin.js';
import { migrate, openDatabase } from '../../src/dispatcher/db.js';
import { AMQP_URL, scratchBroker, scratchDir, snapshot, waitFor, withPrefix } from '../fixtures/dispatcher/helpers.js';
import { expectedState } from '../fixtures/dispatcher/running.js';
import { isolatedEnv, runCli, spawnDaemon } from '../fixtures/dispatcher/spawn.js';
import { goldenStream, syntheticStream } from '../fixtures/dispatcher/stream.js';

t.test('queue names: five event queues, their -dl twins, the heartbeat queue', async (t) => {
  t.same(allQueues({ exchange: 'ganeti', prefix: 'snf', queueType: 'classic' }), [
    'snf-events-op',
    'snf-events-op-dl',
    'snf-events-network',
    'snf-events-network-dl',
    'snf-events-net',
    'snf-events-net-dl',
    'snf-events-progress',
    'snf-events-progress-dl',
    'snf-events-cluster',
    'snf-events-cluster-dl',
    'snf-eventd-heartbeat',
  ]);
});

t.test('--help, --version, bad input', async (t) => {
  const env = isolatedEnv(t);
  const help = await runCli(['--help'], env);
  t.equal(help.code, 0);
  for (const word of ['servers', 'networks', 'queues', 'drain-queue', 'purge-queues', 'retry-dead-letters', 'status-check', '--amqp-url', '--db-url', '--prefix', '--queue-type', '--prefetch', '--strict', '--log-level']) {
    t.match(help.stdout, word, `help mentions ${word}`);
  }
  const version = await runCli(['--version'], env);
  t.match(version.stdout, /^\d+\.\d+\.\d+/);
  t.match(await runCli(['--queue-type', 'mirrored'], env), { code: 2, stderr: /queue-type .*"mirrored" is not a queue type/ });
  t.match(await runCli(['frobnicate'], env), { code: 2, stderr: /unknown command "frobnicate"/ });
  t.match(await runCli(['servers', 'extra'], env), { code: 2, stderr: /unexpected argument "extra"/ });
  t.match(await runCli(['--db-url', 'mysql://x/y', 'servers'], env), { code: 2, stderr: /neither a SQLite file path nor a postgres:\/\/ URL/ });
  // --yes is typed by an operator: the environment cannot give it.
  const fromEnv = await runCli(['purge-queues', '--amqp-url', AMQP_URL, '--prefix', 'tnever'], { ...env, SNF_GTOOLS_YES: 'true' });
  t.match(fromEnv, { code: 2, stderr: /pass --yes to confirm/ }, 'destructive commands ask, and without a terminal refuse');
});

t.test('daemon: applies, SIGTERM exits 0; SIGKILL mid-stream loses nothing', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix, exchange } = broker.topology;
  const dbUrl = `${scratchDir(t)}/dispatcher.sqlite`;
  const env = isolatedEnv(t);
  const args = ['--amqp-url', AMQP_URL, '--exchange', exchange, '--prefix', prefix, '--db-url', dbUrl, '--prefetch', '20', '--batch-size', '20', '--log-level', 'debug'];
  const { messages } = syntheticStream({ prefix, cluster: 'c4.example.test', vms: 60, seed: 51, firstId: 100 });
  const stream = [...withPrefix(goldenStream(), prefix), ...messages];
  const expected = await expectedState(t, 'sqlite', stream, prefix);

  const first = spawnDaemon(t, args, env);
  await waitFor(() => first.lines.some((l) => l['msg'] === 'consuming'), 20_000, 'consuming');
  for (const m of stream) broker.publish(m);
  await broker.channel.waitForConfirms();
  await waitFor(() => first.lines.filter((l) => l['msg'] === 'message applied').length > 200, 20_000, 'some messages applied');
  first.child.kill('SIGKILL');
  t.same(await first.exited, { code: null, signal: 'SIGKILL' }, 'killed mid-stream');

  const second = spawnDaemon(t, args, env);
  const db = openDatabase(dbUrl);
  await migrate(db);
  t.teardown(() => db.knex.destroy());
  const queues = ['op', 'network', 'net', 'progress', 'cluster'].map((k) => broker.queueName(`events-${k}`));
  const drained = async () => {
    for (const q of queues) if ((await broker.count(q)) > 0) return false;
    return true;
  };
  await waitFor(drained, 30_000, 'the queues drained');
  // On a timeout the comparison below shows the difference.
  await waitFor(async () => isDeepStrictEqual(await snapshot(db), expected), 20_000, 'the expected rows').catch(() => undefined);
  second.child.kill('SIGTERM');
  t.same(await second.exited, { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.ok(second.lines.some((l) => l['msg'] === 'stopped'), 'logged that it stopped');
  t.same(await snapshot(db), expected, 'redelivered after the crash: the same rows as one uninterrupted run');
  for (const q of queues) t.equal(await broker.count(q), 0, `${q}: all acknowledged`);
});

t.test('operator subcommands', async (t) => {
  const broker = await scratchBroker(t);
  const { prefix, exchange } = broker.topology;
  const dbUrl = `${scratchDir(t)}/dispatcher.sqlite`;
  const env = isolatedEnv(t);
  const common = ['--amqp-url', AMQP_URL, '--exchange', exchange, '--prefix', prefix, '--db-url', dbUrl];
  const cli = (...args: string[]) => runCli([...args, ...common], env);
  const op = { type: 'ganeti-op-status', instance: `${prefix}-5`, operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [1_800_000_000, 1], jobId: 5, cluster: 'c5.example.test' };
  const now = Date.now() * 1000;
  const heartbeat = (node: string, us: number) => ({ type: 'eventd-heartbeat', cluster: 'c5.example.test', node, role: 'master', outbox: 1, event_time: [Math.floor(us / 1e6), us % 1e6] });

  // A poison message, a good one and a fresh heartbeat, then one daemon run.
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify({ ...op, status: 'waitlock' })), 'poison-1');
  broker.publishRaw(`ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify(op)), 'good-1');
  broker.publishRaw('eventd.heartbeat', Buffer.from(JSON.stringify(heartbeat('node1.example.test', now))), 'hb-1');
  // A valid message that was dead-lettered elsewhere (say by an older dispatcher): it can be retried.
  const dl = broker.queueName('events-op-dl');
  broker.channel.publish(`${exchange}-dl`, `ganeti.${prefix}.event.op`, Buffer.from(JSON.stringify({ ...op, instance: `${prefix}-6` })), { persistent: true, messageId: 'late-1' });
  await broker.channel.waitForConfirms();
  const daemon = async () => {
    const d = spawnDaemon(t, [...common, '--log-level', 'info'], env);
    await waitFor(() => d.lines.some((l) => l['msg'] === 'consuming'), 20_000, 'consuming');
    return d;
  };

  let d = await daemon();
  await waitFor(async () => (await broker.count(dl)) === 2, 10_000, 'poison-1 dead-lettered');
  const hbQueue = broker.queueName('eventd-heartbeat');
  await waitFor(async () => (await broker.count(hbQueue)) === 0, 10_000, 'heartbeat consumed');
  d.child.kill('SIGTERM');
  t.match(await d.exited, { code: 0 });

  const servers = await cli('servers', '--json');
  t.equal(servers.code, 0);
  t.match(JSON.parse(servers.stdout), [{ name: `${prefix}-5`, operstate: 'STARTED', cluster: 'c5.example.test', job: { id: 5, status: 'success' } }]);
  const table = await cli('servers');
  t.match(table.stdout, new RegExp(`^NAME +CLUSTER +STATE.*\\n${prefix}-5 +c5\\.example\\.test +STARTED`), 'servers as a table');
  t.match(JSON.parse((await cli('networks', '--json')).stdout), [], 'no networks');

  const status = await cli('status-check');
  t.equal(status.code, 0, 'a fresh master heartbeat: exit 0');
  t.match(status.stdout, /c5\.example\.test +node1\.example\.test +\d/);
  await new Promise((r) => setTimeout(r, 1200));
  const silent = await cli('status-check', '--json', '--max-silence', '1');
  t.equal(silent.code, 1, 'no heartbeat for longer than --max-silence: exit 1');
  t.match(JSON.parse(silent.stdout), [{ cluster: 'c5.example.test', master: 'node1.example.test', silent: true }]);

  const queues = JSON.parse((await cli('queues', '--json')).stdout) as { queue: string; messages: number | null }[];
  t.match(queues.find((q) => q.queue === dl), { messages: 2 }, 'queues: the -dl queue holds two');
  t.equal(queues.length, 11, 'five queues, their -dl twins and the heartbeat queue');

  // retry-dead-letters: late-1 applies now; poison-1 fails again and stays dead for good.
  t.match(await runCli(['retry-dead-letters', ...common], env), { code: 2, stderr: /--yes/ }, 'asks first');
  t.match(await cli('retry-dead-letters', broker.queueName('events-op'), '--yes'), { code: 0, stdout: /2 moved back, 0 left/ });
  d = await daemon();
  await waitFor(async () => (await broker.count(dl)) === 1, 10_000, 'poison-1 dead again');
  d.child.kill('SIGTERM');
  await d.exited;
  t.match(JSON.parse((await cli('servers', '--json')).stdout), [{ name: `${prefix}-5` }, { name: `${prefix}-6`, operstate: 'STARTED' }], 'the retried message was applied');
  t.match(await cli('retry-dead-letters', '--yes'), { code: 0, stdout: new RegExp(`${dl}: 0 moved back, 1 left`) }, 'a message that failed again is not retried twice');
  t.equal(await broker.count(dl), 1);

  t.match(await cli('drain-queue', dl, '--yes'), { code: 0, stdout: /1 messages discarded/ });
  t.equal(await broker.count(dl), 0);
  t.match(await cli('drain-queue', 'somebody-elses-queue', '--yes'), { code: 2, stderr: /not one of our queues/ });

  broker.publish({ routingKey: `ganeti.${prefix}.event.op`, messageId: 'x', type: 'ganeti-op-status', body: op });
  await broker.channel.waitForConfirms();
  const purged = await cli('purge-queues', '--yes');
  t.equal(purged.code, 0);
  t.match(purged.stdout, new RegExp(`${broker.queueName('events-op')}: deleted with 1 messages`), 'a non-empty queue is deleted too');
  const after = JSON.parse((await cli('queues', '--json')).stdout) as { messages: number | null }[];
  t.ok(after.every((q) => q.messages === null), 'every queue is gone');
});
