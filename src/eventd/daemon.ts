// snf-ganeti-eventd: publishes the status of Ganeti's jobs as durable, confirmed AMQP messages while
// this node is the master, and drains the node's outbox whatever its role. Wiring only: the deciding
// is in jobfile/opmessages/transitions, the I/O in the watcher, processor, publisher and outbox.

import type { Logger } from '../common/log.js';
import { instrumentPublisher, type EventdMetrics } from '../common/metrics.js';
import { nodeFqdn } from '../common/fqdn.js';
import { HEARTBEAT_KEY, routingPrefix, type QueueType, type TopologyOptions } from '../common/topology.js';
import type { Settings } from '../common/settings.js';
import type { AmqpTls } from '../common/tls.js';
import { Outbox } from '../common/outbox.js';
import { Publisher } from '../common/publisher.js';
import { splitTime, type OutgoingMessage } from '../common/message.js';
import { eventdSettings } from './settings.js';
import { isMaster, readClusterView, sameView, type ClusterView } from './ssconf.js';
import { PublishedRecord } from './record.js';
import { JobProcessor } from './processor.js';
import { listArchivedJobIds, listJobIds, QueueWatcher, readQueueSerial } from './watcher.js';

const SHUTDOWN_CONFIRM_WAIT_MS = 3000;
const SSCONF_POLL_MS = 1000;

/** The settings, and the TLS files they name (read at start by main.ts; readAmqpTls). */
export type EventdSettings = Settings<typeof eventdSettings> & { amqpTls?: AmqpTls | undefined };

export function heartbeatMessage(view: ClusterView, node: string, master: boolean, outbox: number, nowMs: number): OutgoingMessage {
  return {
    messageId: `heartbeat:${view.cluster ?? ''}:${node}:${nowMs}`,
    routingKey: HEARTBEAT_KEY,
    type: 'eventd-heartbeat',
    timestampMs: nowMs,
    body: {
      type: 'eventd-heartbeat',
      cluster: view.cluster ?? null,
      node,
      role: master ? 'master' : 'candidate',
      outbox,
      event_time: splitTime(nowMs),
    },
  };
}

export class Eventd {
  private readonly log: Logger;
  private readonly record: PublishedRecord;
  private readonly publisher: Publisher;
  private readonly outbox: Outbox;
  private readonly processor: JobProcessor;
  private readonly watcher: QueueWatcher;
  private readonly node: string;
  private view: ClusterView = { cluster: undefined, master: undefined };
  private timers: NodeJS.Timeout[] = [];
  private stopOutboxWatch: (() => void) | undefined;
  private draining: Promise<void> | undefined;
  private drainAgain = false;
  private readonly drainAbort = new AbortController();
  private stopping: Promise<void> | undefined;

  /** The last problem worth telling an operator (systemd's STATUS line), with when it happened. */
  private lastError: string | undefined;

  /** `rootLog` is the program's logger; every component gets its own child of it. */
  constructor(
    private readonly settings: EventdSettings,
    rootLog: Logger,
    private readonly metrics?: EventdMetrics,
  ) {
    this.log = rootLog.child({ component: 'eventd' });
    this.node = settings.nodeName ?? nodeFqdn();
    const topology: TopologyOptions = { exchange: settings.exchange, prefix: settings.prefix, queueType: settings.queueType as QueueType };
    this.record = new PublishedRecord(settings.stateDir);
    this.publisher = new Publisher({ urls: settings.amqpUrl, tls: settings.amqpTls, topology, log: rootLog.child({ component: 'publisher' }), maxInFlight: settings.maxInFlight });
    this.outbox = new Outbox(settings.outboxDir, { log: rootLog.child({ component: 'outbox' }) });
    this.processor = new JobProcessor({
      queueDir: settings.queueDir,
      send: (msg, done) => this.publisher.send(msg, done),
      record: this.record,
      log: rootLog.child({ component: 'jobs' }),
      publishContext: () => (this.master && this.view.cluster ? { cluster: this.view.cluster } : undefined),
      acceptsName: (name) => routingPrefix(name) === settings.prefix,
      maxUnconfirmed: settings.maxInFlight,
      onConfirmed: (_id, noticedAtMs) => metrics?.renameToConfirm.observe((Date.now() - noticedAtMs) / 1000),
      onParseError: (err) => {
        metrics?.jobFileParseErrors.inc();
        this.noteError(`job file ${err.source}: ${err.reason}`);
      },
    });
    this.watcher = new QueueWatcher({
      queueDir: settings.queueDir,
      log: rootLog.child({ component: 'watcher' }),
      onJob: (jobId, noticedAtMs) => {
        metrics?.jobFileEvents.inc();
        this.processor.notify(jobId, { force: true, noticedAtMs });
      },
      onRescan: (reason) => void this.rescan(reason),
    });
  }

