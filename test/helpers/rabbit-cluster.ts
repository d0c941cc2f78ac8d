// A private RabbitMQ cluster on loopback for tests that stop, restart or kill broker nodes while
// programs run against all of them. Each node is a private node of test/helpers/rabbit.ts (its own
// node name, AMQP and distribution ports, data directory); the others join the first with
// `stop_app / join_cluster / start_app`. No cookie is handed around: Debian's rabbitmq-server and
// rabbitmqctl run as user rabbitmq with HOME /var/lib/rabbitmq, so every node (and every rabbitmqctl)
// reads the same /var/lib/rabbitmq/.erlang.cookie. The machine's shared broker is never touched.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startPrivateRabbit, type PrivateRabbit } from './rabbit.js';

const run = promisify(execFile);

export interface RabbitCluster {
  nodes: PrivateRabbit[];
  /** Every node's AMQP URL, in node order. */
  urls: string[];
  /** The node whose AMQP port a (redacted or not) URL names, if any. */
  nodeOfUrl(url: string): PrivateRabbit | undefined;
  /** Running node names as the cluster itself reports them (from any node still up). */
  runningNodes(): Promise<string[]>;
  /** Halts every node and removes their directories. */
  destroy(): Promise<void>;
}

/** rabbitmqctl against one node of the cluster (cookie and epmd as for every node here). */
async function rabbitmqctl(nodeName: string, args: string[], timeoutMs = 90_000): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-n', nodeName, ...args], { timeout: timeoutMs });
  return stdout;
}

/** The AMQP port a URL names (`amqp://guest:***@127.0.0.1:5673/x` → 5673). */
export function portOfUrl(url: string): number | undefined {
  const match = /^amqps?:\/\/(?:[^@/]*@)?[^:/]+:(\d+)/.exec(url);
  return match ? Number(match[1]) : undefined;
}

/**
 * Starts `size` private nodes and clusters them. The nodes boot one after another (on two cores,
 * booting three Erlang VMs at once only makes each slower), then nodes 2..n join node 1.
 */
export async function startRabbitCluster(size = 3): Promise<RabbitCluster> {
  const nodes: PrivateRabbit[] = [];
  const destroy = async (): Promise<void> => {
    // Reverse order: the first node, which the others joined, goes last.
    for (const node of [...nodes].reverse()) await node.destroy().catch(() => undefined);
  };
  try {
    for (let i = 0; i < size; i++) nodes.push(await startPrivateRabbit());
    const first = nodes[0] as PrivateRabbit;
    for (const node of nodes.slice(1)) {
      await rabbitmqctl(node.nodeName, ['stop_app']);
      await rabbitmqctl(node.nodeName, ['join_cluster', first.nodeName]);
      await node.start();
    }
  } catch (err) {
    await destroy();
    throw err;
  }
  const cluster: RabbitCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    nodeOfUrl: (url) => nodes.find((n) => n.port === portOfUrl(url)),
    async runningNodes() {
      for (const node of nodes) {
        try {
          const status = JSON.parse(await rabbitmqctl(node.nodeName, ['cluster_status', '--formatter', 'json'], 30_000)) as { running_nodes?: string[] };
          return [...(status.running_nodes ?? [])].sort();
        } catch {
          // that node is down; ask the next
        }
      }
      return [];
    },
    destroy,
  };
  const running = await cluster.runningNodes();
  const expected = nodes.map((n) => n.nodeName).sort();
  if (running.join() !== expected.join()) {
    await destroy();
    throw new Error(`cluster did not form: running ${running.join(', ')}, expected ${expected.join(', ')}`);
  }
  return cluster;
}
