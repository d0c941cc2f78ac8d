// The consuming daemon: every delivery ends in one named outcome (ack, dead-letter, retry), and a
// message is acknowledged only after the transaction that applied it committed.
//
// One channel consumes the five event queues and the heartbeat queue. Deliveries are buffered and
// applied in batches (one transaction each); the prefetch limit bounds the buffer. When the database
// is unavailable the batch in hand stays unacknowledged and is retried with capped backoff; nothing new
// is taken meanwhile, so consumption pauses and no message loops hot.

import { withHeartbeat } from '../common/amqp-url.js';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Logger } from '../common/log.js';
import { redactText } from '../common/redact.js';
import { describeConnectError, type AmqpTls } from '../common/tls.js';
import { declareTopology, heartbeatQueue, type TopologyOptions } from '../common/topology.js';
import { isTransientDbError } from './db.js';
import { decodeMessage, type DispatcherMessage } from './messages.js';
import { IGNORE_REASONS, type IgnoreReason } from './rules.js';
import type { Store } from './store.js';

export type Outcome =
  /** Applied, and acknowledged after the commit. */
  | { kind: 'ack'; result: 'applied' }
  /** Deliberately ignored (not ours, stale, deleted…), and acknowledged. */
  | { kind: 'ack'; result: 'ignored'; reason: IgnoreReason }
  /** Rejected without requeue, so the broker moves it to the queue's `-dl` twin. */
  | { kind: 'dead-letter'; reason: string }
  /** Not acknowledged: the database is unavailable; applied again later. */
  | { kind: 'retry'; reason: string };

export interface Delivery {
  queue: string;
  messageId: string | null;
  content: Buffer;
}

const describe = (err: unknown): string => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

/**
 * One attempt at a batch: decodes every delivery, applies the valid ones in one transaction and returns
 * each delivery's outcome. A permanent database error in a batch is narrowed down by applying its
 * messages one per transaction, so that only the message the database refuses is dead-lettered.
 */
export async function settleBatch(store: Store, deliveries: readonly Delivery[]): Promise<Outcome[]> {
  const outcomes: (Outcome | undefined)[] = [];
  const valid: { index: number; message: DispatcherMessage }[] = [];
  deliveries.forEach((d, index) => {
    const decoded = decodeMessage(d.content);
    if (decoded.ok) valid.push({ index, message: decoded.message });
    else outcomes[index] = { kind: 'dead-letter', reason: decoded.reason };
  });
  const record = (items: typeof valid, results: Awaited<ReturnType<Store['applyBatch']>>) =>
    items.forEach((item, i) => {
      const r = results[i];
      outcomes[item.index] = r === undefined || r.result === 'applied' ? { kind: 'ack', result: 'applied' } : { kind: 'ack', result: 'ignored', reason: r.reason };
    });
  try {
    record(valid, await store.applyBatch(valid.map((v) => v.message)));
  } catch (err) {
    if (isTransientDbError(err) || valid.length === 1) {
      const outcome: Outcome = isTransientDbError(err)
        ? { kind: 'retry', reason: describe(err) }
        : { kind: 'dead-letter', reason: `the database refused the change: ${describe(err)}` };
      for (const v of valid) outcomes[v.index] = outcome;
    } else {
      for (const [n, v] of valid.entries()) {
        const [single] = await settleBatch(store, [deliveries[v.index] as Delivery]);
        outcomes[v.index] = single;
        if (single?.kind === 'retry') {
          for (const rest of valid.slice(n + 1)) outcomes[rest.index] = single;
          break;
        }
      }
    }
  }
  return outcomes as Outcome[];
}

export interface ConsumerOptions {
  amqpUrls: string[];
  /** CA, client certificate and key for amqps:// URLs (see readAmqpTls). */
  tls?: AmqpTls | undefined;
  topology: TopologyOptions;
  prefetch: number;
  batchSize: number;
  /** Backoff of database retries and reconnects, in milliseconds. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Called for every settled delivery (tests and metrics count outcomes through it). */
  onOutcome?: (delivery: Delivery, outcome: Outcome) => void;
  /** Called after every database transaction with its duration (metrics). */
  onTransaction?: (seconds: number) => void;
  /** Called when consuming starts on a connection (true) and when the connection is lost (false). */
  onConnection?: (connected: boolean) => void;
}

interface Pending {
  channel: Channel;
  queue: string;
  msg: ConsumeMessage;
}

const delivery = (p: Pending): Delivery => ({ queue: p.queue, messageId: p.msg.properties.messageId ?? null, content: p.msg.content });

