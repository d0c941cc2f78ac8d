// The metrics registry, definitions and server, scraped over real HTTP; the publisher instrumentation
// against the machine's broker (unique topology).

import t from 'tap';
import { request } from 'node:http';
import { createLogger } from '../../src/common/log.js';
import {
  createDispatcherMetrics,
  createEventdMetrics,
  createRegistry,
  instrumentPublisher,
  metricsSettings,
  startMetricsServer,
} from '../../src/common/metrics.js';
import { Publisher } from '../../src/common/publisher.js';
import { loadSettings } from '../../src/common/settings.js';
import { routingKey } from '../../src/common/topology.js';
import { deleteTopology, sharedRabbitUrl, uniqueTopology } from '../helpers/rabbit.js';

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line, e.g. `snf_outbox_messages{program="x"}`; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

t.test('eventd and dispatcher metrics are served at /metrics on loopback', async (t) => {
  const registry = createRegistry('snf-test');
  let outbox = 7;
  const ev = createEventdMetrics(registry, { outboxMessages: async () => outbox, isMaster: () => true });
  const disp = createDispatcherMetrics(registry);
  const server = await startMetricsServer({ registry, port: 0 });
  t.teardown(() => server.close());
  t.equal(server.host, '127.0.0.1', 'loopback by default');
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

  ev.jobFileEvents.inc(3);
  ev.jobFileParseErrors.inc();
  ev.renameToConfirm.observe(0.004);
  ev.renameToConfirm.observe(0.2);
  ev.published.inc({ type: 'ganeti-op-status' });
  disp.outcome('snf-events-op', 'applied', 5);
  disp.outcome('snf-events-op', 'dead_lettered');
  disp.outcome('snf-events-net', 'ignored');
  disp.outcome('snf-events-net', 'retried', 2);
  disp.transactionSeconds.observe(0.012);
  disp.heartbeatSeen('cluster1.example.test', Date.now() - 30_000);
  disp.heartbeatSeen('cluster1.example.test', Date.now() - 90_000);

  let r = await get(server.url);
  t.equal(r.status, 200);
  t.match(r.type, /^text\/plain; version=0\.0\.4/);
  const body = r.body;
  t.equal(sample(body, 'snf_jobfile_events_total', { program: 'snf-test' }), 3);
  t.equal(sample(body, 'snf_jobfile_parse_errors_total'), 1);
  t.equal(sample(body, 'snf_jobfile_rename_to_confirm_seconds_count'), 2);
  t.equal(sample(body, 'snf_jobfile_rename_to_confirm_seconds_bucket', { le: '0.005' }), 1);
  t.equal(sample(body, 'snf_outbox_messages'), 7, 'outbox size read at scrape time');
  t.equal(sample(body, 'snf_eventd_master'), 1);
  t.equal(sample(body, 'snf_messages_published_total', { type: 'ganeti-op-status' }), 1);
  t.equal(sample(body, 'snf_dispatcher_messages_total', { queue: 'snf-events-op', outcome: 'applied' }), 5);
  t.equal(sample(body, 'snf_dispatcher_messages_total', { queue: 'snf-events-op', outcome: 'dead_lettered' }), 1);
  t.equal(sample(body, 'snf_dispatcher_messages_total', { queue: 'snf-events-net', outcome: 'ignored' }), 1);
  t.equal(sample(body, 'snf_dispatcher_messages_total', { queue: 'snf-events-net', outcome: 'retried' }), 2);
  t.equal(sample(body, 'snf_dispatcher_transaction_seconds_count'), 1);
  t.equal(sample(body, 'snf_amqp_connected'), 0, 'the connection gauge is registered once for both');
  const age = sample(body, 'snf_dispatcher_heartbeat_age_seconds', { cluster: 'cluster1.example.test' });
  t.ok(age !== undefined && age >= 30 && age < 40, `newest heartbeat counts (${age} s)`);
  t.ok(sample(body, 'process_resident_memory_bytes') !== undefined, 'process metrics too');
  for (const line of body.split('\n')) {
    const help = /^# HELP (snf_\w+) (.*)$/.exec(line);
    if (help) t.ok((help[2] ?? '').length > 20, `${help[1]} has a help text`);
  }

  outbox = 0;
  r = await get(server.url);
  t.equal(sample(r.body, 'snf_outbox_messages'), 0, 'a new value at the next scrape');
  t.equal((await get(server.url.replace('/metrics', '/'))).status, 404);
  t.equal((await get(server.url, 'POST')).status, 405);
  t.equal((await get(server.url, 'HEAD')).status, 200);
});

