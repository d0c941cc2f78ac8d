// The one place that names the AMQP topology shared with Synnefo (spec §5.1, architecture invariant 7).
// Every program imports its exchanges, routing keys and queues from here, so a producer and the
// dispatcher can never disagree on a name or on a queue's arguments.

/** Synnefo's exchange; `--exchange` may name another, whose dead-letter twin is `<exchange>-dl`. */
export const EXCHANGE = 'ganeti';
export const deadLetterExchange = (exchange: string): string => `${exchange}-dl`;
export const EXCHANGE_TYPE = 'topic';

export interface TopologyOptions {
  exchange: string;
  /** The routing prefix of this cloud's names (`snf`). */
  prefix: string;
  queueType: QueueType;
}

export const DEFAULT_TOPOLOGY: TopologyOptions = { exchange: EXCHANGE, prefix: 'snf', queueType: 'classic' };

/** Routing key of eventd's heartbeats (Synnefo's name); the dispatcher's heartbeat queue is bound to it. */
export const HEARTBEAT_KEY = 'eventd.heartbeat';
/** Cluster messages carry no prefix in Synnefo, so deployments sharing a vhost share this key. */
export const CLUSTER_KEY = 'ganeti.event.cluster';

export type QueueKind = 'op' | 'network' | 'net' | 'progress' | 'cluster';
export const QUEUE_KINDS: readonly QueueKind[] = ['op', 'network', 'net', 'progress', 'cluster'];

export type QueueType = 'classic' | 'quorum';

/**
 * The routing prefix of an object name: its text up to the first `-` (`snf-42` and `snf-net-7` both
 * give `snf`); a name without `-` is its own prefix. This is Synnefo's rule, kept for wire compatibility.
 */
export function routingPrefix(name: string): string {
  const dash = name.indexOf('-');
  return dash === -1 ? name : name.slice(0, dash);
}

/** The routing key of a prefixed event kind (`ganeti.<prefix>.event.<kind>`), or the shared cluster key. */
export function routingKey(kind: QueueKind, prefix: string): string {
  return kind === 'cluster' ? CLUSTER_KEY : `ganeti.${prefix}.event.${kind}`;
}

export function routingKeyForName(kind: Exclude<QueueKind, 'cluster'>, objectName: string): string {
  return routingKey(kind, routingPrefix(objectName));
}

export const deadLetterQueue = (queue: string): string => `${queue}-dl`;

export interface QueueSpec {
  kind: QueueKind;
  name: string;
  routingKey: string;
  deadLetterName: string;
  /** Arguments of the main queue; the publisher and the dispatcher declare it with exactly these. */
  arguments: Record<string, unknown>;
  /** Arguments of the `-dl` twin. */
  deadLetterArguments: Record<string, unknown>;
}

/**
 * The dispatcher's queues for a backend prefix (`snf` for names `snf-…`): `<p>-events-<kind>`, each
 * dead-lettering into `ganeti-dl`, where its `-dl` twin is bound with the same routing key.
 * Mirroring is left to broker policies (not Synnefo's obsolete `x-ha-policy` arguments); a RabbitMQ
 * cluster uses quorum queues instead.
 */
export function dispatcherQueues({ exchange, prefix, queueType }: TopologyOptions): QueueSpec[] {
  const typeArgs = { 'x-queue-type': queueType };
  return QUEUE_KINDS.map((kind) => {
    const name = `${prefix}-events-${kind}`;
    return {
      kind,
      name,
      routingKey: routingKey(kind, prefix),
      deadLetterName: deadLetterQueue(name),
      arguments: { ...typeArgs, 'x-dead-letter-exchange': deadLetterExchange(exchange) },
      deadLetterArguments: { ...typeArgs },
    };
  });
}

/**
 * Where eventd heartbeats wait for the dispatcher, which records the newest one per cluster. Heartbeats
 * are only worth their latest value, so the queue keeps a bounded, short-lived backlog instead of a
 * dead-letter twin. Declaring it lets heartbeats be published `mandatory` like every other message.
 */
export function heartbeatQueue({ prefix, queueType }: TopologyOptions) {
  return {
    name: `${prefix}-eventd-heartbeat`,
    routingKey: HEARTBEAT_KEY,
    arguments: {
      'x-queue-type': queueType,
      'x-max-length': 1000,
      'x-overflow': 'drop-head',
      'x-message-ttl': 600_000,
    } as Record<string, unknown>,
  };
}

/** The part of an amqplib channel that topology declaration needs (kept small so tests can see it). */
export interface DeclaringChannel {
  assertExchange(name: string, type: string, options: { durable: boolean; autoDelete: boolean }): Promise<unknown>;
  assertQueue(name: string, options: { durable: boolean; arguments: Record<string, unknown> }): Promise<unknown>;
  bindQueue(queue: string, exchange: string, key: string): Promise<unknown>;
}

/**
 * Declares both exchanges, every dispatcher queue with its `-dl` twin, and their bindings. Producers
 * call this too, so that messages published before any dispatcher ran are routed, not dropped.
 */
export async function declareTopology(channel: DeclaringChannel, options: TopologyOptions): Promise<QueueSpec[]> {
  const exchangeOptions = { durable: true, autoDelete: false };
  const dlx = deadLetterExchange(options.exchange);
  await channel.assertExchange(options.exchange, EXCHANGE_TYPE, exchangeOptions);
  await channel.assertExchange(dlx, EXCHANGE_TYPE, exchangeOptions);
  const queues = dispatcherQueues(options);
  for (const q of queues) {
    await channel.assertQueue(q.name, { durable: true, arguments: q.arguments });
    await channel.bindQueue(q.name, options.exchange, q.routingKey);
    await channel.assertQueue(q.deadLetterName, { durable: true, arguments: q.deadLetterArguments });
    await channel.bindQueue(q.deadLetterName, dlx, q.routingKey);
  }
  const hb = heartbeatQueue(options);
  await channel.assertQueue(hb.name, { durable: true, arguments: hb.arguments });
  await channel.bindQueue(hb.name, options.exchange, hb.routingKey);
  return queues;
}
