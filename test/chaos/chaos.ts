// Issue 7, chaos: a bounded, seeded, randomized run. Copies of the captured Ganeti scenario stream
// into eventd's queue directory, the hook runs on their post-phase environments and the progress
// monitor gets snf-image's stream, against a private three-node RabbitMQ cluster (quorum queues) and
// two dispatchers on a private PostgreSQL; meanwhile a driver, one fault at a time at random moments,
// SIGKILLs eventd or a dispatcher (and starts it again), restarts a broker node (stop_app/start_app
// or SIGKILL and boot; one node at a time, so that the quorum queues keep a majority) or restarts
// PostgreSQL (immediate shutdown, or SIGKILL of every backend). At the end the database must equal a
// fault-free run of the same work (test/cluster/scenario.ts), and nothing may be lost.

import knex from 'knex';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/postgres-private.js';
import { freePort } from '../helpers/rabbit.js';
import { isWatching, type RunningEventd } from '../helpers/eventd.js';
import { buildPrograms } from '../hooks/build.js';
import { prng } from '../fixtures/dispatcher/stream.js';
import { pgUrl } from '../fixtures/dispatcher/helpers.js';
import { feedScenario } from '../cluster/feed.js';
import { deadLettered, runDispatcher, runEventd, type LogLine, type RunningProgram } from '../cluster/programs.js';
import { buildScenario, scenarioSpanMs } from '../cluster/scenario.js';
import { settle, startWorld, type World } from '../cluster/world.js';

export interface ChaosOptions {
  seed: number;
  /** How long the work streams in (and the faults go on), in milliseconds; at most 5 minutes. */
  durationMs: number;
  /** Progress lines (and what the run does) as it goes. */
  say: (line: string) => void;
}

export type FaultKind = 'eventd SIGKILL' | 'dispatcher SIGKILL' | 'rabbitmq stop_app/start_app' | 'rabbitmq node SIGKILL/boot' | 'postgresql immediate restart' | 'postgresql SIGKILL/start';

export interface ChaosReport {
  seed: number;
  counters: {
    produced: number;
    published: number;
    confirmed: number;
    routed: number;
    applied: number;
    duplicates: number;
    lost: number;
  };
  faults: Record<FaultKind, number>;
  missing: string[];
  deadLettered: LogLine[];
  left: number;
  same: boolean;
  actual: Record<string, unknown>;
  expected: Record<string, unknown>;
}

export const MAX_DURATION_MS = 5 * 60_000;
const PROGRESS_GAP_MS = 1000;

/** A counter of eventd's Prometheus text, summed over its labels. */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** eventd with a metrics port, so that what it published and had confirmed can be read before it is killed. */
interface Eventd {
  program: RunningEventd;
  port: number;
}

