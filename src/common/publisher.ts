// The one AMQP publisher every producer uses (architecture invariant 2: a message counts as sent only
// when the broker confirmed it). It fixes the original client's bugs (spec §4, §6.2, §6.4): a `nack`
// or a returned unroutable (`mandatory`) message is a failure that is retried, never a success; a
// connection lost before the confirm retries every unconfirmed message in order; reconnection goes on
// forever over several brokers with capped, jittered backoff; AMQP heartbeats detect dead peers; and
// the topology is declared on every connect, so that messages are routable before any dispatcher ran.
//
// Messages waiting for the window, in flight and waiting for a retry are all kept in memory; callers
// that must survive a crash hand what `close()` returns (or what they could not hand over) to the outbox.
//
// Events: 'connected' (redacted URL), 'disconnected' (error), and per message 'published', 'confirmed',
// 'nacked', 'returned', 'retry' with the message's id, routing key, type and timestamp but not its body
// (kept only serialized while unconfirmed; close() gives whole messages back).

import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import amqp from 'amqplib';
import type { ChannelModel, ConfirmChannel, Message, Options } from 'amqplib';
import type { Logger } from './log.js';
import { AMQP_HEARTBEAT_SECONDS, withHeartbeat } from './amqp-url.js';
import { redactText } from './redact.js';
import { describeConnectError, type AmqpTls } from './tls.js';
import { APP_ID, CONTENT_TYPE, unpublishableReason, type OutgoingMessage } from './message.js';
import { declareTopology, type TopologyOptions } from './topology.js';

export interface PublisherOptions {
  /** amqp:// or amqps:// URLs, tried in random order. */
  urls: string[];
  /** declareTopology() is run on every (re)connect. */
  topology: TopologyOptions;
  log: Logger;
  /** AMQP app_id property; default APP_ID. */
  appId?: string;
  /** Bounded window of messages published but not yet confirmed; default 1000. */
  maxInFlight?: number;
  /** AMQP heartbeat in seconds; default 10. */
  heartbeatSeconds?: number;
  /** Per connection attempt, including the AMQP handshake and topology declaration; default 5000. */
  connectTimeoutMs?: number;
  /** Capped exponential backoff with full jitter; default 100 / 10000. */
  backoff?: { initialMs: number; maxMs: number };
  /** For amqps:// URLs (see readAmqpTls). */
  tls?: AmqpTls | undefined;
}

/** A message the broker cannot take whatever is retried (e.g. a message id over 255 bytes). */
export class UnpublishableMessageError extends Error {
  override readonly name = 'UnpublishableMessageError';
}

export class PublisherClosedError extends Error {
  constructor(message = 'publisher closed before the broker confirmed the message') {
    super(message);
    this.name = 'PublisherClosedError';
  }
}

type JobState = 'waiting' | 'inflight' | 'delayed' | 'done';

/** What send() calls back: `err` undefined once the broker confirmed the message with this id. */
export type SentCallback = (err: Error | undefined, messageId: string) => void;

interface Job {
  /** Acceptance order, so that close() returns messages in the order they were given. */
  seq: number;
  /**
   * The message without its body: the body is kept only serialized, in `content`. With thousands of
   * messages awaiting confirms, holding both forms would double the publisher's memory.
   */
  msg: Omit<OutgoingMessage, 'body'>;
  content: Buffer;
  /** Called once: without an error on the broker's confirm, with one when the message is given up. */
  done: SentCallback;
  state: JobState;
  /** Broker failures (nack, return) so far; drives the retry backoff. */
  failures: number;
  /** A basic.return arrived for the current send: its ack does not count. */
  returned: boolean;
  timer?: NodeJS.Timeout;
}

interface Session {
  url: string;
  redacted: string;
  conn: ChannelModel;
  ch: ConfirmChannel;
  /** The delivery tag the broker gives the next publish on this channel. */
  nextTag: number;
  /** Delivery tag → job, in publish order. */
  inFlight: Map<number, Job>;
  /** False after channel.publish() returned false, until 'drain'. */
  writable: boolean;
  /** Set once the connect attempt succeeded and the session became the current one. */
  installed: boolean;
  installedAt: number;
  dead: boolean;
  error?: Error;
  /** Writes what was published so far to the socket now (see batchFrameWrites); undefined: amqplib's schedule. */
  writeNow: (() => void) | undefined;
  /** A writeNow is queued for the end of the current turn. */
  writeQueued: boolean;
}