  /** Resolves once the publisher is connected and has declared the topology. */
  connected(): Promise<boolean> {
    return this.publisher.waitConnected(2 ** 31 - 1);
  }

  /** What eventd is doing, in an operator's words (systemd's STATUS= line). */
  async statusLine(): Promise<string> {
    const role = this.master ? 'master, publishing jobs' : 'not master, draining the outbox only';
    const outbox = await this.outbox.messageCount().catch(() => NaN);
    const broker = this.publisher.isConnected() ? 'broker connected' : 'broker unreachable';
    const error = this.lastError ? `; last error: ${this.lastError}` : '';
    return `${role} of ${this.view.cluster ?? 'an uninitialised cluster'}; ${broker}; ${outbox} messages in the outbox, ${this.processor.unconfirmedCount()} awaiting confirms${error}`;
  }

  outboxMessageCount(): Promise<number> {
    return this.outbox.messageCount();
  }

  /**
   * For the systemd watchdog: the pings come from a timer of the main loop, so a blocked loop stops
   * them by itself; beyond that eventd is unhealthy once it is shutting down.
   */
  healthy(): boolean {
    return this.stopping === undefined;
  }

  private noteError(text: string): void {
    this.lastError = `${text} (${new Date().toISOString().slice(0, 19)}Z)`;
  }

  get master(): boolean {
    return isMaster(this.view, this.node);
  }

  async start(): Promise<void> {
    this.view = await readClusterView(this.settings.ganetiDataDir);
    this.log.info(
      { node: this.node, cluster: this.view.cluster, master: this.view.master, role: this.master ? 'master' : 'candidate' },
      `starting on ${this.node}: ${this.master ? 'master, publishing jobs' : 'not master, only draining the outbox'}`,
    );
    this.publisher.on('connected', () => this.drainSoon());
    this.publisher.on('disconnected', (err: unknown) => this.noteError(`broker connection lost: ${err instanceof Error ? err.message : String(err)}`));
    if (this.metrics) instrumentPublisher(this.publisher, this.metrics);
    this.publisher.start();
    // Watch first, then scan: a version written during the scan is then both seen by the watch and
    // read by the scan, never missed; the processor reads a job once at a time either way.
    await this.watcher.start();
    this.log.info({ queueDir: this.settings.queueDir }, 'watching the queue directory');
    await this.startupScan();
    this.stopOutboxWatch = this.outbox.watch(() => this.drainSoon());
    this.drainSoon();
    this.every(SSCONF_POLL_MS, () => this.followSsconf());
    this.every(this.settings.rescanInterval * 1000, () => this.rescan('periodic'));
    this.every(this.settings.heartbeatInterval * 1000, () => this.heartbeat());
    this.every(5000, async () => this.drainSoon());
  }

