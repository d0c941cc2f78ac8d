// The end-to-end harness: a real single-node Ganeti 3.0 cluster (ganeti-node.sh) with the project's
// programs wired as in production, and the means to run the scenario's steps against it.
//
//   Ganeti (netns) ─ job files ─► snf-ganeti-eventd (root ns) ─► private RabbitMQ ─► snf-dispatcher ─► SQLite
//   hook (/etc/ganeti/hooks/<path>-post.d/) ─► outbox ─┘ (eventd drains it)
//   OS "snf-image" create script ─► snf-progress-monitor (netns) ─► relay (unix socket) ─► RabbitMQ
//
// The API is meant for the test (e2e.test.ts) and for a live demo alike: `setUpCluster()` gives an
// E2eCluster, `runStep()` runs one step of SCENARIO (scenario.ts; runNamedStep() there picks one by
// name) and waits until the dispatcher's database shows what the step expects, `cluster.dbPath` is
// the dispatcher's database, and `cluster.teardown()` (also run at process exit) leaves the machine
// as it was.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { JsonLog } from '../helpers/json-log.js';
import { startPrivateRabbit, type PrivateRabbit } from '../helpers/rabbit.js';
import { openState, project, type DispatcherState } from './state.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '..', '..');
const NODE_SCRIPT = join(HERE, 'ganeti-node.sh');
export const FIXTURES = join(HERE, 'fixtures');
/** Where ganeti-node.sh keeps its relay and reads what a crashed run left (see stop_recorded there). */
const RUN_DIR = '/run/snf-gtools-e2e';

export const NODE_NAME = 'node1.example.test';
export const CLUSTER_NAME = 'cluster1.example.test';
export const BRIDGE = 'br-gnt';
export const OS_NAME = 'snf-image';
const OS_DIR = `/srv/ganeti/os/${OS_NAME}`;
const RAPI_USER = 'synnefo';
const RAPI_PASSWORD = 'synnefo-e2e';
/** The paths the Debian package links the hook into (debian/snf-cyclades-gtools.links). */
const HOOK_PATHS = ['instance-add', 'instance-start', 'instance-reboot', 'instance-modify', 'instance-stop'];
// Not the package's file name (snf-ganeti-hook), which test/packaging installs and removes.
const HOOK_FILE = 'snf-gtools-e2e-hook';
const PROGRAMS = {
  eventd: join(ROOT, 'dist/src/eventd/main.js'),
  hook: join(ROOT, 'dist/src/hooks/main.js'),
  monitor: join(ROOT, 'dist/src/progress-monitor/main.js'),
  dispatcher: join(ROOT, 'dist/src/dispatcher/main.js'),
};

/** What keeps the e2e test from running here, in words; empty when nothing does. */
export function missingPrerequisites(): string[] {
  if (process.platform !== 'linux') return ['Linux'];
  const check = spawnSync('bash', [NODE_SCRIPT, 'check'], { encoding: 'utf8' });
  const missing = check.status === 0 ? [] : check.stdout.split('\n').filter((l) => l.trim() !== '');
  if (check.error) missing.push(`bash: ${check.error.message}`);
  for (const [name, file] of Object.entries(PROGRAMS)) if (!existsSync(file)) missing.push(`${name}: ${file} (build with npx tsc -p tsconfig.json)`);
  return missing;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs = 120_000, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolveRun) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20, env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolveRun({ code, stdout, stderr: stderr + (err && code === 1 && !stderr ? err.message : '') });
    });
  });
}

