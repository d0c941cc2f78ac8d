// Prometheus metrics for the two daemons (prom-client): one registry per process, the metric
// definitions of eventd and the dispatcher (all named `snf_…`), and a small HTTP server answering
// GET /metrics, bound to loopback unless told otherwise. The daemons increment the objects returned by
// createEventdMetrics()/createDispatcherMetrics(); values that are cheaper to read when scraped than to
// keep up to date (outbox size, heartbeat ages) come from callbacks run at scrape time.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Publisher } from './publisher.js';
import type { SettingSpecs } from './settings.js';

export { Registry };

/** Settings both daemons add to theirs (`...metricsSettings`): no port, no server. */
export const metricsSettings = {
  metricsPort: {
    kind: 'integer',
    describe: 'serve Prometheus metrics on this TCP port at /metrics (default: no metrics server)',
    check: (v: number) => (Number.isInteger(v) && v > 0 && v < 65536 ? undefined : `must be a TCP port (1-65535), got ${v}`),
  },
  metricsHost: {
    kind: 'string',
    describe: 'address the metrics server listens on; keep it on loopback unless a firewall guards it',
    default: '127.0.0.1',
  },
} satisfies SettingSpecs;

/** A registry with Node's process metrics (CPU, memory, event-loop lag, handles) and a `program` label. */
export function createRegistry(program: string, options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ program });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Seconds, from 1 ms to 1 min: the span from a job-file rename to a broker confirm, or a transaction. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Source<T> = () => T | Promise<T>;

/** The broker connection, for both daemons (registered once per registry, shared when asked twice). */
export function createConnectionMetrics(registry: Registry) {
  const reconnects = 'snf_amqp_reconnects_total';
  const connected = 'snf_amqp_connected';
  return {
    reconnects:
      (registry.getSingleMetric(reconnects) as Counter | undefined) ??
      new Counter({
        name: reconnects,
        help: 'Connections to an AMQP broker made after the first one (each follows a lost connection)',
        registers: [registry],
      }),
    connected:
      (registry.getSingleMetric(connected) as Gauge | undefined) ??
      new Gauge({
        name: connected,
        help: '1 while connected to an AMQP broker, else 0',
        registers: [registry],
      }),
  };
}

