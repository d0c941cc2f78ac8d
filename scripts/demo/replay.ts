// The replay source: the programs as installed (compiled, each with its real command line) on scratch
// directories under var/demo, fed the recorded Ganeti 3.0 run (test/fixtures/ganeti-3.0) on one
// timeline: job files renamed into the queue directory, post hooks run with the environment Ganeti
// gave them, and a progress monitor fed snf-image's stream for each instance create.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { fixtureBytes, fixtureVersions, makeDirs, renameJobVersion, ROOT, type EventdDirs } from '../../test/helpers/eventd.js';
import { listFixtures, loadFixtureEnv } from '../../test/hooks/fixtures.js';
import { STREAM_A, lines as streamLines } from '../../test/progress-monitor/streams.js';
import { freePort } from './private-rabbit.js';
import { startChild, type Child } from './processes.js';
import type { Observed, Progress, WorkSource } from './source.js';
import { buildTimeline, installedHookPaths, monitoredInstances, type RecordedVersion, type Step } from './timeline.js';
import { monitorCounts, type MonitorCounts } from './totals.js';

const run = promisify(execFile);

export const CLUSTER = 'cluster1.example.test';
export const MASTER = 'node1.example.test';

/** A path as the operator would type it: relative inside the checkout, absolute elsewhere. */
const rel = (p: string): string => (p.startsWith(ROOT) ? relative(ROOT, p) || '.' : p);

const program = (name: string) => join(ROOT, 'dist', 'src', name, 'main.js');

/** The recorded versions with their ops (id, status, instance), read from the job files themselves. */
export function recordedVersions(): RecordedVersion[] {
  return fixtureVersions().map((v) => {
    const job = JSON.parse(fixtureBytes(v.file).toString('utf8')) as { ops: { input: { OP_ID: string; instance_name?: string }; status: string }[] };
    return { ...v, ops: job.ops.map((o) => ({ opId: o.input.OP_ID, status: o.status, instance: o.input.instance_name ?? null })) };
  });
}

export function replayTimeline(speed: number): Step[] {
  return buildTimeline({
    versions: recordedVersions(),
    hooks: listFixtures(),
    hookPaths: installedHookPaths(readFileSync(join(ROOT, 'debian', 'snf-cyclades-gtools.links'), 'utf8')),
    progressStream: streamLines(STREAM_A),
    speed,
  });
}

/** The environment without our own settings variables: the settings file alone configures the programs. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SNF_GTOOLS_')));
}

/** What the demo puts in its directory (the earlier demo made the first four): nothing else is deleted. */
const DEMO_ENTRY = /^(queue|data|state|outbox|logs|dispatcher\.sqlite(-wal|-shm|-journal)?|snf-cyclades-gtools)$/;

export class NotDemoDirError extends Error {}