/** Capped exponential backoff with ±20 % jitter, so several dispatchers do not retry in step. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class Consumer {
  private readonly log: Logger;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private connection: ChannelModel | null = null;
  private channel: Channel | null = null;
  private consumerTags: string[] = [];
  private buffer: Pending[] = [];
  private wake: (() => void) | null = null;
  private stopping = false;
  private readonly stopController = new AbortController();
  private worker: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly options: ConsumerOptions,
    log: Logger,
  ) {
    this.log = log.child({ component: 'consumer' });
    this.minDelay = options.minDelayMs ?? 200;
    this.maxDelay = options.maxDelayMs ?? 10_000;
  }

  /** Connects and starts consuming; resolves once the first connection consumes. */
  async start(): Promise<void> {
    await this.connect();
    this.worker = this.work();
  }

  /** Stops consuming, finishes the batch in hand (unless it waits for the database) and disconnects. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopController.abort();
    const channel = this.channel;
    if (channel !== null) {
      for (const tag of this.consumerTags) await channel.cancel(tag).catch(() => undefined);
    }
    this.wake?.();
    await this.worker;
    // Whatever is still buffered was never applied: closing the channel returns it to the queues.
    this.buffer = [];
    await this.connection?.close().catch(() => undefined);
    this.connection = null;
    this.channel = null;
  }

  private async connect(): Promise<void> {
    const urls = [...this.options.amqpUrls].sort(() => Math.random() - 0.5);
    for (let attempt = 1; !this.stopping; attempt++) {
      const url = urls[(attempt - 1) % urls.length] as string;
      try {
        await this.open(url);
        this.log.info({ broker: redactText(url) }, 'consuming');
        this.options.onConnection?.(true);
        return;
      } catch (err) {
        if (this.stopping) return;
        // A refused login or a queue declared with other arguments will not heal by retrying soon,
        // but the operator may fix it without restarting us; keep trying, loudly.
        const delay = backoffDelay(attempt, this.minDelay, this.maxDelay);
        this.log.error({ broker: redactText(url), err: describeConnectError(err), retryInMs: delay }, 'cannot consume from the broker');
        await sleep(delay, this.stopController.signal);
      }
    }
  }

  private async open(url: string): Promise<void> {
    const connection = await amqp.connect(withHeartbeat(url), { ...this.options.tls });
    try {
      connection.on('error', (err: Error) => this.log.warn({ err }, 'broker connection error'));
      const channel = await connection.createChannel();
      channel.on('error', (err: Error) => this.log.warn({ err }, 'broker channel error'));
      // Without its channel (a channel error) or a consumer (a queue deleted under it) the connection is
      // useless: closing it starts the reconnect, which declares the topology and consumes again.
      const restart = () => {
        if (this.channel === channel && !this.stopping) void connection.close().catch(() => undefined);
      };
      channel.on('close', restart);
      const queues = await declareTopology(channel, this.options.topology);
      // Per consumer: each queue may have `prefetch` messages in flight.
      await channel.prefetch(this.options.prefetch, false);
      const names = [...queues.map((q) => q.name), heartbeatQueue(this.options.topology).name];
      const tags: string[] = [];
      for (const queue of names) {
        const { consumerTag } = await channel.consume(queue, (msg) => {
          if (msg === null) {
            this.log.warn({ queue }, 'the broker cancelled our consumer; reconnecting');
            restart();
            return;
          }
          this.buffer.push({ channel, queue, msg });
          this.wake?.();
        });
        tags.push(consumerTag);
      }
      if (this.stopping) throw new Error('stopped while connecting');
      connection.on('close', () => this.lost(connection));
      this.connection = connection;
      this.channel = channel;
      this.consumerTags = tags;
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  /** The connection is gone: its unacknowledged deliveries return to the queues by themselves. */
  private lost(connection: ChannelModel): void {
    if (this.connection !== connection || this.stopping) return;
    this.log.warn('lost the broker connection; reconnecting');
    this.options.onConnection?.(false);
    this.connection = null;
    this.channel = null;
    this.buffer = [];
    void this.connect();
  }

  private async work(): Promise<void> {
    while (!this.stopping) {
      if (this.buffer.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      // Let the deliveries already read from the socket join this batch: fewer, fuller transactions.
      if (this.buffer.length < this.options.batchSize) await new Promise((resolve) => setImmediate(resolve));
      await this.process(this.buffer.splice(0, this.options.batchSize));
    }
  }

  private async process(batch: Pending[]): Promise<void> {
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      const started = performance.now();
      const outcomes = await settleBatch(this.store, pending.map(delivery));
      this.options.onTransaction?.((performance.now() - started) / 1000);
      const retry: Pending[] = [];
      let reason = '';
      outcomes.forEach((outcome, i) => {
        const p = pending[i] as Pending;
        if (outcome.kind === 'retry') {
          retry.push(p);
          reason = outcome.reason;
        } else this.settle(p, outcome);
      });
      pending = retry;
      if (pending.length === 0 || this.stopping) break;
      const delay = backoffDelay(attempt, this.minDelay, this.maxDelay);
      this.log.warn({ reason, messages: pending.length, attempt, retryInMs: delay }, 'database unavailable: holding messages unacknowledged');
      for (const p of pending) this.options.onOutcome?.(delivery(p), { kind: 'retry', reason });
      await sleep(delay, this.stopController.signal);
    }
  }

  private settle(p: Pending, outcome: Exclude<Outcome, { kind: 'retry' }>): void {
    const fields = { queue: p.queue, messageId: p.msg.properties.messageId ?? null, deliveryTag: p.msg.fields.deliveryTag };
    try {
      if (outcome.kind === 'ack') p.channel.ack(p.msg);
      else p.channel.reject(p.msg, false);
    } catch (err) {
      // The channel closed after the commit: the broker redelivers, and the rules make that harmless.
      this.log.info({ ...fields, err }, 'could not settle a delivery; it will be redelivered');
    }
    if (outcome.kind === 'dead-letter') this.log.error({ ...fields, reason: outcome.reason }, 'message dead-lettered');
    else if (outcome.result === 'ignored') this.log.debug({ ...fields, reason: IGNORE_REASONS[outcome.reason] }, 'message ignored');
    else this.log.debug(fields, 'message applied');
    this.options.onOutcome?.(delivery(p), outcome);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