/** A FIFO that can also put items back at its front (for retries), O(1) at both ends. */
class Deque<T> {
  private buf: (T | undefined)[] = new Array(64);
  private head = 0;
  length = 0;

  push(item: T): void {
    if (this.length === this.buf.length) this.grow();
    this.buf[(this.head + this.length) % this.buf.length] = item;
    this.length++;
  }

  unshift(item: T): void {
    if (this.length === this.buf.length) this.grow();
    this.head = (this.head - 1 + this.buf.length) % this.buf.length;
    this.buf[this.head] = item;
    this.length++;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.buf.length;
    this.length--;
    return item;
  }

  drainAll(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  private grow(): void {
    const next: (T | undefined)[] = new Array(this.buf.length * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.buf[(this.head + i) % this.buf.length];
    this.buf = next;
    this.head = 0;
  }
}


function shuffled<T>(items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const errorText = (err: unknown): string => redactText(err instanceof Error ? err.message : String(err));

/**
 * amqplib writes every frame (three per message) to the socket as it goes, one system call each.
 * Corking the socket around its muxer's write loop sends all the frames of one turn of the event
 * loop in one writev: measured in bench/eventd, socket writes were the largest single cost of a
 * burst (~19 µs per frame). The muxer runs that loop on a setImmediate after each publish; the
 * returned function runs it at once, so that a caller can send what a turn published as soon as the
 * turn ends instead of after every other callback queued for the next one (bench/eventd: the
 * append to eventd's published record used to go first). It reaches into amqplib's internals
 * (`connection.muxer`, `connection.stream`), so it checks they are there and leaves the connection
 * alone otherwise (then it returns undefined and amqplib's own schedule applies).
 */
function batchFrameWrites(conn: ChannelModel): (() => void) | undefined {
  const inner = (conn as unknown as { connection?: { muxer?: { _readIncoming?: () => void }; stream?: { cork?: () => void; uncork?: () => void } } }).connection;
  const muxer = inner?.muxer;
  const stream = inner?.stream;
  const readIncoming = muxer?._readIncoming;
  if (!muxer || !stream?.cork || !stream.uncork || typeof readIncoming !== 'function') return undefined;
  const corked = function corked(this: unknown) {
    stream.cork!();
    try {
      readIncoming.call(muxer);
    } finally {
      stream.uncork!();
    }
  };
  muxer._readIncoming = corked;
  return () => corked.call(muxer);
}

/** The message a job stands for, body included (parsed back from what was serialized). */
function fullMessage(job: Job): OutgoingMessage {
  return { ...job.msg, body: JSON.parse(job.content.toString('utf8')) as Record<string, unknown> };
}

export class Publisher extends EventEmitter {
  private readonly urls: string[];
  private readonly topology: TopologyOptions;
  private readonly log: Logger;
  private readonly appId: string;
  private readonly maxInFlight: number;
  private readonly heartbeatSeconds: number;
  private readonly connectTimeoutMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly tls: PublisherOptions['tls'];
  private readonly connectionName: string;

  private session: Session | undefined;
  private readonly waiting = new Deque<Job>();
  private readonly delayed = new Set<Job>();
  private pending = 0;
  private nextSeq = 0;

  private started = false;
  private connecting = false;
  private closing = false;
  private closed = false;
  private closePromise: Promise<OutgoingMessage[]> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private abortAttempt: (() => void) | undefined;
  private connectWaiters = new Set<(connected: boolean) => void>();
  private idleWaiters = new Set<() => void>();
  /** Sessions in a row that died young: a broker that accepts and then drops us still gets backoff. */
  private flaps = 0;
  /** The last failure logged per URL, so that a broker down for hours is logged once, not per attempt. */
  private lastFailure = new Map<string, string>();

  constructor(options: PublisherOptions) {
    super();
    if (options.urls.length === 0) throw new TypeError('Publisher needs at least one broker URL');
    for (const url of options.urls) {
      let protocol: string;
      try {
        protocol = new URL(url).protocol;
      } catch {
        throw new TypeError(`${JSON.stringify(redactText(url))} is not a URL`);
      }
      if (protocol !== 'amqp:' && protocol !== 'amqps:') {
        throw new TypeError(`${JSON.stringify(redactText(url))} is not an amqp:// or amqps:// URL`);
      }
    }
    this.urls = [...options.urls];
    this.topology = options.topology;
    this.log = options.log;
    this.appId = options.appId ?? APP_ID;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1000);
    this.heartbeatSeconds = options.heartbeatSeconds ?? AMQP_HEARTBEAT_SECONDS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.backoff = options.backoff ?? { initialMs: 100, maxMs: 10_000 };
    this.tls = options.tls;
    this.connectionName = `${this.appId} ${hostname()} pid ${process.pid}`;
  }

  /** Starts connecting in the background; reconnects forever until close(). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.connectLoop();
  }

  isConnected(): boolean {
    return this.session !== undefined && !this.session.dead;
  }

  waitConnected(timeoutMs: number): Promise<boolean> {
    if (this.isConnected()) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (connected: boolean): void => {
        clearTimeout(timer);
        this.connectWaiters.delete(done);
        resolve(connected);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.connectWaiters.add(done);
    });
  }

  /** Messages accepted by publish() and not yet confirmed (waiting, in flight or waiting for a retry). */
  pendingCount(): number {
    return this.pending;
  }

  /**
   * Resolves when the broker confirmed the message (ack, and no basic.return). Failures are retried
   * until then. Rejects with PublisherClosedError when close() gives up on the message, or at once
   * after close() began; with the JSON error when the body cannot be serialized.
   */
  publish(msg: OutgoingMessage): Promise<void> {
    return new Promise<void>((resolve, reject) => this.send(msg, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * publish() with a callback instead of a promise, for a caller sending thousands of messages a
   * second: one shared callback per caller instead of a promise and its reactions per message, which
   * would otherwise live in memory until the confirm. `done` may be called before send() returns
   * (a message that cannot be serialized or published, or a closed publisher).
   */
  send(msg: OutgoingMessage, done: SentCallback): void {
    if (this.closing) return done(new PublisherClosedError('publisher is closed'), msg.messageId);
    // Refused here: amqplib would throw while encoding it, which looks like a lost connection, and the
    // message would be retried forever ahead of everything behind it.
    const unpublishable = unpublishableReason(msg);
    if (unpublishable) return done(new UnpublishableMessageError(`message ${msg.messageId.slice(0, 80)} cannot be published: ${unpublishable}`), msg.messageId);
    let content: Buffer;
    try {
      content = Buffer.from(JSON.stringify(msg.body));
    } catch (err) {
      return done(err instanceof Error ? err : new Error(String(err)), msg.messageId);
    }
    const job: Job = {
      seq: this.nextSeq++,
      msg: { messageId: msg.messageId, routingKey: msg.routingKey, type: msg.type, timestampMs: msg.timestampMs },
      content,
      done,
      state: 'waiting',
      failures: 0,
      returned: false,
    };
    this.pending++;
    this.waiting.push(job);
    this.emit('published', job.msg);
    this.pump();
  }

  /**
   * Stops accepting messages, waits up to timeoutMs for the pending ones to be confirmed (still
   * reconnecting if need be), then closes the connection. Returns the messages still unconfirmed, in
   * the order they were published; their publish() promises reject with PublisherClosedError.
   */
  close(options: { timeoutMs?: number } = {}): Promise<OutgoingMessage[]> {
    this.closePromise ??= this.doClose(options.timeoutMs ?? 5000);
    return this.closePromise;
  }

  private async doClose(timeoutMs: number): Promise<OutgoingMessage[]> {
    this.closing = true;
    if (this.pending > 0 && timeoutMs > 0 && this.started) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.idleWaiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        this.idleWaiters.add(done);
      });
    }
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.wake?.();
    this.abortAttempt?.();

    const left: Job[] = [];
    const s = this.session;
    this.session = undefined;
    if (s) {
      s.dead = true;
      left.push(...s.inFlight.values());
      s.inFlight.clear();
    }
    left.push(...this.waiting.drainAll());
    for (const job of this.delayed) {
      clearTimeout(job.timer);
      left.push(job);
    }
    this.delayed.clear();
    left.sort((a, b) => a.seq - b.seq);
    this.pending = 0;
    for (const done of [...this.connectWaiters]) done(false);
    for (const done of [...this.idleWaiters]) done();

    if (s) await closeQuietly(s.conn, 2000);
    const err = new PublisherClosedError();
    for (const job of left) {
      job.state = 'done';
      this.callBack(job, err);
    }
    if (left.length > 0) this.log.warn({ unconfirmed: left.length }, 'publisher closed with unconfirmed messages');
    else this.log.info('publisher closed');
    return left.map(fullMessage);
  }

  // ---- connecting ----

  private async connectLoop(): Promise<void> {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    try {
      for (let round = 0; !this.closed; round++) {
        for (const url of shuffled(this.urls)) {
          if (this.closed) return;
          try {
            const session = await this.openSession(url);
            if (this.closed) {
              session.dead = true;
              void closeQuietly(session.conn, 1000);
              return;
            }
            if (session.dead) {
              this.logConnectFailure(url, session.error ?? new Error('connection closed during setup'));
              continue;
            }
            this.install(session);
            return;
          } catch (err) {
            if (this.closed) return;
            this.logConnectFailure(url, err);
          }
        }
        if (this.closed) return;
        await this.sleep(this.backoffDelay(round));
      }
    } finally {
      this.connecting = false;
    }
  }

  private backoffDelay(attempt: number): number {
    const { initialMs, maxMs } = this.backoff;
    return Math.random() * Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }


  /** One attempt: TCP (or TLS), AMQP handshake, confirm channel, topology; all within connectTimeoutMs. */
  private openSession(url: string): Promise<Session> {
    const redacted = redactText(url);
    let abandoned = false;
    let session: Session | undefined;
    const socketOptions: Record<string, unknown> = {
      timeout: this.connectTimeoutMs,
      noDelay: true,
      keepAlive: true,
      clientProperties: { connection_name: this.connectionName },
    };
    if (this.tls) {
      for (const [k, v] of Object.entries(this.tls)) if (v !== undefined) socketOptions[k] = v;
    }
    const attempt = (async (): Promise<Session> => {
      const conn = await amqp.connect(withHeartbeat(url, this.heartbeatSeconds), socketOptions);
      const writeNow = batchFrameWrites(conn);
      const s: Session = {
        url,
        redacted,
        conn,
        ch: undefined as unknown as ConfirmChannel,
        nextTag: 1,
        inFlight: new Map(),
        writable: true,
        installed: false,
        installedAt: 0,
        dead: false,
        writeNow,
        writeQueued: false,
      };
      session = s;
      // Listeners from the first moment: an 'error' without a listener would throw, and a close during
      // the setup must not go unnoticed.
      conn.on('error', (err: Error) => {
        s.error ??= err;
      });
      conn.on('close', (err?: Error) => this.lose(s, err ?? s.error ?? new Error('connection closed')));
      if (abandoned) throw new Error('connection attempt abandoned');
      s.ch = await conn.createConfirmChannel();
      s.ch.on('error', (err: Error) => {
        s.error ??= err;
      });
      s.ch.on('close', () => this.lose(s, s.error ?? new Error('channel closed')));
      await declareTopology(s.ch, this.topology);
      if (s.dead) throw s.error ?? new Error('connection closed during setup');
      return s;
    })();
    return new Promise<Session>((resolve, reject) => {
      const fail = (err: unknown): void => {
        if (abandoned) return;
        abandoned = true;
        clearTimeout(timer);
        this.abortAttempt = undefined;
        if (session) this.lose(session, session.error ?? new Error('connection attempt failed'));
        reject(err instanceof Error ? err : new Error(String(err)));
      };
      const timer = setTimeout(
        () => fail(new Error(`no AMQP connection within ${this.connectTimeoutMs} ms (timed out)`)),
        this.connectTimeoutMs,
      );
      this.abortAttempt = () => fail(new Error('publisher closed'));
      attempt.then((s) => {
        if (abandoned) {
          this.lose(s, new Error('connection attempt abandoned'));
          return;
        }
        clearTimeout(timer);
        this.abortAttempt = undefined;
        resolve(s);
      }, fail);
    });
  }

  private logConnectFailure(url: string, err: unknown): void {
    const reason = describeConnectError(err);
    const fields = { url: redactText(url), err: reason };
    if (this.lastFailure.get(url) === reason) {
      this.log.debug(fields, 'cannot connect to AMQP broker (still)');
    } else {
      this.lastFailure.set(url, reason);
      this.log.warn(fields, 'cannot connect to AMQP broker');
    }
  }

  private install(s: Session): void {
    const { conn, ch } = s;
    s.installed = true;
    s.installedAt = Date.now();
    conn.on('blocked', (reason: string) => {
      if (!s.dead) this.log.warn({ url: s.redacted, reason }, 'AMQP broker blocked publishing (resource alarm)');
    });
    conn.on('unblocked', () => {
      if (!s.dead) this.log.info({ url: s.redacted }, 'AMQP broker unblocked publishing');
    });
    ch.on('ack', (fields: { deliveryTag: number; multiple: boolean }) => this.onConfirm(s, fields, true));
    ch.on('nack', (fields: { deliveryTag: number; multiple: boolean }) => this.onConfirm(s, fields, false));
    ch.on('return', (message: Message) => this.onReturn(s, message));
    ch.on('drain', () => {
      s.writable = true;
      this.pump();
    });

    this.session = s;
    this.lastFailure.clear();
    this.log.info({ url: s.redacted }, 'connected to AMQP broker');
    this.emit('connected', s.redacted);
    for (const done of [...this.connectWaiters]) done(true);
    this.pump();
  }

  /** A connection or channel ended: every unconfirmed message goes back, in order, ahead of the rest. */
  private lose(s: Session, err: Error): void {
    if (s.dead) return;
    s.dead = true;
    if (!s.installed) {
      void closeQuietly(s.conn, 1000);
      return;
    }
    if (this.session === s) this.session = undefined;
    const jobs = [...s.inFlight.values()];
    s.inFlight.clear();
    for (let i = jobs.length - 1; i >= 0; i--) {
      const job = jobs[i] as Job;
      job.state = 'waiting';
      job.returned = false;
      this.waiting.unshift(job);
    }
    this.log.warn({ url: s.redacted, err: errorText(err), unconfirmed: jobs.length }, 'disconnected from AMQP broker');
    this.emit('disconnected', err);
    for (const job of jobs) this.emit('retry', job.msg);
    void closeQuietly(s.conn, 1000);
    this.flaps = Date.now() - s.installedAt < 5000 ? this.flaps + 1 : 0;
    if (!this.closed) this.scheduleReconnect(this.backoffDelay(this.flaps));
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.reconnectTimer || this.connecting || this.closed) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connectLoop();
    }, delayMs);
  }

  // ---- publishing ----

  private pump(): void {
    const s = this.session;
    if (!s || s.dead || !s.writable) return;
    if (this.waiting.length > 0 && s.writeNow && !s.writeQueued) {
      // Everything published in this turn goes out in one write as soon as the turn's code is done.
      s.writeQueued = true;
      queueMicrotask(() => {
        s.writeQueued = false;
        if (!s.dead) s.writeNow!();
      });
    }
    while (s.inFlight.size < this.maxInFlight && this.waiting.length > 0) {
      const job = this.waiting.shift() as Job;
      const tag = s.nextTag++;
      s.inFlight.set(tag, job);
      job.state = 'inflight';
      job.returned = false;
      let ok: boolean;
      try {
        ok = s.ch.publish(this.topology.exchange, job.msg.routingKey, job.content, this.properties(job));
      } catch (err) {
        // The channel is closing under us; its 'close' will follow, but do not wait for it.
        this.lose(s, err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (!ok) {
        s.writable = false;
        return;
      }
    }
  }

  /** A caller's callback must not break the publisher's bookkeeping (it runs inside amqplib's events). */
  private callBack(job: Job, err: Error | undefined): void {
    try {
      job.done(err, job.msg.messageId);
    } catch (thrown) {
      this.log.error({ err: thrown, messageId: job.msg.messageId }, 'a publish callback threw');
    }
  }

  /**
   * The AMQP properties of a job's message, built as it goes out rather than kept with it: thousands
   * of jobs may wait for their confirm, and every object they hold is copied by each young GC.
   */
  private properties(job: Job): Options.Publish {
    return {
      persistent: true,
      mandatory: true,
      messageId: job.msg.messageId,
      timestamp: Math.floor(job.msg.timestampMs / 1000),
      type: job.msg.type,
      appId: this.appId,
      contentType: CONTENT_TYPE,
    };
  }

  private onConfirm(s: Session, fields: { deliveryTag: number; multiple: boolean }, acked: boolean): void {
    if (s.dead) return;
    const { deliveryTag, multiple } = fields;
    if (multiple) {
      for (const [tag, job] of s.inFlight) {
        if (tag > deliveryTag) break;
        s.inFlight.delete(tag);
        this.settle(job, acked);
      }
    } else {
      const job = s.inFlight.get(deliveryTag);
      if (job) {
        s.inFlight.delete(deliveryTag);
        this.settle(job, acked);
      }
    }
    this.pump();
  }

  private settle(job: Job, acked: boolean): void {
    if (acked && !job.returned) {
      job.state = 'done';
      this.pending--;
      this.callBack(job, undefined);
      this.emit('confirmed', job.msg);
      if (this.pending === 0) for (const done of [...this.idleWaiters]) done();
      return;
    }
    if (!acked) {
      const fields = { messageId: job.msg.messageId, routingKey: job.msg.routingKey, failures: job.failures + 1 };
      if (job.failures === 0) this.log.warn(fields, 'AMQP broker refused a message (nack); it will be retried');
      else this.log.debug(fields, 'AMQP broker refused a message (nack) again');
      this.emit('nacked', job.msg);
    }
    this.retryLater(job);
  }

  /**
   * basic.return comes before the ack of the same message. It carries no delivery tag, so the message
   * is found by message id and routing key among the unconfirmed ones; if several match (the same
   * message published twice), all are retried: a duplicate is harmless, a loss is not.
   */
  private onReturn(s: Session, message: Message): void {
    if (s.dead) return;
    const messageId = message.properties.messageId as string | undefined;
    const routingKey = message.fields.routingKey;
    // basic.return's fields; amqplib's types only name the delivery ones.
    const returnFields = message.fields as unknown as { replyCode?: number; replyText?: string };
    for (const job of s.inFlight.values()) {
      if (job.returned || job.msg.messageId !== messageId || job.msg.routingKey !== routingKey) continue;
      job.returned = true;
      const fields = {
        messageId,
        routingKey,
        exchange: message.fields.exchange,
        reply: `${returnFields.replyCode} ${returnFields.replyText}`,
        failures: job.failures + 1,
      };
      if (job.failures === 0) this.log.warn(fields, 'AMQP broker returned a message (unroutable); it will be retried');
      else this.log.debug(fields, 'AMQP broker returned a message (unroutable) again');
      this.emit('returned', job.msg);
    }
  }

  private retryLater(job: Job): void {
    job.failures++;
    job.returned = false;
    job.state = 'delayed';
    this.delayed.add(job);
    job.timer = setTimeout(() => {
      job.timer = undefined;
      if (!this.delayed.delete(job)) return;
      job.state = 'waiting';
      this.waiting.unshift(job);
      this.emit('retry', job.msg);
      this.pump();
    }, this.backoffDelay(job.failures));
  }
}

/** Closes a connection; if the broker does not answer in time, drops its socket. Never throws. */
async function closeQuietly(conn: ChannelModel, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    conn.close().then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!closed) {
    // amqplib has no public way to abort a close handshake; its connection keeps the socket as `stream`.
    const stream = (conn as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
    stream?.destroy?.();
  }
}
