// The demo as a person runs it (scripts/demo.ts, stdout not a terminal): the recorded Ganeti run
// replayed at a high speed through the real programs, a real broker and a SQLite database, ending in
// a summary that must agree with the recorded run and with the database itself.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { openDatabase } from '../../src/dispatcher/db.js';
import { servers, networks } from '../../src/dispatcher/views.js';
import { NET_STATUS_PATHS } from '../../src/hooks/env.js';
import { recordedVersions } from '../../scripts/demo/replay.js';
import { INSTALL_BROKER, answers, onPath } from '../../scripts/demo/broker.js';
import { ROOT } from '../helpers/eventd.js';
import { freePort, sharedRabbitUrl } from '../helpers/rabbit.js';
import { createVhost } from '../helpers/vhost.js';
import { listFixtures } from '../hooks/fixtures.js';
import { STREAM_A, lines as streamLines } from '../progress-monitor/streams.js';

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runDemo(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'demo.ts'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      proc.kill('SIGINT');
      reject(new Error(`demo still running after ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const scratch = (t: Test): string => {
  const dir = mkdtempSync(join(tmpdir(), 'snf-demo-'));
  // A private broker's node (user rabbitmq) keeps its data in here.
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'demo');
};

/** The totals line's numbers by name. */
function totalsIn(line: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of (line ?? '').matchAll(/([a-z-]+) (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

/**
 * Messages the recorded run implies at the least, however fast it is replayed (eventd may see only
 * the last of several quick rewrites of a job file): the final status of every job on a Cyclades VM
 * (`snf-<id>`) or a network, one NIC report per hook run that publishes, every line of the stream.
 */
function impliedMessages(): number {
  const jobs = new Set<number>();
  for (const v of recordedVersions()) {
    const op = v.ops[0];
    if (op && (/^snf-\d+$/.test(op.instance ?? '') || op.opId.startsWith('OP_NETWORK_'))) jobs.add(v.job);
  }
  const hooks = listFixtures().filter((h) => h.phase === 'post' && NET_STATUS_PATHS.includes(h.hooksPath)).length;
  return jobs.size + hooks + streamLines(STREAM_A).length;
}

t.test('a replay at 8x: every VM and network ends as the recorded run did, totals consistent', async (t) => {
  const vhost = await createVhost(sharedRabbitUrl);
  t.teardown(() => vhost.remove());
  const dir = scratch(t);
  const started = Date.now();
  const run = await runDemo(['--speed', '8', '--amqp-url', vhost.url, '--dir', dir]);
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr}`);
  t.notOk(/\x1b/.test(run.stdout), 'no escape codes when stdout is not a terminal');
  t.ok(Date.now() - started < 60_000, 'done within a minute');

  const lines = run.stdout.split('\n');
  // The recorded run removes both instances (jobs 28, 29) and the network (jobs 30, 31).
  t.ok(lines.includes('VMs:      snf-1 DESTROYED, snf-2 DESTROYED'), 'both VMs destroyed');
  t.ok(lines.includes('networks: snf-net-1 DELETED'), 'the network deleted');
  t.ok(lines.includes('          every confirmed message was consumed by the dispatcher'), 'settled');
  const totals = totalsIn(lines.find((l) => l.startsWith('totals:')));
  t.equal(totals['published'], totals['confirmed'], 'every published message confirmed');
  t.equal(totals['applied']! + totals['unchanged']!, totals['confirmed'], 'every confirmed message consumed once');
  t.equal(totals['dead-lettered'], 0, 'nothing dead-lettered');
  t.ok(totals['confirmed']! >= impliedMessages(), `at least the ${impliedMessages()} messages the run implies (${totals['confirmed']})`);
  t.ok(totals['applied']! > totals['unchanged']!, 'most messages change something');

  // The plain lines follow the run (how many intermediate states a poll catches depends on the load).
  const changes = lines.filter((l) => /^ +\d+\.\d s {2}/.test(l)).map((l) => l.replace(/^ +\d+\.\d s {2}/, ''));
  const first = (re: RegExp) => changes.findIndex((l) => re.test(l));
  t.ok(first(/^vm snf-1: new, /) >= 0, 'snf-1 appears');
  t.ok(first(/^vm snf-1: (new, DESTROYED|\w+ -> DESTROYED$)/) >= first(/^vm snf-1: new, /), 'and is destroyed');
  t.ok(first(/^network snf-net-1: (new, DELETED|\w+ -> DELETED$)/) >= first(/^network snf-net-1: new/), 'the network appears and is deleted');
  t.ok(first(/^published \d+  confirmed \d+  applied \d+  unchanged \d+  dead-lettered 0$/) >= 0, 'the totals as they change');

  // The summary says what the database says.
  const dbPath = join(dir, 'dispatcher.sqlite');
  t.ok(lines.some((l) => l.includes(`database ${dbPath}`)), 'the summary names the database');
  const db = openDatabase(dbPath);
  t.teardown(() => db.knex.destroy());
  t.same(
    (await servers(db)).map((s) => [s.name, s.operstate, s.deleted]),
    [
      ['snf-1', 'DESTROYED', true],
      ['snf-2', 'DESTROYED', true],
    ],
  );
  t.same(
    (await networks(db)).map((n) => [n.name, n.operstate, n.deleted]),
    [['snf-net-1', 'DELETED', true]],
  );
  t.notOk(readdirSync(join(dir, 'outbox')).some((f) => !f.startsWith('.')), 'the outbox is empty');
});

t.test('no broker answering and no rabbitmq-server: says exactly what to install', async (t) => {
  const port = await freePort();
  const dir = scratch(t);
  // PATH with node alone: no rabbitmq-server on it.
  const run = await runDemo(['--amqp-url', `amqp://guest:guest@127.0.0.1:${port}`, '--dir', dir], { ...process.env, PATH: dirname(process.execPath) });
  t.equal(run.code, 1);
  t.match(run.stderr, `install it with:\n  ${INSTALL_BROKER}\n`);
  t.notOk(existsSync(dir), 'nothing was set up');
});

// Without rabbitmq-server this cannot run: skipped on a developer's machine, a failure in CI.
const noRabbit = !onPath('rabbitmq-server') && !process.env.CI ? 'rabbitmq-server is not installed' : false;
t.test('no broker answering: a private RabbitMQ node beside the demo directory, stopped at the end', { skip: noRabbit }, async (t) => {
  if (!onPath('rabbitmq-server')) {
    t.fail('rabbitmq-server is not installed');
    return;
  }
  const port = await freePort();
  const dir = scratch(t);
  const run = await runDemo(['--speed', '30', '--amqp-url', `amqp://guest:guest@127.0.0.1:${port}`, '--dir', dir]);
  t.equal(run.code, 0, `exit code 0\n${run.stdout}\n${run.stderr}`);
  t.match(run.stdout, /starting a private RabbitMQ node/);
  const node = /broker: a private RabbitMQ node \S+ on port (\d+) \(data in (\S+),/.exec(run.stdout);
  t.ok(node, 'it says which node');
  t.equal(dirname(node![2]!), dirname(dir), 'its data beside the demo directory');
  t.ok(run.stdout.includes('VMs:      snf-1 DESTROYED, snf-2 DESTROYED'), 'the replay ran through it');
  t.notOk(existsSync(node![2]!), 'its data directory is removed');
  t.notOk(await answers(`amqp://guest:guest@127.0.0.1:${node![1]}`, 1000), 'and it no longer answers');
});