t.test('heartbeat ages from a source replace the in-memory ones', async (t) => {
  const registry = createRegistry('snf-test', { defaultMetrics: false });
  createDispatcherMetrics(registry, { heartbeatAges: async () => [{ cluster: 'a', ageSeconds: 12 }, { cluster: 'b', ageSeconds: 500 }] });
  const server = await startMetricsServer({ registry, port: 0 });
  t.teardown(() => server.close());
  const { body } = await get(server.url);
  t.equal(sample(body, 'snf_dispatcher_heartbeat_age_seconds', { cluster: 'a' }), 12);
  t.equal(sample(body, 'snf_dispatcher_heartbeat_age_seconds', { cluster: 'b' }), 500);
});

t.test('a port in use is an error, not a crash', async (t) => {
  const registry = createRegistry('snf-test', { defaultMetrics: false });
  const first = await startMetricsServer({ registry, port: 0 });
  t.teardown(() => first.close());
  await t.rejects(startMetricsServer({ registry, port: first.port }), { code: 'EADDRINUSE' });
});

t.test('metrics settings: no port means no server; the host defaults to loopback', async (t) => {
  const none = await loadSettings(metricsSettings, { argv: [], env: {}, readFile: () => undefined, scriptName: 'x' });
  t.equal(none.metricsPort, undefined);
  t.equal(none.metricsHost, '127.0.0.1');
  const set = await loadSettings(metricsSettings, { argv: [], env: { SNF_GTOOLS_METRICS_PORT: '9464' }, readFile: () => undefined, scriptName: 'x' });
  t.equal(set.metricsPort, 9464);
  await t.rejects(loadSettings(metricsSettings, { argv: ['--metrics-port', '70000'], env: {}, readFile: () => undefined, scriptName: 'x' }), /must be a TCP port/);
});

t.test('publisher instrumentation counts confirms, returns, retries and reconnects', async (t) => {
  const topology = uniqueTopology();
  const registry = createRegistry('snf-test', { defaultMetrics: false });
  const m = createEventdMetrics(registry);
  const log = createLogger({ level: 'silent', name: 'test' });
  const publisher = new Publisher({ urls: [sharedRabbitUrl], topology, log, backoff: { initialMs: 50, maxMs: 200 } });
  const stop = instrumentPublisher(publisher, m);
  t.teardown(async () => {
    stop();
    await publisher.close({ timeoutMs: 500 });
    await deleteTopology(sharedRabbitUrl, topology).catch(() => {});
  });
  publisher.start();
  t.ok(await publisher.waitConnected(10_000), 'connected to the shared broker');
  const server = await startMetricsServer({ registry, port: 0 });
  t.teardown(() => server.close());
  t.equal(sample((await get(server.url)).body, 'snf_amqp_connected'), 1);

  const msg = (i: number, key = routingKey('op', topology.prefix)) => ({
    messageId: `metrics-${i}`,
    routingKey: key,
    type: 'ganeti-op-status',
    timestampMs: Date.now(),
    body: { i },
  });
  await Promise.all([publisher.publish(msg(1)), publisher.publish(msg(2))]);
  // Unroutable: returned, then retried until it is bound somewhere; we only wait for the counters.
  const unroutable = publisher.publish(msg(3, `ganeti.${topology.prefix}.nowhere`));
  unroutable.catch(() => {});
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && ((await m.retried.get()).values.find((v) => v.labels.reason === 'returned')?.value ?? 0) < 1) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const body = (await get(server.url)).body;
  t.equal(sample(body, 'snf_messages_confirmed_total', { type: 'ganeti-op-status' }), 2);
  t.ok((sample(body, 'snf_messages_returned_total', { type: 'ganeti-op-status' }) ?? 0) >= 1, 'returned counted');
  t.ok((sample(body, 'snf_messages_retried_total', { reason: 'returned' }) ?? 0) >= 1, 'its retry counted with the reason');
  t.equal(sample(body, 'snf_amqp_reconnects_total'), 0, 'the first connection is not a reconnect');
});
