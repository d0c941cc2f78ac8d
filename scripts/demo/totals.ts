// The demo's line of totals, from what the programs themselves count: eventd's and the dispatcher's
// Prometheus metrics (`--metrics-port`), and the progress monitors' closing log lines (a monitor is
// not a daemon and has no metrics endpoint; it publishes straight to the broker).

export interface Totals {
  /** Messages handed to a broker connection: eventd's (job ops, networks, cluster, heartbeats, and what
   * it drained from the outbox for the hook and the monitor) plus the monitors' own direct sends. */
  published: number;
  /** Of those, the ones the broker confirmed (these count as sent). A progress monitor tells its
   * counts when it exits, so while one runs the dispatcher may have applied more than this shows. */
  confirmed: number;
  /** Messages the dispatcher committed a change for and acknowledged. */
  applied: number;
  /** Messages the dispatcher acknowledged with nothing to change (stale, duplicate, or about a row deleted). */
  ignored: number;
  /** Messages the dispatcher sent to a `-dl` queue as poison. */
  deadLettered: number;
  /** Messages the dispatcher put back for a transient failure (retried later). */
  retried: number;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus' text exposition format (the lines prom-client writes): `name{a="b",…} value`. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of a metric's samples whose labels include `match`. */
export function sumOf(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** What a progress monitor said in its closing `finished` log line. */
export interface MonitorCounts {
  objects: number;
  confirmed: number;
  outboxed: number;
  lost: number;
}

/** The counts from a monitor's `finished` line (JSON logs on its stderr), or undefined for any other line. */
export function monitorCounts(line: string): MonitorCounts | undefined {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof parsed.msg !== 'string' || !parsed.msg.startsWith('finished')) return undefined;
  const n = (k: string) => (typeof parsed[k] === 'number' ? (parsed[k] as number) : 0);
  return { objects: n('objects'), confirmed: n('confirmed'), outboxed: n('outboxed'), lost: n('lost') };
}

export function totalsOf(eventd: readonly Sample[], dispatcher: readonly Sample[], monitors: readonly MonitorCounts[]): Totals {
  // What a monitor put in the outbox is published (and counted) by eventd; the rest it sent itself.
  const direct = monitors.reduce((n, m) => n + m.objects - m.outboxed - m.lost, 0);
  const outcome = (o: string) => sumOf(dispatcher, 'snf_dispatcher_messages_total', { outcome: o });
  return {
    published: sumOf(eventd, 'snf_messages_published_total') + direct,
    confirmed: sumOf(eventd, 'snf_messages_confirmed_total') + monitors.reduce((n, m) => n + m.confirmed, 0),
    applied: outcome('applied'),
    ignored: outcome('ignored'),
    deadLettered: outcome('dead_lettered'),
    retried: outcome('retried'),
  };
}

/** Every confirmed message has been consumed: applied, ignored or dead-lettered, none in flight. */
export const settled = (t: Totals): boolean => t.published === t.confirmed && t.applied + t.ignored + t.deadLettered === t.confirmed;
