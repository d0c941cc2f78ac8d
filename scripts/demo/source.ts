// Where the demo's work comes from. The view and the totals do not care: they read the dispatcher's
// database and the programs' metrics that a source tells them about. Two sources: the replay of a
// recorded Ganeti run (replay.ts) and a real Ganeti cluster (ganeti.ts).

import type { MonitorCounts } from './totals.js';

export interface Observed {
  /** The dispatcher's database (a SQLite path), read-only for the view. */
  dbUrl: string;
  /** eventd's and the dispatcher's Prometheus endpoints; without them there are no totals. */
  metrics?: { eventd: string; dispatcher: string };
}

export interface Progress {
  (done: number, total: number, last: string): void;
}

export interface WorkSource {
  /** For the view's title, e.g. "replay of a real Ganeti 3.0 run at 8x". */
  description: string;
  /** Sets up the programs and whatever feeds them; resolves once they are ready. */
  start(say: (line: string) => void): Promise<Observed>;
  /** Carries out the work, telling each step; resolves when the last step is done, with what went wrong. */
  run(progress: Progress, signal: AbortSignal): Promise<string[]>;
  /** The progress monitors that finished so far (they have no metrics endpoint). */
  monitorCounts(): MonitorCounts[];
  /** Ends every process it started, programs first. Safe to call more than once, and after a failed start. */
  stop(): Promise<void>;
  /** Where the state lives, for the summary. */
  where(): string[];
}
