// Brokers for tests. Tests that only publish and consume use the machine's shared RabbitMQ with a
// topology of their own (a unique exchange and routing prefix, hence unique queues), so they never see
// each other's messages. Tests that stop, restart or kill a broker start a private node with its own
// node name, ports and data directory (scripts/demo/private-rabbit.ts), never touching the shared one.

import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { dispatcherQueues, heartbeatQueue, deadLetterExchange, type TopologyOptions } from '../../src/common/topology.js';

// The private node lives with the demo, which starts one when no broker answers.
export { freePort, startPrivateRabbit, waitForBroker, type PrivateRabbit, type PrivateRabbitOptions } from '../../scripts/demo/private-rabbit.js';

export const sharedRabbitUrl: string = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A topology nobody else uses: exchange `test-<hex>`, prefix `t<hex>` (no `-`, it is a routing prefix). */
export function uniqueTopology(): TopologyOptions {
  const id = randomBytes(5).toString('hex');
  return { exchange: `test-${id}`, prefix: `t${id}`, queueType: 'classic' };
}

/** Every queue name the topology declares (main queues, their `-dl` twins, the heartbeat queue). */
export function topologyQueueNames(topology: TopologyOptions): string[] {
  const names: string[] = [];
  for (const q of dispatcherQueues(topology)) names.push(q.name, q.deadLetterName);
  names.push(heartbeatQueue(topology).name);
  return names;
}

/** Deletes the topology's queues and exchanges (cleanup after a test on the shared broker). */
export async function deleteTopology(url: string, topology: TopologyOptions, extraQueues: string[] = []): Promise<void> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => {});
    for (const q of [...topologyQueueNames(topology), ...extraQueues]) await ch.deleteQueue(q);
    await ch.deleteExchange(topology.exchange);
    await ch.deleteExchange(deadLetterExchange(topology.exchange));
    await ch.close();
  } finally {
    await conn.close().catch(() => {});
  }
}
