// A test consumer: declares the topology (so its queues exist), consumes the topology's queues (or
// given ones, or a private queue bound to given keys) and collects every message with its routing
// key, properties and parsed JSON body.

import amqp from 'amqplib';
import type { Channel, ChannelModel, ConsumeMessage, MessageProperties } from 'amqplib';
import { declareTopology, dispatcherQueues, heartbeatQueue, type TopologyOptions } from '../../src/common/topology.js';

export interface Received {
  queue: string;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  properties: MessageProperties;
  content: Buffer;
  /** The parsed JSON body, or undefined when the content is not JSON. */
  body: unknown;
}

export interface TestConsumer {
  readonly messages: Received[];
  /** Message ids of everything received, in arrival order. */
  ids(): string[];
  /** Resolves when predicate(messages) holds; rejects with what was received after timeoutMs. */
  waitFor(predicate: (messages: Received[]) => boolean, timeoutMs: number): Promise<Received[]>;
  waitForCount(count: number, timeoutMs: number): Promise<Received[]>;
  close(): Promise<void>;
  readonly channel: Channel;
}

export interface ConsumerOptions {
  /** Queues to consume; default: the topology's main queues and its heartbeat queue. */
  queues?: string[];
  /** Also consume a private auto-delete queue bound to these keys on the topology's exchange. */
  bindKeys?: string[];
}

export async function startConsumer(url: string, topology: TopologyOptions, options: ConsumerOptions = {}): Promise<TestConsumer> {
  const conn: ChannelModel = await amqp.connect(url);
  conn.on('error', () => {});
  const channel = await conn.createChannel();
  channel.on('error', () => {});
  await declareTopology(channel, topology);
  const queues = options.queues ?? [...dispatcherQueues(topology).map((q) => q.name), heartbeatQueue(topology).name];
  const messages: Received[] = [];
  const listeners = new Set<() => void>();

  const onMessage = (queue: string) => (msg: ConsumeMessage | null) => {
    if (!msg) return;
    let body: unknown;
    try {
      body = JSON.parse(msg.content.toString('utf8'));
    } catch {
      body = undefined;
    }
    messages.push({
      queue,
      exchange: msg.fields.exchange,
      routingKey: msg.fields.routingKey,
      redelivered: msg.fields.redelivered,
      properties: msg.properties,
      content: msg.content,
      body,
    });
    channel.ack(msg);
    for (const l of [...listeners]) l();
  };

  for (const q of queues) await channel.consume(q, onMessage(q), { noAck: false });
  if (options.bindKeys?.length) {
    const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
    for (const key of options.bindKeys) await channel.bindQueue(queue, topology.exchange, key);
    await channel.consume(queue, onMessage(queue), { noAck: false });
  }

  const waitFor = (predicate: (m: Received[]) => boolean, timeoutMs: number): Promise<Received[]> =>
    new Promise((resolve, reject) => {
      if (predicate(messages)) return resolve(messages);
      const check = (): void => {
        if (!predicate(messages)) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(messages);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`consumer: condition not met within ${timeoutMs} ms; ${messages.length} messages received`));
      }, timeoutMs);
      listeners.add(check);
    });

  return {
    messages,
    channel,
    ids: () => messages.map((m) => String(m.properties.messageId)),
    waitFor,
    waitForCount: (count, timeoutMs) => waitFor((m) => m.length >= count, timeoutMs),
    async close() {
      await conn.close().catch(() => {});
    },
  };
}