async function scrape(e: Eventd): Promise<{ published: number; confirmed: number } | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${e.port}/metrics`)).text();
    return { published: metricSum(text, 'snf_messages_published_total'), confirmed: metricSum(text, 'snf_messages_confirmed_total') };
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  if (o.durationMs > MAX_DURATION_MS) throw new Error(`a chaos run lasts at most ${MAX_DURATION_MS / 60_000} minutes`);
  const random = prng(o.seed);
  const between = (min: number, max: number) => min + Math.floor(random() * (max - min));
  const faults: Record<FaultKind, number> = {
    'eventd SIGKILL': 0,
    'dispatcher SIGKILL': 0,
    'rabbitmq stop_app/start_app': 0,
    'rabbitmq node SIGKILL/boot': 0,
    'postgresql immediate restart': 0,
    'postgresql SIGKILL/start': 0,
  };

  o.say(`starting a three-node RabbitMQ cluster and PostgreSQL`);
  let world: World | undefined;
  let pg: PrivatePostgres | undefined;
  const everyDispatcher: RunningProgram[] = [];
  const dispatchers: RunningProgram[] = [];
  let eventd: Eventd | undefined;
  try {
    world = await startWorld();
    pg = await startPrivatePostgres();
    const admin = knex({ client: 'pg', connection: pg.url, pool: { min: 0, max: 1 } });
    await admin.raw('CREATE DATABASE chaos');
    await admin.raw('CREATE DATABASE reference');
    await admin.destroy();
    const dbUrl = pgUrl('chaos', pg.url);
    const { deployment, dirs, cluster } = world;
    const totals = { published: 0, confirmed: 0 };

    const startEventd = async (): Promise<Eventd> => {
      const port = await freePort();
      return { program: runEventd(deployment, dirs, ['--metrics-port', String(port)]), port };
    };
    /** Adds what eventd counted so far to the totals (right before it is killed or stopped). */
    const account = async (e: Eventd) => {
      const counted = await scrape(e);
      totals.published += counted?.published ?? 0;
      totals.confirmed += counted?.confirmed ?? 0;
    };
    const startDispatcher = (slot: number) => {
      const d = runDispatcher(deployment, dbUrl);
      everyDispatcher.push(d);
      dispatchers[slot] = d;
      return d;
    };

    buildPrograms(); // compiled now, not on the stream's clock
    eventd = await startEventd();
    await eventd.program.waitForLog(isWatching, 120_000);
    for (const slot of [0, 1]) await startDispatcher(slot).waitForLog((l) => l['msg'] === 'consuming', 120_000);

    // Copies every 6 s, at twice the recorded pace, so that the last one ends with the run.
    const copyMs = scenarioSpanMs(buildScenario({ copies: 1, startEpochMs: 0, spacingMs: 0, msPerSecond: 500, createMs: 12 * PROGRESS_GAP_MS + 2000, progressGapMs: PROGRESS_GAP_MS }));
    const copies = Math.max(1, Math.floor((o.durationMs - copyMs) / 6000) + 1);
    const scenario = buildScenario({ copies, startEpochMs: Date.now() + 1000, spacingMs: 6000, msPerSecond: 500, createMs: 12 * PROGRESS_GAP_MS + 2000, progressGapMs: PROGRESS_GAP_MS });
    const count = (kind: string) => scenario.plans.reduce((n, p) => n + p.steps.filter((st) => st.kind === kind).length, 0);
    o.say(`streaming ${copies} copies of the scenario (${count('write')} job-file versions, ${count('hook')} hooks, ${count('monitor')} progress streams)`);
    const feeding = feedScenario(scenario, { deployment, queueDir: dirs.queueDir, outboxDir: dirs.outboxDir });
    let fed = false;
    const fedOrFailed = feeding.done.finally(() => (fed = true));
    fedOrFailed.catch(() => undefined);

    const until_ = Date.now() + o.durationMs;
    while (Date.now() < until_ && !fed) {
      await sleep(between(1000, 3000));
      const roll = random();
      if (roll < 0.2) {
        faults['eventd SIGKILL']++;
        o.say('fault: SIGKILL eventd');
        await account(eventd);
        await eventd.program.stop('SIGKILL');
        await sleep(between(200, 2000));
        // Not waiting for it to be ready: the next fault may find it starting.
        eventd = await startEventd();
      } else if (roll < 0.4) {
        const slot = between(0, 2);
        faults['dispatcher SIGKILL']++;
        o.say(`fault: SIGKILL dispatcher ${slot + 1}`);
        await dispatchers[slot]!.stop('SIGKILL');
        await sleep(between(200, 2000));
        startDispatcher(slot);
      } else if (roll < 0.7) {
        const node = cluster.nodes[between(0, cluster.nodes.length)]!;
        const kill = random() < 0.5;
        faults[kill ? 'rabbitmq node SIGKILL/boot' : 'rabbitmq stop_app/start_app']++;
        o.say(`fault: ${kill ? 'SIGKILL' : 'stop_app'} RabbitMQ node ${node.nodeName}`);
        if (kill) await node.kill();
        else await node.stop();
        await sleep(between(500, 3000));
        // start() returns once the node answers AMQP again, i.e. has rejoined: the next broker fault
        // never finds two nodes down.
        await node.start();
      } else {
        const kill = random() < 0.5;
        faults[kill ? 'postgresql SIGKILL/start' : 'postgresql immediate restart']++;
        o.say(`fault: ${kill ? 'SIGKILL' : 'immediate restart of'} PostgreSQL`);
        if (kill) await pg.kill();
        else await pg.stop('immediate');
        await sleep(between(500, 3000));
        await pg.start();
      }
    }
    o.say('faults over; waiting for the stream to end and the dispatchers to catch up');
    const finals = await fedOrFailed;
    const outcome = await settle(world, scenario, {
      finals,
      dispatchers: everyDispatcher,
      dbUrl,
      referenceDbUrl: pgUrl('reference', pg.url),
      timeoutMs: 240_000,
      stopProducers: async () => {
        await account(eventd!);
        await eventd!.program.stop('SIGTERM');
      },
    });
    const monitorsFinished = feeding.monitors.map((m) => m.lines.find((l) => l['msg'] === 'finished'));
    const fromMonitors = (field: string) => monitorsFinished.reduce((sum, l) => sum + Number(l?.[field] ?? 0), 0);
    return {
      seed: o.seed,
      counters: {
        produced: outcome.counters.produced,
        // eventd publishes the hooks' and what the monitors put in the outbox; the monitors the rest.
        published: totals.published + fromMonitors('objects') - fromMonitors('outboxed'),
        confirmed: totals.confirmed + fromMonitors('confirmed'),
        routed: outcome.counters.routedDistinct,
        applied: outcome.counters.applied,
        duplicates: outcome.counters.duplicates,
        lost: outcome.counters.lost,
      },
      faults,
      missing: outcome.missing,
      deadLettered: everyDispatcher.flatMap(deadLettered),
      left: outcome.left,
      same: outcome.same,
      actual: outcome.actual,
      expected: outcome.expected,
    };
  } finally {
    for (const p of [eventd?.program, ...everyDispatcher]) await p?.stop('SIGKILL');
    await pg?.destroy().catch(() => undefined);
    await world?.destroy().catch(() => undefined);
  }
}

/** The counters block the issue asks for. */
export function formatReport(r: ChaosReport, durationMs: number): string {
  const f = r.faults;
  return [
    `chaos run: seed ${r.seed}, ${Math.round(durationMs / 1000)} s of faults`,
    `  messages produced:   ${r.counters.produced} (required: eventd's final transitions, hook runs, progress objects)`,
    `  published:           ${r.counters.published} (handed to a publisher: eventd, counted before each kill, and the monitors)`,
    `  confirmed:           ${r.counters.confirmed} (by the broker)`,
    `  routed to queues:    ${r.counters.routed} distinct messages (intermediate transitions and heartbeats included)`,
    `  applied:             ${r.counters.applied} distinct messages applied by a dispatcher`,
    `  duplicates seen:     ${r.counters.duplicates} deliveries of a message already settled`,
    `  kills:               eventd ${f['eventd SIGKILL']}, dispatcher ${f['dispatcher SIGKILL']}, rabbitmq node ${f['rabbitmq node SIGKILL/boot']}, postgresql ${f['postgresql SIGKILL/start']}`,
    `  restarts:            rabbitmq stop_app/start_app ${f['rabbitmq stop_app/start_app']}, postgresql immediate ${f['postgresql immediate restart']}`,
    `  dead-lettered:       ${r.deadLettered.length}; left in the queues: ${r.left}`,
    `  lost:                ${r.counters.lost}`,
    `  database equals the fault-free run: ${r.same ? 'yes' : 'NO'}`,
  ].join('\n');
}
