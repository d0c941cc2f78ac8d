// The world of a fault test: a private three-node RabbitMQ cluster with the topology declared as
// quorum queues (plus the audit queue), eventd's scratch directories, and the end-of-run accounting
// shared by the cluster test and the chaos run.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { topologyQueueNames } from '../helpers/rabbit.js';
import { startRabbitCluster, type RabbitCluster } from '../helpers/rabbit-cluster.js';
import { makeDirs, type EventdDirs } from '../helpers/eventd.js';
import { randomId, waitFor } from '../fixtures/dispatcher/helpers.js';
import { CLUSTER, MASTER, account, actualState, finalTransitions, referenceState, type Scenario } from './scenario.js';
import { appliedIds, declareWithAudit, drainAudit, queuedCount, settledIds, type Deployment, type RunningProgram } from './programs.js';

export interface World {
  cluster: RabbitCluster;
  deployment: Deployment;
  dirs: EventdDirs;
  destroy(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const cluster = await startRabbitCluster(3);
  const id = randomId();
  // Synnefo's prefix (the fixtures' names are snf-…) on an exchange of the test's own.
  const deployment: Deployment = { urls: cluster.urls, topology: { exchange: `test-${id}`, prefix: 'snf', queueType: 'quorum' } };
  try {
    await declareWithAudit(cluster.urls[0] as string, deployment.topology);
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
  const root = mkdtempSync(join(tmpdir(), 'snf-cluster-'));
  const dirs = makeDirs(root, CLUSTER, MASTER);
  return {
    cluster,
    deployment,
    dirs,
    async destroy() {
      await cluster.destroy();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface Outcome {
  counters: {
    /** Required messages: eventd's final transitions, hook runs, progress objects. */
    produced: number;
    /** Copies the exchange routed (the audit queue), re-publications included. */
    routed: number;
    /** Distinct messages the exchange routed (intermediate transitions and heartbeats included). */
    routedDistinct: number;
    /** Distinct messages a dispatcher applied. */
    applied: number;
    /** Deliveries settled for a message settled before. */
    duplicates: number;
    lost: number;
  };
  /** Messages still waiting in the event, -dl and heartbeat queues at the end (dead letters included). */
  left: number;
  missing: string[];
  same: boolean;
  actual: Record<string, unknown>;
  expected: Record<string, unknown>;
}

/**
 * After the inputs are in: waits until the dispatchers settled every required message, stops the
 * producers (`stopProducers`: eventd, whose heartbeats would go on), waits for the queues to empty,
 * then compares the database with the reference (one in-order application of the same work on an
 * empty database at `referenceDbUrl`). `dispatchers` holds every dispatcher process of the run,
 * killed ones too.
 */
export async function settle(
  world: World,
  s: Scenario,
  o: {
    /** Every job's last version as written (what feedScenario resolves with). */
    finals: ReadonlyMap<number, Buffer>;
    dispatchers: RunningProgram[];
    dbUrl: string;
    referenceDbUrl: string;
    timeoutMs: number;
    stopProducers: () => Promise<void>;
  },
): Promise<Outcome> {
  const queues = topologyQueueNames(world.deployment.topology);
  const transitions = finalTransitions(o.finals);
  const required = [...transitions.map((m) => m.messageId), ...s.requiredProgress];
  const settled = () => new Set(o.dispatchers.flatMap(settledIds));
  // On a timeout the accounting below says what is missing.
  await waitFor(() => required.every((id) => settled().has(id)), o.timeoutMs, 'every required message settled', 1000).catch(() => undefined);
  await o.stopProducers();
  await waitFor(async () => (await queuedCount(world.cluster.urls, queues)) === 0, 60_000, 'the queues empty', 1000).catch(() => undefined);
  const delivered = await drainAudit(world.cluster.urls, world.deployment.topology);
  const acc = account(s, transitions, delivered);
  const expected = await referenceState(o.referenceDbUrl, acc.reference);
  // The dispatchers may still be committing their last batch: poll for the state a moment.
  let actual = await actualState(o.dbUrl);
  await waitFor(async () => isDeepStrictEqual((actual = await actualState(o.dbUrl)), expected), 30_000, 'the reference state', 1000).catch(() => undefined);
  const seen = settled();
  const notSettled = required.filter((id) => !seen.has(id));
  const missing = [...acc.missingRequired.map((id) => `never routed: ${id}`), ...acc.missingHooks.map((h) => `hook messages missing: ${h}`), ...notSettled.map((id) => `not settled by a dispatcher: ${id}`)];
  const deliveries = o.dispatchers.flatMap(settledIds);
  return {
    counters: {
      produced: required.length + [...s.requiredHooks.values()].reduce((a, b) => a + b, 0),
      routed: delivered.length,
      routedDistinct: new Set(delivered.map((d) => d.messageId)).size,
      applied: new Set(o.dispatchers.flatMap(appliedIds)).size,
      duplicates: deliveries.length - new Set(deliveries).size,
      lost: new Set([...acc.missingRequired, ...notSettled]).size + acc.missingHooks.length,
    },
    left: await queuedCount(world.cluster.urls, queues),
    missing,
    same: isDeepStrictEqual(actual, expected),
    actual,
    expected,
  };
}
