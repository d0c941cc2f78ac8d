// The replay's one timeline, pure: the recorded job-file versions, the post hooks Ganeti ran and, for
// each instance create, the snf-image progress stream, merged in the order and at the offsets they
// happened (divided by the speed factor). replay.ts carries the steps out (and starts each create's
// progress monitor before the clock starts: see monitoredInstances()).

/** One recorded job-file version with what the replay needs to know of its ops. */
export interface RecordedVersion {
  job: number;
  /** Path of the version's bytes, relative to the fixture directory. */
  file: string;
  /** Epoch seconds at which Ganeti renamed it into place. */
  t: number;
  ops: { opId: string; status: string; instance: string | null }[];
}

/** One recorded hook run (hooks/index.json). */
export interface RecordedHook {
  /** Its environment dump's name, e.g. `07-instance-add-post`. */
  name: string;
  t: number;
  hooksPath: string;
  phase: string;
  job: number;
}

export type Step =
  | { at: number; kind: 'job'; job: number; file: string; label: string }
  | { at: number; kind: 'hook'; job: number; name: string; hooksPath: string; label: string }
  | { at: number; kind: 'monitor-line'; instance: string; line: string; label: string }
  | { at: number; kind: 'monitor-end'; instance: string; label: string };

/** A step before it is placed on the timeline (distributes over the union, which Omit alone does not). */
type Untimed = Step extends infer S ? (S extends Step ? Omit<S, 'at'> : never) : never;

/**
 * The hooks paths the package installs snf-ganeti-hook for, from its debhelper links file
 * (`… etc/ganeti/hooks/<path>-post.d/snf-ganeti-hook`): Ganeti runs the hook only from those directories.
 */
export function installedHookPaths(linksText: string): string[] {
  const paths: string[] = [];
  for (const line of linksText.split('\n')) {
    const m = /\setc\/ganeti\/hooks\/([a-z-]+)-post\.d\/\S+\s*$/.exec(line);
    if (m?.[1]) paths.push(m[1]);
  }
  return paths;
}

/** The seconds field (`timestamp`) of each line of an snf-image stream. */
function streamTimes(lines: readonly string[]): number[] {
  return lines.map((line) => {
    const ts = (JSON.parse(line) as { timestamp?: unknown }).timestamp;
    if (typeof ts !== 'number') throw new Error(`progress stream line without a numeric timestamp: ${line}`);
    return ts;
  });
}

/**
 * Lays the stream's lines out over [from, to] keeping their relative spacing. The recorded cluster's
 * OS scripts did nothing, so its create ran for well under a second while snf-image's copy took 40:
 * the stream is squeezed into the op's running window, where snf-image runs, so that the progress
 * arrives while the VM is still building (as it would with a real image).
 */
export function fitStream(lines: readonly string[], from: number, to: number): { t: number; line: string }[] {
  const times = streamTimes(lines);
  const first = times[0] ?? 0;
  const span = (times[times.length - 1] ?? first) - first;
  return lines.map((line, i) => ({ t: span === 0 ? from : from + (((times[i] ?? first) - first) / span) * (to - from), line }));
}

const opLabel = (v: RecordedVersion): string =>
  v.ops.map((o) => `${o.opId}${o.instance ? ` ${o.instance}` : ''} ${o.status}`).join(', ');

export interface TimelineInput {
  versions: readonly RecordedVersion[];
  hooks: readonly RecordedHook[];
  /** Hooks paths whose post phase runs snf-ganeti-hook. */
  hookPaths: readonly string[];
  /** The snf-image stream fed to the monitor for each instance create, one JSON object per line. */
  progressStream: readonly string[];
  /** Replay speed factor: recorded gaps are divided by it. */
  speed: number;
}

export function buildTimeline(input: TimelineInput): Step[] {
  if (!(input.speed > 0)) throw new Error(`speed must be positive, got ${input.speed}`);
  const timed: { t: number; order: number; step: Untimed }[] = [];
  let order = 0;
  const add = (t: number, step: Untimed) => timed.push({ t, order: order++, step });

  for (const v of input.versions) add(v.t, { kind: 'job', job: v.job, file: v.file, label: `job ${v.job} ${opLabel(v)}` });

  const postHooks = input.hooks.filter((h) => h.phase === 'post' && input.hookPaths.includes(h.hooksPath));
  for (const h of postHooks) add(h.t, { kind: 'hook', job: h.job, name: h.name, hooksPath: h.hooksPath, label: `hook ${h.hooksPath}-post (job ${h.job})` });

  // snf-image runs inside a successful OP_INSTANCE_CREATE, between its first `running` version and its
  // post hook (a create that failed its prerequisites never ran the OS scripts).
  const byJob = new Map<number, RecordedVersion[]>();
  for (const v of input.versions) byJob.set(v.job, [...(byJob.get(v.job) ?? []), v]);
  for (const [job, versions] of byJob) {
    const sorted = [...versions].sort((a, b) => a.t - b.t);
    const last = sorted[sorted.length - 1];
    const op = last?.ops[0];
    if (!last || !op || op.opId !== 'OP_INSTANCE_CREATE' || op.status !== 'success' || !op.instance) continue;
    const running = sorted.find((v) => v.ops[0]?.status === 'running');
    if (!running) continue;
    const hook = postHooks.find((h) => h.job === job && h.hooksPath === 'instance-add');
    const end = hook ? hook.t : last.t;
    const instance = op.instance;
    // Leave a tenth of the window for the last message to be read before the post hook.
    const fitted = fitStream(input.progressStream, running.t, running.t + (end - running.t) * 0.9);
    for (const { t, line } of fitted) {
      const type = (JSON.parse(line) as { type?: string }).type ?? '?';
      add(t, { kind: 'monitor-line', instance, line, label: `snf-image ${instance}: ${type}` });
    }
    add(end, { kind: 'monitor-end', instance, label: `snf-image ${instance} done` });
  }

  timed.sort((a, b) => a.t - b.t || a.order - b.order);
  const t0 = timed[0]?.t ?? 0;
  return timed.map(({ t, step }) => ({ ...step, at: ((t - t0) * 1000) / input.speed }) as Step);
}

/** The instances whose progress monitor the timeline feeds, in order of their first line. */
export const monitoredInstances = (steps: readonly Step[]): string[] => [
  ...new Set(steps.flatMap((s) => (s.kind === 'monitor-line' ? [s.instance] : []))),
];
