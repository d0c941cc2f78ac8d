// The real daemons under a fake systemd: NOTIFY_SOCKET points at a datagram socket this test listens
// on (python3), WATCHDOG_USEC asks for pings. READY=1 must come only once the program works (broker
// connected, topology declared, watching or consuming), WATCHDOG=1 pings must follow, STOPPING=1 on
// SIGTERM; with the broker unreachable there is no READY. The metrics endpoint is scraped too.

import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp from 'amqplib';
import { fixtureBytes, fixtureVersions, makeDirs, renameJobVersion } from '../helpers/eventd.js';
import { deleteTopology, freePort, sharedRabbitUrl, uniqueTopology } from '../helpers/rabbit.js';
import { startNotifySocket, type NotifySocket } from './helpers/notify-socket.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WATCHDOG_USEC = 1_000_000;

interface Daemon {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | string>;
  stop(): Promise<number | string>;
}

function startDaemon(program: string, args: string[], notifySocket: string): Daemon {
  const env: NodeJS.ProcessEnv = { ...process.env, NOTIFY_SOCKET: notifySocket, WATCHDOG_USEC: String(WATCHDOG_USEC) };
  delete env.WATCHDOG_PID;
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', program, 'main.ts'), '--settings-file', '/dev/null', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  proc.stdout!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    output: () => text.slice(-3000),
    exited,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Publishes raw bodies (a string is sent as is, to make poison) with plain amqplib. */
async function publishRaw(url: string, exchange: string, messages: { key: string; body: unknown }[]): Promise<void> {
  const conn = await amqp.connect(url);
  const ch = await conn.createConfirmChannel();
  messages.forEach((m, i) => {
    const content = Buffer.from(typeof m.body === 'string' ? m.body : JSON.stringify(m.body));
    ch.publish(exchange, m.key, content, { persistent: true, messageId: `metrics-test-${i}` });
  });
  await ch.waitForConfirms();
  await conn.close();
}

function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** READY after start, pings after READY, STOPPING and exit 0 on SIGTERM. */
/** A series line of the scrape: the metric, labels that must be among its labels, and its value. */
function series(name: string, labels: string, value: string): RegExp {
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const inner = labels === '' ? '[^}]*' : `(?:[^}]*,)?${esc(labels)}(?:,[^}]*)?`;
  return new RegExp(`^${name}\\{${inner}\\} ${value}$`, 'm');
}

interface MetricsCheck {
  url: string;
  /** Gives the daemon work to count, once it is ready. */
  exercise: () => Promise<void>;
  /** Lines the scrape must then contain. */
  expect: RegExp[];
}

async function lifecycle(t: Test, daemon: Daemon, sock: NotifySocket, metrics?: MetricsCheck): Promise<void> {
  const ready = await sock.waitFor((m) => m.fields.READY === '1', 30_000).catch((err: Error) => {
    throw new Error(`${err.message}\n--- output:\n${daemon.output()}`);
  });
  t.pass(`READY=1${ready.fields.STATUS ? ` with STATUS=${ready.fields.STATUS}` : ''}`);
  t.ok(sock.messages.some((m) => m.fields.STATUS), 'STATUS lines tell what it is doing');
  const readyIndex = sock.messages.indexOf(ready);
  await sock.waitFor((m) => m.fields.WATCHDOG === '1', 5000, readyIndex + 1);
  await sleep(1600);
  const pings = sock.messages.slice(readyIndex + 1).filter((m) => m.fields.WATCHDOG === '1').length;
  t.ok(pings >= 2, `WATCHDOG=1 pings at half of WATCHDOG_USEC (${pings})`);
  if (metrics) {
    await metrics.exercise();
    let body = '';
    const deadline = Date.now() + 10_000;
    do {
      body = await scrape(metrics.url);
      if (metrics.expect.every((re) => re.test(body))) break;
      await sleep(200);
    } while (Date.now() < deadline);
    t.match(body, /^snf_amqp_connected(\{[^}]*\})? 1$/m, 'metrics: connected to the broker');
    for (const re of metrics.expect) t.match(body, re, `metrics: ${re.source}`);
  }
  const before = sock.messages.length;
  const code = await daemon.stop();
  t.equal(code, 0, 'exits 0 on SIGTERM');
  await sleep(200);
  t.ok(sock.messages.slice(before).some((m) => m.fields.STOPPING === '1'), 'STOPPING=1 on SIGTERM');
}