/** Empties (or makes) the demo's directory, refusing one that holds anything the demo does not make. */
export function emptyDemoDir(dir: string): void {
  const foreign = existsSync(dir) ? readdirSync(dir).filter((name) => !DEMO_ENTRY.test(name)) : [];
  if (foreign.length > 0) {
    throw new NotDemoDirError(`refusing to empty ${dir}: it holds what the demo did not make (${foreign.slice(0, 3).join(', ')})`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

export interface ReplayOptions {
  amqpUrl: string;
  /** Delete the demo's queues first (only on a broker or vhost that is the demo's alone). */
  purgeQueues: boolean;
  speed: number;
  /** Scratch directory for everything (var/demo), as emptyDemoDir() leaves it. */
  dir: string;
}

export class ReplaySource implements WorkSource {
  readonly description: string;
  private readonly steps: Step[];
  private readonly dirs: EventdDirs;
  private readonly settingsFile: string;
  private readonly logDir: string;
  private readonly dbPath: string;
  private eventd: Child | undefined;
  private dispatcher: Child | undefined;
  private readonly monitors = new Map<string, Child>();
  private readonly hooks: Child[] = [];
  private readonly finished: MonitorCounts[] = [];
  private hookFailures = 0;

  constructor(private readonly o: ReplayOptions) {
    this.steps = replayTimeline(o.speed);
    this.description = `replay of a real Ganeti 3.0 run at ${o.speed}x`;
    this.dirs = makeDirs(o.dir, CLUSTER, MASTER);
    mkdirSync(this.dirs.outboxDir, { recursive: true });
    this.logDir = join(o.dir, 'logs');
    mkdirSync(this.logDir);
    this.dbPath = join(o.dir, 'dispatcher.sqlite');
    this.settingsFile = join(o.dir, 'snf-cyclades-gtools');
    // What /etc/default/snf-cyclades-gtools holds on a node; the hook and the monitor read it too.
    writeFileSync(
      this.settingsFile,
      [
        '# The demo\'s settings file, in place of /etc/default/snf-cyclades-gtools',
        `SNF_GTOOLS_AMQP_URL=${o.amqpUrl}`,
        'SNF_GTOOLS_PREFIX=snf',
        `SNF_GTOOLS_NODE_NAME=${MASTER}`,
        `SNF_GTOOLS_OUTBOX_DIR=${this.dirs.outboxDir}`,
        'SNF_GTOOLS_LOG_LEVEL=info',
        '',
      ].join('\n'),
      { mode: 0o640 },
    );
  }

  async start(say: (line: string) => void): Promise<Observed> {
    const [eventdPort, dispatcherPort] = [await freePort(), await freePort()];
    const common = ['--settings-file', this.settingsFile];
    const env = cleanEnv();
    if (this.o.purgeQueues) {
      // Messages an earlier demo left in its vhost would be consumed into this run's new database.
      say('deleting the queues an earlier demo left (snf-dispatcher purge-queues)');
      await run(process.execPath, [program('dispatcher'), 'purge-queues', '--yes', ...common], { env, timeout: 60_000 });
    }
    say('starting eventd, the dispatcher and the progress monitor');
    this.eventd = startChild('snf-ganeti-eventd', process.execPath, [
      program('eventd'), ...common,
      '--queue-dir', this.dirs.queueDir, '--ganeti-data-dir', this.dirs.dataDir, '--state-dir', this.dirs.stateDir,
      '--metrics-port', String(eventdPort),
    ], { env, logFile: join(this.logDir, 'eventd.log') });
    this.dispatcher = startChild('snf-dispatcher', process.execPath, [
      program('dispatcher'), ...common, '--db-url', this.dbPath, '--metrics-port', String(dispatcherPort),
    ], { env, logFile: join(this.logDir, 'dispatcher.log') });
    // One progress monitor per instance create, started and connected before the clock starts. snf-image
    // starts it right before the copy, but here the create's running window is a fraction of a second
    // (the recorded OS scripts did nothing) and Node's start-up would delay the whole stream past it.
    for (const instance of monitoredInstances(this.steps)) this.monitors.set(instance, this.startMonitor(instance));
    await Promise.all([
      this.eventd.waitForLine((l) => l.includes('"watching the queue directory"'), 60_000),
      this.dispatcher.waitForLine((l) => l.includes('"msg":"consuming"'), 60_000),
      ...[...this.monitors.values()].map((m) => m.waitForLine((l) => l.includes('"connected to AMQP broker"'), 60_000)),
    ]);
    say(`eventd watches ${rel(this.dirs.queueDir)} (master of ${CLUSTER}), the dispatcher writes ${rel(this.dbPath)}`);
    return {
      dbUrl: this.dbPath,
      metrics: { eventd: `http://127.0.0.1:${eventdPort}/metrics`, dispatcher: `http://127.0.0.1:${dispatcherPort}/metrics` },
    };
  }

  async run(progress: Progress, signal: AbortSignal): Promise<string[]> {
    const total = this.steps.length;
    progress(0, total, 'starting the replay');
    const t0 = performance.now();
    for (const [i, step] of this.steps.entries()) {
      const wait = t0 + step.at - performance.now();
      if (wait > 0) await sleep(wait, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return [];
      this.carryOut(step);
      progress(i + 1, total, step.label);
    }
    // Ganeti waits for its hooks, snf-image for its monitor: so does the replay before it is done.
    await Promise.all([...this.hooks, ...this.monitors.values()].map((c) => c.exited));
    progress(total, total, 'replay done');
    return this.hookFailures > 0 ? [`${this.hookFailures} hook runs failed (see ${rel(join(this.logDir, 'hooks.log'))})`] : [];
  }

  private carryOut(step: Step): void {
    switch (step.kind) {
      case 'job':
        renameJobVersion(this.dirs.queueDir, step.job, fixtureBytes(step.file));
        return;
      case 'hook': {
        // As Ganeti runs it: a cleared environment holding only what it recorded, from `/`. The one
        // addition points the hook at the demo's settings file instead of /etc/default.
        const env = { ...loadFixtureEnv(step.name), SNF_GTOOLS_SETTINGS_FILE: this.settingsFile };
        const hook = startChild(`hook ${step.hooksPath}`, process.execPath, [program('hooks')], { env, cwd: '/', logFile: join(this.logDir, 'hooks.log') });
        void hook.exited.then((code) => {
          if (code !== 0) this.hookFailures++;
        });
        this.hooks.push(hook);
        return;
      }
      case 'monitor-line':
        this.monitors.get(step.instance)?.proc.stdin?.write(`${step.line}\n`);
        return;
      case 'monitor-end':
        this.monitors.get(step.instance)?.proc.stdin?.end();
        return;
    }
  }

  /** A progress monitor as snf-image runs it: `$PROGRESS_MONITOR <instance>`, the stream on stdin. */
  private startMonitor(instance: string): Child {
    // The settings file is named in the environment: the monitor's first pass over its flags reads no
    // file, so it refuses `--settings-file`.
    const monitor = startChild(`monitor ${instance}`, process.execPath, [program('progress-monitor'), instance], {
      env: { ...cleanEnv(), SNF_GTOOLS_SETTINGS_FILE: this.settingsFile },
      stdin: true,
      logFile: join(this.logDir, 'progress-monitor.log'),
    });
    void monitor.exited.then(() => {
      for (const line of monitor.lines) {
        const counts = monitorCounts(line);
        if (counts) this.finished.push(counts);
      }
    });
    return monitor;
  }

  monitorCounts(): MonitorCounts[] {
    return [...this.finished];
  }

  async stop(): Promise<void> {
    for (const m of this.monitors.values()) m.proc.stdin?.end();
    await Promise.all([...this.hooks, ...this.monitors.values()].map((c) => c.stop()));
    // eventd first: what it still holds goes to its outbox; then the dispatcher finishes its batch.
    await this.eventd?.stop();
    await this.dispatcher?.stop();
  }

  where(): string[] {
    return [
      `database ${rel(this.dbPath)}; to look: node dist/src/dispatcher/main.js servers --db-url ${rel(this.dbPath)}`,
      `queue ${rel(this.dirs.queueDir)}, eventd record ${rel(this.dirs.stateDir)}, outbox ${rel(this.dirs.outboxDir)}`,
      `logs ${rel(this.logDir)}/ (eventd, dispatcher, hooks, progress-monitor), settings ${rel(this.settingsFile)}`,
    ];
  }
}