/** What the publisher does; shared by eventd (and any other daemon that publishes). */
export function createPublisherMetrics(registry: Registry) {
  return {
    published: new Counter({
      name: 'snf_messages_published_total',
      help: 'Messages handed to the AMQP publisher, by message type (each message once, retries not counted)',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    confirmed: new Counter({
      name: 'snf_messages_confirmed_total',
      help: 'Messages the broker confirmed (ack without a return): these count as sent, by message type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    returned: new Counter({
      name: 'snf_messages_returned_total',
      help: 'Messages the broker returned as unroutable (no queue bound to the routing key), by message type; they are retried',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    retried: new Counter({
      name: 'snf_messages_retried_total',
      help: 'Message sends retried, by reason: nack (broker refused), returned (unroutable) or disconnected (connection lost before the confirm)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    ...createConnectionMetrics(registry),
  };
}

export type PublisherMetrics = ReturnType<typeof createPublisherMetrics>;

/**
 * Counts what a Publisher reports through its events. `published` has no event of its own: count it
 * where publish() is called, or emit 'published' from Publisher.publish() and this counts it too.
 */
export function instrumentPublisher(publisher: Publisher, m: PublisherMetrics): () => void {
  let connections = 0;
  let lastLoss: 'nack' | 'returned' | 'disconnected' | undefined;
  const pending = new Map<string, 'nack' | 'returned'>();
  // EventEmitter listeners take any arguments.
  const handlers: Record<string, (...args: any[]) => void> = {
    published: (msg: { type: string }) => m.published.inc({ type: msg.type }),
    connected: () => {
      if (connections++ > 0) m.reconnects.inc();
      m.connected.set(1);
    },
    disconnected: () => {
      m.connected.set(0);
      lastLoss = 'disconnected';
    },
    confirmed: (msg: { type: string; messageId: string }) => {
      pending.delete(msg.messageId);
      m.confirmed.inc({ type: msg.type });
    },
    nacked: (msg: { messageId: string }) => {
      pending.set(msg.messageId, 'nack');
    },
    returned: (msg: { type: string; messageId: string }) => {
      pending.set(msg.messageId, 'returned');
      m.returned.inc({ type: msg.type });
    },
    retry: (msg: { messageId: string }) => {
      // 'retry' follows a nack or return of that message, or a lost connection ('disconnected' first).
      const reason = pending.get(msg.messageId) ?? lastLoss ?? 'disconnected';
      pending.delete(msg.messageId);
      m.retried.inc({ reason });
    },
  };
  m.connected.set(publisher.isConnected() ? 1 : 0);
  for (const [event, fn] of Object.entries(handlers)) publisher.on(event, fn);
  return () => {
    for (const [event, fn] of Object.entries(handlers)) publisher.off(event, fn);
  };
}

export interface EventdMetricSources {
  /** Messages waiting in the outbox, read at scrape time (Outbox.messageCount). */
  outboxMessages?: Source<number>;
  /** Whether this node is the cluster's master, read at scrape time. */
  isMaster?: Source<boolean>;
}

export function createEventdMetrics(registry: Registry, sources: EventdMetricSources = {}) {
  return {
    ...createPublisherMetrics(registry),
    outboxMessages: new Gauge({
      name: 'snf_outbox_messages',
      help: 'Messages waiting in the local outbox for eventd to publish them',
      registers: [registry],
      async collect() {
        if (sources.outboxMessages) this.set(await sources.outboxMessages());
      },
    }),
    master: new Gauge({
      name: 'snf_eventd_master',
      help: "1 while this node is its Ganeti cluster's master (eventd publishes job messages), else 0",
      registers: [registry],
      async collect() {
        if (sources.isMaster) this.set((await sources.isMaster()) ? 1 : 0);
      },
    }),
    jobFileEvents: new Counter({
      name: 'snf_jobfile_events_total',
      help: 'Job-file changes noticed in the Ganeti queue directory (watch events and rescans that found a new version)',
      registers: [registry],
    }),
    jobFileParseErrors: new Counter({
      name: 'snf_jobfile_parse_errors_total',
      help: 'Job files that could not be read as a Ganeti job (logged with what was wrong)',
      registers: [registry],
    }),
    renameToConfirm: new Histogram({
      name: 'snf_jobfile_rename_to_confirm_seconds',
      help: 'Seconds from noticing a job-file version to the broker confirming its last message',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}

export type EventdMetrics = ReturnType<typeof createEventdMetrics>;

export type DispatcherOutcome = 'applied' | 'ignored' | 'dead_lettered' | 'retried';

export interface DispatcherMetricSources {
  /** Per cluster, seconds since its newest heartbeat (from the database), read at scrape time. */
  heartbeatAges?: Source<Iterable<{ cluster: string; ageSeconds: number }>>;
}

export function createDispatcherMetrics(registry: Registry, sources: DispatcherMetricSources = {}) {
  /** Heartbeats this process applied, when no source reads them from the database. */
  const heartbeatsSeen = new Map<string, number>();
  const metrics = {
    ...createConnectionMetrics(registry),
    messages: new Counter({
      name: 'snf_dispatcher_messages_total',
      help: 'Messages consumed, by queue and outcome: applied, ignored (nothing to change), dead_lettered (poison) or retried (requeued after a transient failure)',
      labelNames: ['queue', 'outcome'] as const,
      registers: [registry],
    }),
    transactionSeconds: new Histogram({
      name: 'snf_dispatcher_transaction_seconds',
      help: 'Seconds per database transaction applying a batch of messages (commit included)',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    heartbeatAge: new Gauge({
      name: 'snf_dispatcher_heartbeat_age_seconds',
      help: "Seconds since the newest eventd heartbeat of each cluster (a growing value: the cluster's eventd is silent)",
      labelNames: ['cluster'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        if (sources.heartbeatAges) {
          for (const { cluster, ageSeconds } of await sources.heartbeatAges()) this.set({ cluster }, ageSeconds);
        } else {
          const now = Date.now();
          for (const [cluster, at] of heartbeatsSeen) this.set({ cluster }, Math.max(0, (now - at) / 1000));
        }
      },
    }),
    /** One message's outcome. */
    outcome(queue: string, outcome: DispatcherOutcome, count = 1): void {
      metrics.messages.inc({ queue, outcome }, count);
    },
    /** A heartbeat applied: its cluster and event time (ms since the epoch). */
    heartbeatSeen(cluster: string, eventTimeMs: number): void {
      const prev = heartbeatsSeen.get(cluster);
      if (prev === undefined || eventTimeMs > prev) heartbeatsSeen.set(cluster, eventTimeMs);
    },
  };
  return metrics;
}

export type DispatcherMetrics = ReturnType<typeof createDispatcherMetrics>;

export interface MetricsServer {
  server: Server;
  host: string;
  port: number;
  /** e.g. http://127.0.0.1:9464/metrics */
  url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  registry: Registry;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port (tests). */
  port: number;
}

/** Serves GET /metrics (and HEAD); 404 elsewhere. Resolves once listening, rejects if it cannot bind. */
export function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry } = options;
  const host = options.host ?? '127.0.0.1';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${(err as Error).message}\n`);
      },
    );
  });
  // Scrapes are short; an idle keep-alive connection must not hold the process at shutdown.
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      server.unref();
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        server,
        host: address.address,
        port: address.port,
        url: `http://${shown}:${address.port}/metrics`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