/** A daemon of the project, its JSON log lines kept in memory and in a file. */
export class Program {
  readonly exited: Promise<number | string>;
  private readonly log = new JsonLog();

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    logFile: string,
  ) {
    const file = createWriteStream(logFile, { flags: 'a' });
    proc.stdout?.on('data', (chunk: Buffer) => file.write(chunk));
    proc.stderr?.on('data', (chunk: Buffer) => file.write(chunk));
    if (proc.stdout) this.log.follow(proc.stdout);
    this.exited = new Promise((r) =>
      proc.on('exit', (code, signal) => {
        file.end();
        r(code ?? signal ?? -1);
      }),
    );
    // A wait for a line gives up once the program has exited.
    void this.exited.then(() => this.log.recheck());
  }

  get lines(): readonly Record<string, unknown>[] {
    return this.log.lines;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async waitForLog(pred: (line: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    await this.log.waitFor(pred, timeoutMs, {
      timeout: () => `${this.name} did not log ${what} within ${timeoutMs} ms; last lines:\n${this.tail()}`,
      gaveUp: () => (this.running ? undefined : `${this.name} exited before logging ${what}; last lines:\n${this.tail()}`),
    });
  }

  tail(n = 10): string {
    return this.log.tail(n);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<number | string> {
    if (this.running) this.proc.kill(signal);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const how = await this.exited;
    clearTimeout(timer);
    return how;
  }
}

export interface GanetiJob {
  id: number;
  status: string;
  opstatus: string[];
}

export interface GanetiNic {
  mac: string;
  ip: string | null;
  network: string | null;
}

export interface GanetiInstance {
  name: string;
  nics: GanetiNic[];
  tags: string[];
}

export interface E2eOptions {
  /** Where progress lines go (the test passes t.comment); default stderr. */
  log?: (line: string) => void;
}

export class E2eCluster {
  /** The dispatcher's database (SQLite). */
  readonly dbPath: string;
  readonly outboxDir: string;
  readonly eventdStateDir: string;
  eventd: Program | null = null;
  dispatcher: Program | null = null;
  private state: ReturnType<typeof openState> | null = null;
  private tornDown = false;
  private eventdStarts = 0;

  constructor(
    /** Scratch directory of this run: settings, outbox, eventd's state, the database, logs. */
    readonly dir: string,
    readonly rabbit: PrivateRabbit,
    readonly log: (line: string) => void,
  ) {
    this.dbPath = join(dir, 'dispatcher.sqlite');
    this.outboxDir = join(dir, 'outbox');
    this.eventdStateDir = join(dir, 'eventd-state');
  }

  /** Runs a command on the Ganeti node (in its netns, with its hostname). */
  node(args: string[], timeoutMs?: number): Promise<RunResult> {
    return run('bash', [NODE_SCRIPT, 'exec', ...args], timeoutMs);
  }

  /** A gnt-* command that must succeed; its stdout. */
  async gnt(...args: string[]): Promise<string> {
    const r = await this.node(args);
    if (r.code !== 0) throw new Error(`${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r.stdout;
  }

  /** Submits a gnt-* command's job without waiting (`--submit`); its job id. */
  async submit(...args: string[]): Promise<number> {
    const [command, sub, ...rest] = args;
    if (command === undefined || sub === undefined) throw new Error(`submit: a command and its subcommand, not ${args.join(' ')}`);
    const r = await this.node([command, sub, '--submit', ...rest]);
    const out = r.stdout + r.stderr;
    if (r.code !== 0) throw new Error(`${args.join(' ')} --submit failed (${r.code}): ${out}`);
    // `JobID: 12` on stderr (most commands) or `12: snf-1` on stdout (commands on instances)
    const m = /JobID:\s*(\d+)/.exec(out) ?? /^(\d+):/m.exec(out);
    if (!m) throw new Error(`no job id in the output of ${args.join(' ')} --submit: ${out}`);
    return Number(m[1]);
  }

  /** Waits for a job to finish; its status and its ops' statuses. */
  async waitJob(id: number): Promise<GanetiJob> {
    // gnt-job wait exits 1 when the job failed: the job's status says whether it is over.
    const waited = await this.node(['gnt-job', 'wait', String(id)]);
    const job = (await this.rapi('GET', `/2/jobs/${id}`)) as { status: string; opstatus: string[] };
    if (!['success', 'error', 'canceled'].includes(job.status)) {
      throw new Error(`job ${id} is ${job.status} after gnt-job wait (${waited.code}): ${waited.stderr}${waited.stdout}`);
    }
    return { id, status: job.status, opstatus: job.opstatus };
  }

  /** Submits (gnt-* `--submit`), waits; the finished job. */
  async job(...args: string[]): Promise<GanetiJob> {
    return this.waitJob(await this.submit(...args));
  }

  /** A RAPI request (https://127.0.0.1:5080 inside the netns, as Synnefo's backend makes them). */
  async rapi(method: string, path: string, body?: unknown): Promise<unknown> {
    const args = ['curl', '-sS', '-k', '--user', `${RAPI_USER}:${RAPI_PASSWORD}`, '-X', method, '-w', '\n%{http_code}'];
    if (body !== undefined) args.push('-H', 'Content-Type: application/json', '-d', JSON.stringify(body));
    const r = await this.node([...args, `https://127.0.0.1:5080${path}`]);
    const nl = r.stdout.lastIndexOf('\n');
    const status = Number(r.stdout.slice(nl + 1));
    const text = r.stdout.slice(0, nl);
    if (r.code !== 0 || status !== 200) throw new Error(`RAPI ${method} ${path}: HTTP ${status} ${text} ${r.stderr}`);
    return JSON.parse(text) as unknown;
  }

  /** A RAPI request that submits a job; waits for it. */
  async rapiJob(method: string, path: string, body?: unknown): Promise<GanetiJob> {
    return this.waitJob(Number(await this.rapi(method, path, body)));
  }

  /** Ganeti's own view of an instance (RAPI), to compare the dispatcher's with. */
  async instance(name: string): Promise<GanetiInstance> {
    const i = (await this.rapi('GET', `/2/instances/${name}`)) as Record<string, unknown>;
    const macs = i['nic.macs'] as string[];
    const ips = i['nic.ips'] as (string | null)[];
    const networks = i['nic.networks.names'] as (string | null)[];
    return {
      name,
      nics: macs.map((mac, k) => ({ mac, ip: ips[k] ?? null, network: networks[k] ?? null })),
      tags: (i['tags'] as string[]).slice().sort(),
    };
  }

  /** The dispatcher's database, now. */
  readState(): Promise<DispatcherState> {
    if (!this.state) throw new Error('the dispatcher is not wired yet');
    return this.state.read();
  }

  /** Entries waiting in the outbox (batches the hook or the monitor stored, not yet published). */
  outboxEntries(): string[] {
    if (!existsSync(this.outboxDir)) return [];
    return readdirSync(this.outboxDir).filter((f) => !f.startsWith('.') && !f.endsWith('.tmp'));
  }

  async startEventd(): Promise<void> {
    if (this.eventd?.running) throw new Error('eventd runs already');
    const proc = spawn(
      process.execPath,
      [
        PROGRAMS.eventd,
        '--settings-file', join(this.dir, 'empty.env'),
        '--amqp-url', this.rabbit.url,
        '--node-name', NODE_NAME,
        '--queue-dir', '/var/lib/ganeti/queue',
        '--ganeti-data-dir', '/var/lib/ganeti',
        '--state-dir', this.eventdStateDir,
        '--outbox-dir', this.outboxDir,
        '--heartbeat-interval', '2',
        '--rescan-interval', '5',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.eventd = new Program('eventd', proc, join(this.dir, 'eventd.log'));
    recordProcess(proc.pid, this.dir);
    this.eventdStarts++;
    await this.eventd.waitForLog((l) => l.msg === 'watching the queue directory', 'that it watches the queue');
  }

  /** SIGKILLs eventd: no chance to save anything, as in a crash. */
  async killEventd(): Promise<void> {
    if (!this.eventd?.running) throw new Error('eventd is not running');
    await this.eventd.stop('SIGKILL');
  }

  async startDispatcher(): Promise<void> {
    const proc = spawn(
      process.execPath,
      [PROGRAMS.dispatcher, '--settings-file', join(this.dir, 'empty.env'), '--amqp-url', this.rabbit.url, '--db-url', this.dbPath],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.dispatcher = new Program('dispatcher', proc, join(this.dir, 'dispatcher.log'));
    recordProcess(proc.pid, this.dir);
    await this.dispatcher.waitForLog((l) => l.msg === 'consuming', 'that it consumes');
  }

  /** Stops the broker (the node's app: every client is disconnected, the port closes). */
  async stopBroker(): Promise<void> {
    await this.rabbit.stop();
  }

  async startBroker(): Promise<void> {
    await this.rabbit.start();
  }

  /** Everything installed and started, in order; the caller tears down on failure. */
  async wire(): Promise<void> {
    mkdirSync(this.outboxDir, { recursive: true });
    mkdirSync(join(this.dir, 'bin'), { recursive: true });
    writeFileSync(join(this.dir, 'empty.env'), '# the e2e test passes every setting as a flag\n', { mode: 0o640 });
    // What /etc/default/snf-cyclades-gtools holds on a node, for the programs Ganeti runs with a clean
    // environment. The broker is the relay's end inside the netns.
    const nodeSettings = join(this.dir, 'node.env');
    writeFileSync(
      nodeSettings,
      [
        'SNF_GTOOLS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/',
        `SNF_GTOOLS_OUTBOX_DIR=${this.outboxDir}`,
        'SNF_GTOOLS_PREFIX=snf',
        `SNF_GTOOLS_NODE_NAME=${NODE_NAME}`,
        '',
      ].join('\n'),
      { mode: 0o640 },
    );
    const wrapper = (program: string) =>
      `#!/bin/sh\n# installed by the snf-cyclades-gtools e2e test (${this.dir})\nSNF_GTOOLS_SETTINGS_FILE=${nodeSettings} exec ${process.execPath} ${program} "$@"\n`;
    const monitor = join(this.dir, 'bin', 'snf-progress-monitor');
    writeExecutable(monitor, wrapper(PROGRAMS.monitor));
    for (const path of HOOK_PATHS) {
      mkdirSync(`/etc/ganeti/hooks/${path}-post.d`, { recursive: true });
      writeExecutable(`/etc/ganeti/hooks/${path}-post.d/${HOOK_FILE}`, wrapper(PROGRAMS.hook));
    }
    installTestOs(monitor);

    const relay = await run('bash', [NODE_SCRIPT, 'relay', String(this.rabbit.port)]);
    if (relay.code !== 0) throw new Error(`relay: ${relay.stderr}`);
    await this.startDispatcher();
    this.state = openState(this.dbPath);
    await this.startEventd();
  }

  async teardown(): Promise<void> {
    if (this.tornDown) return;
    this.tornDown = true;
    await this.eventd?.stop().catch(() => undefined);
    await this.dispatcher?.stop().catch(() => undefined);
    await this.state?.close().catch(() => undefined);
    await this.rabbit.destroy().catch(() => undefined);
    tearDownNode();
    rmSync(this.dir, { recursive: true, force: true });
    process.removeListener('exit', tearDownNode);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.removeListener(signal, exitOnSignal);
  }

  get eventdStartCount(): number {
    return this.eventdStarts;
  }
}

function writeExecutable(path: string, text: string): void {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

/**
 * The OS definition `snf-image`: its create script does what snf-image's does with the progress
 * monitor (a FIFO on the monitor's stdin, the instance name as its argument) and writes a recorded
 * snf-image stream into it: a successful deployment, or, for an image id containing "fail", one whose
 * customization fails, after which the script fails as snf-image does.
 */
function installTestOs(monitor: string): void {
  mkdirSync(OS_DIR, { recursive: true });
  const create = `#!/bin/sh
# snf-image stand-in of the snf-cyclades-gtools e2e test
PROGRESS_MONITOR=${monitor}
case "$OSP_IMG_ID" in
  *fail*) stream=${join(FIXTURES, 'snf-image-deploy-fail.jsonl')}; rc=1 ;;
  *) stream=${join(FIXTURES, 'snf-image-deploy-ok.jsonl')}; rc=0 ;;
esac
fifo=$(mktemp -u /tmp/snf-e2e-monitor.XXXXXX)
mkfifo -m 600 "$fifo" || exit 1
$PROGRESS_MONITOR "$INSTANCE_NAME" <"$fifo" &
monitor=$!
cat "$stream" >"$fifo"
rm -f "$fifo"
# snf-image does not wait for the monitor; this one does, so that a failing monitor fails the job.
wait "$monitor" || { echo "snf-progress-monitor failed" >&2; exit 1; }
[ "$rc" = 0 ] || echo "Image customization failed." >&2
exit "$rc"
`;
  writeExecutable(join(OS_DIR, 'create'), create);
  for (const script of ['import', 'export', 'rename', 'verify']) writeExecutable(join(OS_DIR, script), '#!/bin/sh\nexit 0\n');
  writeFileSync(join(OS_DIR, 'ganeti_api_version'), '20\n');
  writeFileSync(join(OS_DIR, 'variants.list'), 'default\n');
  writeFileSync(join(OS_DIR, 'parameters.list'), 'img_id image id\nimg_format image format\nimg_passwd password\nimg_properties properties\nconfig_url config url\n');
}

/** Lets ganeti-node.sh kill what a crashed run left: "<pid> <text in its command line>". */
function recordProcess(pid: number | undefined, marker: string): void {
  if (pid === undefined) return;
  mkdirSync(RUN_DIR, { recursive: true });
  appendFileSync(join(RUN_DIR, 'processes'), `${pid} ${marker}\n`);
}

function recordScratch(dir: string): void {
  mkdirSync(RUN_DIR, { recursive: true });
  appendFileSync(join(RUN_DIR, 'scratch'), `${dir}\n`);
}

/** Synchronous, so that it also runs from a process 'exit' handler. */
function tearDownNode(): void {
  const r = spawnSync('bash', [NODE_SCRIPT, 'teardown'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) process.stderr.write(`e2e: ganeti-node.sh teardown failed (${r.status}): ${r.stderr}\n`);
}

const exitOnSignal = (signal: NodeJS.Signals) => {
  process.stderr.write(`e2e: ${signal}: tearing the cluster down\n`);
  process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
};

/**
 * Sets up the cluster and wires the programs. Whatever a crashed earlier run left is torn down first
 * (ganeti-node.sh setup); this run's own is torn down by `teardown()`, or at process exit.
 */
export async function setUpCluster(options: E2eOptions = {}): Promise<E2eCluster> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const t0 = Date.now();
  const setup = await run('bash', [NODE_SCRIPT, 'setup'], 300_000, { ...process.env, E2E_RAPI_USER: RAPI_USER, E2E_RAPI_PASSWORD: RAPI_PASSWORD });
  if (setup.code !== 0) throw new Error(`ganeti-node.sh setup failed: ${setup.stderr}`);
  process.on('exit', tearDownNode);
  // A signal (tap's timeout sends SIGTERM) must also tear down: exit, which runs the 'exit' handler.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, exitOnSignal);
  log(`setup: Ganeti cluster up in ${seconds(t0)} s`);
  const dir = mkdtempSync(join(tmpdir(), 'snf-gtools-e2e-'));
  recordScratch(dir);
  let rabbit: PrivateRabbit;
  const t1 = Date.now();
  try {
    rabbit = await startPrivateRabbit();
  } catch (err) {
    tearDownNode();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  recordScratch(rabbit.dir);
  recordProcess(Number(readFileSync(join(rabbit.dir, 'pid'), 'utf8').trim()), rabbit.dir);
  log(`setup: private RabbitMQ on port ${rabbit.port} in ${seconds(t1)} s`);
  const cluster = new E2eCluster(dir, rabbit, log);
  const t2 = Date.now();
  try {
    await cluster.wire();
  } catch (err) {
    await cluster.teardown();
    throw err;
  }
  log(`setup: hook, OS, relay, dispatcher and eventd wired in ${seconds(t2)} s; total ${seconds(t0)} s`);
  return cluster;
}

const seconds = (since: number): string => ((Date.now() - since) / 1000).toFixed(1);

// ---------------------------------------------------------------------------------------------
// Steps

/** One thing the dispatcher's database must show: `select` picks it out of the state. */
export interface Expectation {
  what: string;
  select(state: DispatcherState): unknown;
  expected: unknown;
}

/** Shared between the steps of one run: job ids, Ganeti's views, whatever a later step refers to. */
export interface ScenarioContext {
  cluster: E2eCluster;
  jobs: Record<string, GanetiJob>;
  instances: Record<string, GanetiInstance>;
}

export interface Step {
  name: string;
  /** One line: what the step does to Ganeti or to the programs. */
  does: string;
  run(ctx: ScenarioContext): Promise<void>;
  /** What the dispatcher must show once the step has run (evaluated after `run`). */
  expect(ctx: ScenarioContext): Expectation[];
}

export interface CheckResult {
  what: string;
  /** The selected state cut to the shape of `expected` (see project()). */
  actual: unknown;
  expected: unknown;
}

export interface StepResult {
  name: string;
  runSeconds: number;
  settleSeconds: number;
  checks: CheckResult[];
  settled: boolean;
}

export function newContext(cluster: E2eCluster): ScenarioContext {
  return { cluster, jobs: {}, instances: {} };
}

/**
 * Runs a step, then reads the dispatcher's database until every expectation holds or `timeoutMs`
 * passes; returns the last comparison either way (the caller asserts it).
 */
export async function runStep(ctx: ScenarioContext, step: Step, timeoutMs = 60_000): Promise<StepResult> {
  const t0 = Date.now();
  await step.run(ctx);
  const runSeconds = (Date.now() - t0) / 1000;
  const expectations = step.expect(ctx);
  const t1 = Date.now();
  const deadline = t1 + timeoutMs;
  let checks: CheckResult[] = [];
  let settled = false;
  for (;;) {
    const state = await ctx.cluster.readState();
    checks = expectations.map((e) => ({ what: e.what, expected: e.expected, actual: project(e.select(state), e.expected) }));
    settled = checks.every((c) => isDeepStrictEqual(c.actual, c.expected));
    if (settled || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 150));
  }
  const result = { name: step.name, runSeconds, settleSeconds: (Date.now() - t1) / 1000, checks, settled };
  ctx.cluster.log(`step ${step.name}: ran in ${runSeconds.toFixed(1)} s, dispatcher ${settled ? 'agreed' : 'DID NOT agree'} after ${result.settleSeconds.toFixed(1)} s`);
  return result;
}
