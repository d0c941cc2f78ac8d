// Operator subcommands that act on the broker: `queues`, `drain-queue`, `purge-queues` and
// `retry-dead-letters`. Each opens its own short-lived connection.

import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import type { AmqpTls } from '../common/tls.js';
import { deadLetterQueue, dispatcherQueues, heartbeatQueue, type TopologyOptions } from '../common/topology.js';

/** Synnefo's `queue-retry` header: a message that carries it was retried once already (spec §5.9). */
const RETRIED_HEADER = 'from-dead-letter';

/** Every queue of the dispatcher: the five event queues, their `-dl` twins and the heartbeat queue. */
export function allQueues(topology: TopologyOptions): string[] {
  return [...dispatcherQueues(topology).flatMap((q) => [q.name, q.deadLetterName]), heartbeatQueue(topology).name];
}

export async function connectFirst(urls: readonly string[], tls?: AmqpTls): Promise<ChannelModel> {
  let last: unknown;
  for (const url of urls) {
    try {
      return await amqp.connect(url, { ...tls });
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

export interface QueueCount {
  queue: string;
  /** Null when the queue does not exist. */
  messages: number | null;
  consumers: number | null;
}

/** Messages waiting and consumers, per queue; a passive check, so nothing is declared. */
export async function queueCounts(connection: ChannelModel, topology: TopologyOptions): Promise<QueueCount[]> {
  const out: QueueCount[] = [];
  let channel: Channel | null = null;
  for (const queue of allQueues(topology)) {
    channel ??= await openChannel(connection);
    try {
      const q = await channel.checkQueue(queue);
      out.push({ queue, messages: q.messageCount, consumers: q.consumerCount });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      // A failed passive declare closes the channel.
      channel = null;
      out.push({ queue, messages: null, consumers: null });
    }
  }
  await channel?.close();
  return out;
}

async function openChannel(connection: ChannelModel): Promise<Channel> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  return channel;
}

/** Acknowledges (discards) every message waiting in `queue`; returns how many. */
export async function drainQueue(connection: ChannelModel, queue: string): Promise<number> {
  const channel = await openChannel(connection);
  let drained = 0;
  for (let msg = await channel.get(queue); msg !== false; msg = await channel.get(queue)) {
    channel.ack(msg);
    drained++;
  }
  await channel.close();
  return drained;
}

/**
 * Deletes every dispatcher queue, empty or not, in use or not (Synnefo's `--purge-queues` could delete
 * neither, spec §6.11). Needed to change a queue's arguments, e.g. classic → quorum; the dispatcher
 * and the producers declare the queues again when they connect. Returns the messages each held.
 */
export async function purgeQueues(connection: ChannelModel, topology: TopologyOptions): Promise<{ queue: string; messages: number }[]> {
  const channel = await openChannel(connection);
  const out: { queue: string; messages: number }[] = [];
  for (const queue of allQueues(topology)) {
    const { messageCount } = await channel.deleteQueue(queue, { ifUnused: false, ifEmpty: false });
    out.push({ queue, messages: messageCount });
  }
  await channel.close();
  return out;
}

export interface RetryReport {
  queue: string;
  moved: number;
  /** Already retried once and dead again: left in the `-dl` queue. */
  kept: number;
}

/**
 * Publishes the messages of the `-dl` queue of `queue` back to their exchange and original routing key,
 * marked with `from-dead-letter`, and removes them once the broker confirmed the publish. A marked
 * message is left where it is, so a message that fails again stays dead.
 */
export async function retryDeadLetters(connection: ChannelModel, queue: string, exchange: string): Promise<RetryReport> {
  const dl = queue.endsWith('-dl') ? queue : deadLetterQueue(queue);
  const channel: ConfirmChannel = await connection.createConfirmChannel();
  channel.on('error', () => undefined);
  const returned = new Set<string>();
  // mandatory: if the main queue is gone the broker returns the message, which then stays dead.
  channel.on('return', (msg: { properties: { headers?: Record<string, unknown> } }) => returned.add(String(msg.properties.headers?.['x-snf-retry'])));
  const { messageCount } = await channel.checkQueue(dl);
  const kept: GetMessage[] = [];
  let moved = 0;
  let batch: { msg: GetMessage; id: string }[] = [];
  const settle = async () => {
    await channel.waitForConfirms();
    for (const { msg, id } of batch) {
      if (returned.has(id)) kept.push(msg);
      else {
        channel.ack(msg);
        moved++;
      }
    }
    batch = [];
  };
  // Unacknowledged messages are not handed out again on this channel, so `get` walks the queue once.
  for (let n = 0; n < messageCount; n++) {
    const msg = await channel.get(dl);
    if (msg === false) break;
    const headers = msg.properties.headers ?? {};
    if (headers[RETRIED_HEADER]) {
      kept.push(msg);
      continue;
    }
    const death = Array.isArray(headers['x-death']) ? (headers['x-death'][0] as Record<string, unknown> | undefined) : undefined;
    const keys = death?.['routing-keys'];
    const routingKey = Array.isArray(keys) && typeof keys[0] === 'string' ? keys[0] : msg.fields.routingKey;
    const target = typeof death?.['exchange'] === 'string' && death['exchange'] !== '' ? death['exchange'] : exchange;
    const id = `${n}`;
    // user_id must match the connection's user, so it is not carried over.
    const { headers: _headers, userId: _userId, clusterId: _clusterId, ...properties } = msg.properties;
    channel.publish(target, routingKey, msg.content, {
      ...definedOnly(properties),
      headers: { ...headers, [RETRIED_HEADER]: true, 'x-snf-retry': id },
      persistent: true,
      mandatory: true,
    });
    batch.push({ msg, id });
    if (batch.length >= 100) await settle();
  }
  await settle();
  for (const msg of kept) channel.nack(msg, false, true);
  await channel.close();
  return { queue: dl, moved, kept: kept.length };
}

/** amqplib's GetMessage properties hold `undefined` for absent ones; publish options must omit them. */
function definedOnly(props: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(props).filter(([, v]) => v !== undefined));
}
