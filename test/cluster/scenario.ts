// The work the fault tests put through the real programs, and what must come of it.
//
// Work: copies of the captured Ganeti 3.0 scenario (test/fixtures/ganeti-3.0), each with job ids and
// object names of its own (snf-1 → snf-101, snf-net-1 → snf-net-101, … for copy 1): its job-file
// versions renamed into the queue directory at the recorded pace (timestamps moved to the run's
// clock: test/cluster/feed.ts), its post-phase hook environments run through the real hook, and
// snf-image's stream A (spec §1.5) fed to the real progress monitor for its first VM.
//
// What must come of it, computed from the inputs alone (never from what the broker saw):
// - eventd: the message of every op's final transition, built from the job's last version as written
//   by eventd's own pure builder. Intermediate transitions are published only if eventd sees them (a job that
//   ran while eventd was down is reported in its final state), so they are allowed, not required;
// - the hook: one `ganeti-net-status` message per run that publishes (its id holds the hook's clock,
//   so what is known in advance is how many per instance and hooks path);
// - the monitor: one message per object, whose id is deterministic (instance, object text, index).
//
// The reference database is one in-order application (event time) of the required messages, with the
// hook, progress and heartbeat bodies as the broker delivered them (their `event_time` is the
// producing program's clock): what a fault-free run ends in.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StreamMessage } from '../fixtures/dispatcher/stream.js';
import { parseJobFile } from '../../src/eventd/jobfile.js';
import { buildOpEvents, type PublishEvent } from '../../src/eventd/opmessages.js';
import { routingPrefix } from '../../src/common/topology.js';
import { checkTarget, hookAction, instanceName } from '../../src/hooks/env.js';
import { progressMessageId } from '../../src/progress-monitor/message.js';
import { decodeMessage, type DispatcherMessage } from '../../src/dispatcher/messages.js';
import { Store } from '../../src/dispatcher/store.js';
import { migrate, openDatabase } from '../../src/dispatcher/db.js';
import { snapshot } from '../fixtures/dispatcher/helpers.js';
import { FIXTURES, fixtureBytes, fixtureVersions } from '../helpers/eventd.js';
import { listFixtures, loadFixtureEnv } from '../hooks/fixtures.js';
import { lines, STREAM_A } from '../progress-monitor/streams.js';

export const CLUSTER = 'cluster1.example.test';
export const MASTER = 'node1.example.test';
export const PREFIX = 'snf';

/** Names of copy `k`: numbered objects get `k*100` added (snf-1 → snf-101); `snf-bad` becomes `snf-bad<k>`. */
export function renameForCopy(text: string, copy: number): string {
  return text
    .replace(/\bsnf-(net-|nic-)?(\d+)\b/g, (_m, kind: string | undefined, n: string) => `snf-${kind ?? ''}${copy * 100 + Number(n)}`)
    .replace(/\bsnf-bad\b/g, `snf-bad${copy}`);
}

