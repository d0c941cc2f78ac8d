// Feeds a scenario to the programs, each copy on its own timeline: job-file versions renamed into
// eventd's queue directory as Ganeti writes them, the hook run as Ganeti runs it (the job waits for
// it), the progress monitor fed as snf-image feeds it (the create waits for it).
//
// The job files tell the run's time, and they must agree with the hook's and the monitor's clocks,
// whatever the machine's load: when a copy falls behind its plan (a slow hook start, say), the rest of
// its timeline moves by that much, and so do the timestamps of everything Ganeti writes from then on
// (timestamps written before never change, as in Ganeti). The last version of every job, as written,
// is returned: what eventd must report comes from it.

import { renameJobVersion } from '../helpers/eventd.js';
import { runHook, runMonitor, type Deployment, type RunningProgram } from './programs.js';
import { retime, type CopyPlan, type Scenario } from './scenario.js';

export interface FeedTargets {
  deployment: Deployment;
  queueDir: string;
  outboxDir: string;
}

export interface Feeding {
  /** Monitors started so far (a test looks at their logs). */
  monitors: RunningProgram[];
  /** Resolves with every job's last version as written, once every hook and monitor exited 0. */
  done: Promise<Map<number, Buffer>>;
}

const sleepUntil = async (epochMs: number) => {
  const wait = epochMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
};

export function feedScenario(s: Scenario, t: FeedTargets): Feeding {
  const monitors: RunningProgram[] = [];
  const finals = new Map<number, Buffer>();

  const feedCopy = async (plan: CopyPlan): Promise<void> => {
    const base = s.startEpochMs + plan.startMs;
    /** Delays so far: from recorded time `from` on, everything happens `ms` later. */
    const delays: { from: number; ms: number }[] = [];
    const delayAt = (t: number) => delays.reduce((sum, d) => (t >= d.from ? sum + d.ms : sum), 0);
    const wallMs = (t: number) => base + s.warp(t) + delayAt(t);
    const toRunUs = (us: number) => {
      const t = us / 1e6 - s.recordedStart;
      return Math.round(wallMs(t) * 1000) + (us % 1000);
    };
    const monitorsDone = new Map<string, Promise<void>>();
    for (const step of plan.steps) {
      await sleepUntil(wallMs(step.t));
      // Behind the plan: this step and everything after it move.
      const late = Date.now() - wallMs(step.t);
      if (late > 0) delays.push({ from: step.t, ms: late + 1 });
      switch (step.kind) {
        case 'write': {
          const bytes = Buffer.from(retime(step.bytes.toString('utf8'), toRunUs));
          renameJobVersion(t.queueDir, step.job, bytes);
          finals.set(step.job, bytes);
          break;
        }
        case 'hook':
          await runHook(step.hook, t.outboxDir).catch((err: Error) => Promise.reject(new Error(`hook ${step.hook.fixture} for ${step.hook.instance} failed: ${err.message}`)));
          break;
        case 'monitor': {
          const { program, done } = runMonitor(t.deployment, t.outboxDir, step.monitor, s.progressGapMs);
          monitors.push(program);
          const checked = done.then((code) => {
            if (code !== 0) throw new Error(`progress monitor for ${step.monitor.instance} exited ${code}; last lines:\n${program.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`);
          });
          checked.catch(() => undefined); // awaited at its monitor-end step
          monitorsDone.set(step.monitor.instance, checked);
          break;
        }
        case 'monitor-end':
          await monitorsDone.get(step.instance);
          break;
      }
    }
  };

  const done = Promise.allSettled(s.plans.map(feedCopy)).then((results) => {
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    if (failures.length > 0) throw new Error(failures.join('\n'));
    return finals;
  });
  return { monitors, done };
}