  /** Stops watching, waits briefly for confirms, hands the rest to the outbox, saves the record. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.log.info('stopping');
    for (const t of this.timers) clearInterval(t);
    this.stopOutboxWatch?.();
    this.drainAbort.abort();
    await this.watcher.close();
    this.processor.stop();
    await this.processor.idle();
    const unconfirmed = await this.publisher.close({ timeoutMs: SHUTDOWN_CONFIRM_WAIT_MS });
    const owned = unconfirmed.filter((m) => this.processor.owns(m.messageId));
    if (owned.length > 0) {
      await this.outbox.put(owned);
      this.processor.recordHandedOff(owned);
      this.log.info({ messages: owned.length }, 'unconfirmed job messages saved to the outbox');
    }
    this.record.close();
    this.log.info('stopped');
  }

  private every(ms: number, fn: () => Promise<void> | void): void {
    const timer = setInterval(() => {
      Promise.resolve(fn()).catch((err: unknown) => this.log.error({ err }, 'periodic task failed'));
    }, ms);
    this.timers.push(timer);
  }

  /**
   * Publishes what the record says is missing: every live job, and the archived jobs at or above the
   * record's floor that it has not finished with (archived while eventd was down).
   */
  private async startupScan(): Promise<void> {
    const queueDir = this.settings.queueDir;
    const serial = await readQueueSerial(queueDir);
    if (serial !== undefined && serial < this.record.highestJobId()) {
      this.log.warn({ serial, recorded: this.record.highestJobId() }, 'the job queue was re-created while eventd was down: starting a new record');
      this.record.reset();
    }
    const [live, archived] = await Promise.all([listJobIds(queueDir), listArchivedJobIds(queueDir, this.record.doneBelow)]);
    if (this.record.fresh || !this.master) {
      // A first start treats the archive as history from before eventd ran here; a node that is not
      // master is not the one that owed those jobs' messages.
      for (const id of archived) if (!this.record.isDone(id)) this.record.markDone(id);
      if (this.record.fresh && archived.length > 0) {
        this.record.raiseFloor(Math.min(archived.at(-1)! + 1, live[0] ?? Infinity));
      }
    } else {
      for (const id of archived) if (!this.record.isDone(id)) this.processor.notify(id, { archived: true });
    }
    for (const id of live) this.processor.notify(id, { force: true });
    await this.processor.idle();
    const highest = Math.max(live.at(-1) ?? -1, archived.at(-1) ?? -1);
    this.record.scannedBelow(highest + 1);
    this.log.info({ live: live.length, archivedPending: archived.length }, 'start-up scan done');
  }

  private async rescan(reason: string): Promise<void> {
    // The first watch is followed by the start-up scan, which reads everything anyway.
    if (reason === 'watch started') return;
    if (reason === 'queue directory re-created') {
      // A new cluster numbers its jobs from 1 again: what the record says of job N was another job.
      this.record.reset();
      this.processor.resetSent();
    }
    const live = await listJobIds(this.settings.queueDir);
    this.processor.forgetAllBut(live);
    const force = reason !== 'periodic';
    for (const id of live) this.processor.notify(id, { force });
    // The periodic safety rescan only reads files whose identity changed; it is routine, not news.
    this.log[force ? 'info' : 'debug']({ reason, jobs: live.length }, 'rescanning the queue directory');
  }

  private async followSsconf(): Promise<void> {
    const next = await readClusterView(this.settings.ganetiDataDir);
    if (sameView(next, this.view)) return;
    const wasMaster = this.master;
    this.view = next;
    if (this.master === wasMaster) {
      this.log.info({ cluster: next.cluster, master: next.master }, 'ssconf changed');
      return;
    }
    this.processor.resetSent();
    if (this.master) {
      this.log.warn({ cluster: next.cluster }, 'this node became master: publishing every transition it has not published');
      await this.rescan('became master');
    } else {
      this.log.warn({ master: next.master }, 'this node is no longer master: job messages stop');
    }
  }

  private async heartbeat(): Promise<void> {
    if (!this.publisher.isConnected() || this.view.cluster === undefined) return;
    const msg = heartbeatMessage(this.view, this.node, this.master, await this.outbox.messageCount(), Date.now());
    // A heartbeat is only worth its latest value: it is not retried past the next one.
    await Promise.race([this.publisher.publish(msg), new Promise((r) => setTimeout(r, this.settings.heartbeatInterval * 1000).unref())]);
  }

  private drainSoon(): void {
    if (this.drainAbort.signal.aborted) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        const { entries, messages } = await this.outbox.drain(this.publisher, { signal: this.drainAbort.signal });
        if (entries > 0) this.log.info({ entries, messages }, 'outbox entries published');
      } while (this.drainAgain && !this.drainAbort.signal.aborted);
    })()
      .catch((err: unknown) => this.log.error({ err }, 'draining the outbox failed'))
      .finally(() => {
        this.draining = undefined;
      });
  }
}

