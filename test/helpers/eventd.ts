// Runs the real snf-ganeti-eventd as a child process on scratch directories, with scratch ssconf
// files, and collects its JSON log lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutgoingMessage } from '../../src/common/message.js';
import { routingPrefix } from '../../src/common/topology.js';
import { parseJobFile } from '../../src/eventd/jobfile.js';
import { buildOpEvents } from '../../src/eventd/opmessages.js';
import { JsonLog } from './json-log.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'ganeti-3.0');

export interface EventdDirs {
  root: string;
  queueDir: string;
  dataDir: string;
  stateDir: string;
  outboxDir: string;
}

export function makeDirs(root: string, cluster = 'cluster1.example.test', master = 'node1.example.test'): EventdDirs {
  const dirs = {
    root,
    queueDir: join(root, 'queue'),
    dataDir: join(root, 'data'),
    stateDir: join(root, 'state'),
    outboxDir: join(root, 'outbox'),
  };
  for (const d of [dirs.queueDir, dirs.dataDir, dirs.stateDir]) mkdirSync(d, { recursive: true });
  setSsconf(dirs, cluster, master);
  return dirs;
}

/** Writes ssconf values the way Ganeti does: temp file, then rename. */
export function setSsconf(dirs: EventdDirs, cluster: string, master: string): void {
  for (const [name, value] of [
    ['ssconf_cluster_name', cluster],
    ['ssconf_master_node', master],
  ] as const) {
    const tmp = join(dirs.dataDir, `${name}.tmp`);
    writeFileSync(tmp, `${value}\n`);
    renameSync(tmp, join(dirs.dataDir, name));
  }
}

/** Writes one job-file version as Ganeti does: a temp file in the queue directory renamed over job-N. */
export function renameJobVersion(queueDir: string, job: number, bytes: Buffer | string): void {
  const tmp = join(queueDir, `job-${job}-4242-${Math.random().toString(36).slice(2, 8)}.tmp`);
  writeFileSync(tmp, bytes);
  renameSync(tmp, join(queueDir, `job-${job}`));
}

export interface FixtureVersion {
  job: number;
  file: string;
  t: number;
}

/** Every recorded job-file version in the order Ganeti wrote them (versions.jsonl), archive copies excluded. */
export function fixtureVersions(): FixtureVersion[] {
  const index = JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8')) as {
    jobs: { job: number; versions: { file: string; t: number; writer: string }[] }[];
  };
  const all: FixtureVersion[] = [];
  for (const j of index.jobs) for (const v of j.versions) if (v.writer !== 'archive-rename') all.push({ job: j.job, file: v.file, t: v.t });
  return all.sort((a, b) => a.t - b.t);
}

export const fixtureBytes = (file: string): Buffer => readFileSync(join(FIXTURES, file));

/** A fixture version re-labelled as another job: only the leading `"id"` changes. */
export function relabelJob(bytes: Buffer, id: number): Buffer {
  return Buffer.from(bytes.toString('utf8').replace(/^\{"id": ?\d+/, (m) => m.replace(/\d+$/, String(id))));
}

/** A fixture version given a fresh job id, with the messages eventd must publish for it. */
export interface FreshJobVersion {
  id: number;
  bytes: Buffer;
  messages: OutgoingMessage[];
}

/** What makeDirs' eventd publishes for: its cluster, and the default `snf` prefix. */
const PUBLISH_CONTEXT = { cluster: 'cluster1.example.test', nowMs: 0, acceptsName: (n: string) => routingPrefix(n) === 'snf' };

/**
 * Every recorded version, each as a new job numbered from `firstId`, repeated until `count` versions;
 * only those that make eventd publish when `producing`.
 */
export function freshJobVersions(count: number, firstId: number, producing = false): FreshJobVersion[] {
  const out: FreshJobVersion[] = [];
  const versions = fixtureVersions();
  for (let i = 0; out.length < count; i++) {
    const v = versions[i % versions.length]!;
    const id = firstId + i;
    const bytes = relabelJob(fixtureBytes(v.file), id);
    const messages = buildOpEvents(parseJobFile(bytes, v.file), PUBLISH_CONTEXT)
      .filter((e) => e.kind === 'publish')
      .map((e) => e.message);
    if (producing && messages.length === 0) continue;
    out.push({ id, bytes, messages });
  }
  return out;
}

export interface RunningEventd {
  proc: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string[];
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export function startEventd(dirs: EventdDirs, url: string, extra: string[] = [], node = 'node1.example.test'): RunningEventd {
  const args = [
    '--import',
    'tsx',
    join(ROOT, 'src/eventd/main.ts'),
    '--settings-file',
    '/dev/null',
    '--queue-dir',
    dirs.queueDir,
    '--ganeti-data-dir',
    dirs.dataDir,
    '--state-dir',
    dirs.stateDir,
    '--outbox-dir',
    dirs.outboxDir,
    '--amqp-url',
    url,
    '--node-name',
    node,
    '--log-level',
    'debug',
    ...extra,
  ];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = new JsonLog();
  log.follow(proc.stdout!);
  const stderr: string[] = [];
  proc.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    proc,
    lines: log.lines,
    stderr,
    exited,
    waitForLog(pred, timeoutMs = 15_000) {
      return log.waitFor(pred, timeoutMs, { timeout: () => `log line not seen within ${timeoutMs} ms; last lines:\n${log.tail()}\nstderr: ${stderr.join('')}` });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export const isWatching = (l: Record<string, unknown>): boolean => l.msg === 'watching the queue directory';