/** A job-file version of copy `k`: its own job id (`k*100 + id`) and names. */
export function jobForCopy(bytes: Buffer, job: number, copy: number): { job: number; bytes: Buffer } {
  const id = copy * 100 + job;
  const text = renameForCopy(bytes.toString('utf8'), copy);
  // The job id is the file's first key (Ganeti writes `{"id": N, "ops": …`).
  const renamed = text.replace(/^\{\s*"id"\s*:\s*\d+/, (m) => m.replace(/\d+$/, String(id)));
  if (renamed === text && !text.startsWith(`{"id":${id}`)) throw new Error(`job ${job}: no leading "id" to rewrite`);
  return { job: id, bytes: Buffer.from(renamed) };
}

export interface HookRun {
  fixture: string;
  env: Record<string, string>;
  instance: string;
  hooksPath: string;
}

export interface MonitorRun {
  instance: string;
  lines: string[];
}

/** One thing Ganeti (or snf-image) does, at a recorded time (seconds since the recording's start). */
export type Step = { t: number } & (
  | { kind: 'write'; job: number; bytes: Buffer }
  | { kind: 'hook'; hook: HookRun }
  | { kind: 'monitor'; monitor: MonitorRun }
  /** The create job goes on only once snf-image (the monitor's stream) is done. */
  | { kind: 'monitor-end'; instance: string }
);

export interface CopyPlan {
  copy: number;
  /** Milliseconds after the run's start at which the copy's recorded time 0 falls. */
  startMs: number;
  /** In recorded order. Job files are renamed but not yet retimed: the feeder gives them the run's time. */
  steps: Step[];
}

export interface Scenario {
  /** Wall-clock time (ms since the epoch) of the run's start. */
  startEpochMs: number;
  /** The recording's first job-file write (seconds since the epoch): recorded time 0. */
  recordedStart: number;
  /** Recorded seconds → milliseconds into a copy (the recorded pace, the first create stretched). */
  warp: (t: number) => number;
  plans: CopyPlan[];
  /** The monitors' messages, whose ids are known in advance. */
  requiredProgress: string[];
  /** Hook messages that must arrive, per `<instance> <hooks path>`. */
  requiredHooks: Map<string, number>;
  progressGapMs: number;
}

export interface ScenarioOptions {
  copies: number;
  /** The first copy's number (names snf-<first*100+n>); default 1. */
  firstCopy?: number;
  /** Wall-clock time (ms since the epoch) at which the feeding starts. */
  startEpochMs: number;
  /** Milliseconds between the starts of two copies. */
  spacingMs: number;
  /** Recorded seconds → milliseconds of the run (1000: the recorded pace; less: faster). */
  msPerSecond: number;
  /**
   * How long each copy's first VM create runs, in milliseconds (the recording's fake create took
   * 0.7 s; snf-image's stream A takes 40): its progress stream is fed within it, as snf-image runs
   * inside the create job.
   */
  createMs: number;
  /** Milliseconds between two objects of a progress stream. */
  progressGapMs: number;
}

const messageOf = (e: PublishEvent): StreamMessage => ({ routingKey: e.message.routingKey, messageId: e.message.messageId, type: e.message.type, body: e.message.body });

/**
 * Moves every `[seconds, microseconds]` timestamp of a job file (job, op and log entry times) with
 * `move` (recorded µs → µs). The copies' job files then tell the time of the run, as the hook's and
 * the monitor's clocks do: the dispatcher orders by event time, and a stream whose producers' clocks
 * disagree by hours is not what a fault-free run sees.
 */
export function retime(text: string, move: (us: number) => number): string {
  return text.replace(/\[(\d{10}),(\s*)(\d{1,6})\]/g, (_m, sec: string, space: string, usec: string) => {
    const us = move(Number(sec) * 1e6 + Number(usec));
    return `[${Math.floor(us / 1e6)},${space}${us % 1e6}]`;
  });
}

/** The first VM create of the recording: its job and the recorded time inside it (between running and done). */
function recordedCreate(t0: number): { runningAt: number; splitAt: number } {
  const index = JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8')) as { jobs: { job: number; op_ids: string[]; versions: { t: number; op_status: string[] }[] }[] };
  const create = index.jobs.find((j) => j.op_ids.includes('OP_INSTANCE_CREATE'))!;
  const running = create.versions.findIndex((v) => v.op_status.includes('running'));
  const runningAt = create.versions[running]!.t - t0;
  return { runningAt, splitAt: (create.versions[running]!.t + create.versions[running + 1]!.t) / 2 - t0 };
}

export function buildScenario(o: ScenarioOptions): Scenario {
  const versions = fixtureVersions();
  const t0 = Math.min(...versions.map((v) => v.t));
  const create = recordedCreate(t0);
  const warp = (t: number): number => Math.round(t * o.msPerSecond) + (t > create.splitAt ? o.createMs : 0);
  const hookFixtures = listFixtures();
  const streamLines = lines(STREAM_A);
  const scenario: Scenario = { startEpochMs: o.startEpochMs, recordedStart: t0, warp, plans: [], requiredProgress: [], requiredHooks: new Map(), progressGapMs: o.progressGapMs };
  const first = o.firstCopy ?? 1;
  for (let copy = first; copy < first + o.copies; copy++) {
    const steps: Step[] = versions.map((v) => ({ t: v.t - t0, kind: 'write' as const, ...jobForCopy(fixtureBytes(v.file), v.job, copy) }));
    for (const h of hookFixtures) {
      const env = Object.fromEntries(Object.entries(loadFixtureEnv(h.name)).map(([k, v]) => [k, renameForCopy(v, copy)]));
      if (hookAction(env).action === 'skip') continue;
      if (!checkTarget(env, { nodeName: MASTER, namePrefix: PREFIX }).ok) continue;
      const instance = instanceName(env);
      steps.push({ t: Math.max(0, h.t - t0), kind: 'hook', hook: { fixture: h.name, env, instance, hooksPath: h.hooksPath } });
      const key = `${instance} ${h.hooksPath}`;
      scenario.requiredHooks.set(key, (scenario.requiredHooks.get(key) ?? 0) + 1);
    }
    // snf-image deploys the create's VM while the create runs.
    const instance = `snf-${copy * 100 + 1}`;
    steps.push({ t: create.runningAt + 0.001, kind: 'monitor', monitor: { instance, lines: streamLines } });
    steps.push({ t: create.splitAt, kind: 'monitor-end', instance });
    streamLines.forEach((raw, index) => scenario.requiredProgress.push(progressMessageId(instance, raw, index)));
    scenario.plans.push({ copy, startMs: (copy - first) * o.spacingMs, steps: steps.sort((a, b) => a.t - b.t) });
  }
  return scenario;
}

/** How long the scenario takes to feed when nothing is late, in milliseconds. */
export function scenarioSpanMs(s: Scenario): number {
  return Math.max(...s.plans.map((p) => p.startMs + s.warp(p.steps.at(-1)!.t)));
}

/** eventd's message for every op's final transition, built from the jobs' last versions by eventd's own builder. */
export function finalTransitions(finals: ReadonlyMap<number, Buffer>): StreamMessage[] {
  const out: StreamMessage[] = [];
  for (const [job, bytes] of finals) {
    const events = buildOpEvents(parseJobFile(bytes, `job-${job}`), { cluster: CLUSTER, nowMs: 0, acceptsName: (name) => routingPrefix(name) === PREFIX });
    for (const e of events) if (e.kind === 'publish') out.push(messageOf(e));
  }
  return out;
}

/** A message as the broker delivered it (the audit queue). */
export interface Delivered {
  messageId: string;
  routingKey: string;
  type: string;
  body: Record<string, unknown>;
}

export interface Accounting {
  /** Required ids (eventd final transitions, progress objects) never delivered by the broker. */
  missingRequired: string[];
  /** `<instance> <hooks path>` whose hook messages arrived fewer times than the hook ran. */
  missingHooks: string[];
  /** The messages of the reference run, in event-time order. */
  reference: StreamMessage[];
}

const eventMicros = (body: Record<string, unknown>): number => {
  const t = body['event_time'];
  return Array.isArray(t) ? Number(t[0]) * 1e6 + Number(t[1]) : 0;
};

/**
 * Checks what the broker delivered (`delivered`: the audit queue, copies included) against what the
 * scenario requires (`transitions`: finalTransitions() of what was written), and builds the
 * reference stream: eventd's required messages as computed, the rest as delivered (once per id).
 */
export function account(s: Scenario, transitions: readonly StreamMessage[], delivered: readonly Delivered[]): Accounting {
  const byId = new Map<string, Delivered>();
  for (const d of delivered) if (!byId.has(d.messageId)) byId.set(d.messageId, d);
  const missingRequired = [...transitions.map((m) => m.messageId), ...s.requiredProgress].filter((id) => !byId.has(id));
  const hookCounts = new Map<string, number>();
  for (const d of byId.values()) {
    if (d.type !== 'ganeti-net-status') continue;
    const [, instance, path] = d.messageId.split(':');
    const key = `${instance} ${path}`;
    hookCounts.set(key, (hookCounts.get(key) ?? 0) + 1);
  }
  const missingHooks = [...s.requiredHooks].filter(([key, n]) => (hookCounts.get(key) ?? 0) < n).map(([key, n]) => `${key}: ${hookCounts.get(key) ?? 0} of ${n}`);
  // Everything else the broker delivered that a program other than eventd's job reader made.
  const others = [...byId.values()].filter((d) => !isJobMessage(d)).map((d) => ({ routingKey: d.routingKey, messageId: d.messageId, type: d.type, body: d.body }));
  const reference = [...transitions, ...others].sort((a, b) => eventMicros(a.body) - eventMicros(b.body) || a.messageId.localeCompare(b.messageId));
  return { missingRequired, missingHooks, reference };
}

/** eventd's job messages (`<cluster>:<job>:<op>:<status>:<serial>`), as opposed to hooks, progress and heartbeats. */
export const isJobMessage = (d: { type: string }): boolean => ['ganeti-op-status', 'ganeti-network-status', 'ganeti-cluster-status'].includes(d.type);

/** The database state one dispatcher reaches applying `messages` in order on an empty database at `dbUrl`. */
export async function referenceState(dbUrl: string, messages: readonly StreamMessage[]): Promise<Record<string, unknown>> {
  const db = openDatabase(dbUrl);
  try {
    await migrate(db);
    const decoded = messages.map((m) => decodeMessage(Buffer.from(JSON.stringify(m.body)))).flatMap((d) => (d.ok ? [d.message as DispatcherMessage] : []));
    const store = new Store(db, { prefix: PREFIX, strict: false });
    for (let i = 0; i < decoded.length; i += 100) await store.applyBatch(decoded.slice(i, i + 100));
    return await snapshot(db);
  } finally {
    await db.knex.destroy();
  }
}

/** The snapshot of the database the dispatchers wrote. */
export async function actualState(dbUrl: string): Promise<Record<string, unknown>> {
  const db = openDatabase(dbUrl);
  try {
    return await snapshot(db);
  } finally {
    await db.knex.destroy();
  }
}