t.test('snf-ganeti-eventd', async (t) => {
  const topology = uniqueTopology();
  const root = mkdtempSync(join(tmpdir(), 'eventd-notify-'));
  t.teardown(async () => {
    rmSync(root, { recursive: true, force: true });
    await deleteTopology(sharedRabbitUrl, topology).catch(() => {});
  });
  const dirs = makeDirs(root);
  const common = ['--queue-dir', dirs.queueDir, '--ganeti-data-dir', dirs.dataDir, '--state-dir', dirs.stateDir, '--outbox-dir', dirs.outboxDir];
  const node = ['--node-name', 'node1.example.test', '--exchange', topology.exchange, '--prefix', topology.prefix];

  t.test('broker reachable', async (t) => {
    const sock = await startNotifySocket();
    t.teardown(() => sock.close());
    const metricsPort = await freePort();
    const daemon = startDaemon('eventd', [...common, ...node, '--amqp-url', sharedRabbitUrl, '--metrics-port', String(metricsPort)], sock.path);
    t.teardown(() => daemon.stop());
    await lifecycle(t, daemon, sock, {
      url: `http://127.0.0.1:${metricsPort}/metrics`,
      // A cluster job: cluster messages are published whatever the prefix.
      exercise: async () => {
        for (const v of fixtureVersions().filter((v) => v.job === 23)) {
          renameJobVersion(dirs.queueDir, 23, fixtureBytes(v.file));
          await sleep(20);
        }
      },
      expect: [
        series('snf_jobfile_events_total', '', '[1-9]\\d*'),
        series('snf_messages_published_total', 'type="ganeti-cluster-status"', '[1-9]\\d*'),
        series('snf_messages_confirmed_total', 'type="ganeti-cluster-status"', '[1-9]\\d*'),
        series('snf_jobfile_rename_to_confirm_seconds_count', '', '[1-9]\\d*'),
        series('snf_outbox_messages', '', '0'),
        series('snf_eventd_master', '', '1'),
        series('snf_jobfile_parse_errors_total', '', '0'),
      ],
    });
  });

  t.test('broker unreachable: no READY', async (t) => {
    const sock = await startNotifySocket();
    t.teardown(() => sock.close());
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}/`;
    const daemon = startDaemon('eventd', [...common, ...node, '--amqp-url', dead], sock.path);
    t.teardown(() => daemon.stop());
    await sleep(5000);
    t.equal(daemon.proc.exitCode, null, 'still running, retrying the broker');
    t.notOk(sock.messages.some((m) => m.fields.READY), `no READY=1 (got ${JSON.stringify(sock.messages.map((m) => m.raw))})`);
  });
});

t.test('snf-dispatcher', async (t) => {
  const topology = uniqueTopology();
  const root = mkdtempSync(join(tmpdir(), 'dispatcher-notify-'));
  t.teardown(async () => {
    rmSync(root, { recursive: true, force: true });
    await deleteTopology(sharedRabbitUrl, topology).catch(() => {});
  });
  const common = ['--db-url', join(root, 'dispatcher.sqlite'), '--exchange', topology.exchange, '--prefix', topology.prefix];

  t.test('broker reachable', async (t) => {
    const sock = await startNotifySocket();
    t.teardown(() => sock.close());
    const metricsPort = await freePort();
    const daemon = startDaemon('dispatcher', [...common, '--amqp-url', sharedRabbitUrl, '--metrics-port', String(metricsPort)], sock.path);
    t.teardown(() => daemon.stop());
    const nowS = Math.floor(Date.now() / 1000);
    await lifecycle(t, daemon, sock, {
      url: `http://127.0.0.1:${metricsPort}/metrics`,
      exercise: () =>
        publishRaw(sharedRabbitUrl, topology.exchange, [
          { key: 'ganeti.event.cluster', body: { type: 'ganeti-cluster-status', operation: 'OP_CLUSTER_SET_PARAMS', status: 'success', cluster: 'c1.example.test', event_time: [nowS, 0], jobId: 1, logmsg: null, result: null } },
          { key: 'eventd.heartbeat', body: { type: 'eventd-heartbeat', cluster: 'c1.example.test', node: 'n1', role: 'master', outbox: 0, event_time: [nowS, 0] } },
          { key: 'ganeti.event.cluster', body: 'not json' },
        ]),
      expect: [
        series('snf_dispatcher_messages_total', `queue="${topology.prefix}-events-cluster",outcome="applied"`, '1'),
        series('snf_dispatcher_messages_total', `queue="${topology.prefix}-events-cluster",outcome="dead_lettered"`, '1'),
        series('snf_dispatcher_transaction_seconds_count', '', '[1-9]\\d*'),
        series('snf_dispatcher_heartbeat_age_seconds', 'cluster="c1.example.test"', '[\\d.e+-]+'),
      ],
    });
  });

  t.test('broker unreachable: no READY', async (t) => {
    const sock = await startNotifySocket();
    t.teardown(() => sock.close());
    const dead = `amqp://guest:guest@127.0.0.1:${await freePort()}/`;
    const daemon = startDaemon('dispatcher', [...common, '--amqp-url', dead], sock.path);
    t.teardown(() => daemon.stop());
    await sleep(5000);
    t.equal(daemon.proc.exitCode, null, 'still running, retrying the broker');
    t.notOk(sock.messages.some((m) => m.fields.READY), `no READY=1 (got ${JSON.stringify(sock.messages.map((m) => m.raw))})`);
  });
});
