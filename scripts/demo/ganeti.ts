// The real-Ganeti source (`--ganeti`): the end-to-end harness (test/e2e/harness.ts) sets up a real
// single-node Ganeti 3.0 cluster with the programs wired as in production and a private RabbitMQ, and
// its scenario's steps (test/e2e/scenario.ts) run one by one, each waiting until the dispatcher's
// database agrees with Ganeti. The view reads the same database as for the replay.

import { missingPrerequisites, newContext, runStep, setUpCluster, type E2eCluster } from '../../test/e2e/harness.js';
import { SCENARIO } from '../../test/e2e/scenario.js';
import type { Observed, Progress, WorkSource } from './source.js';
import type { MonitorCounts } from './totals.js';

export class GanetiSource implements WorkSource {
  readonly description = `real Ganeti 3.0 cluster, ${SCENARIO.length} scenario steps`;
  private cluster: E2eCluster | undefined;
  /** Where the harness's progress lines go: printed before the view starts, then shown as the last step. */
  private log: (line: string) => void = () => {};

  async start(say: (line: string) => void): Promise<Observed> {
    const missing = missingPrerequisites();
    if (missing.length > 0) throw new Error(`the real-Ganeti harness cannot run here; missing: ${missing.join('; ')}`);
    this.log = say;
    say('setting up a single-node Ganeti cluster, a private RabbitMQ and the programs (test/e2e/ganeti-node.sh; a minute or two)');
    this.cluster = await setUpCluster({ log: (line) => this.log(line) });
    // The harness runs eventd and the dispatcher without --metrics-port: no totals in this mode.
    return { dbUrl: this.cluster.dbPath };
  }

  async run(progress: Progress, signal: AbortSignal): Promise<string[]> {
    if (!this.cluster) throw new Error('not started');
    const ctx = newContext(this.cluster);
    const total = SCENARIO.length;
    const problems: string[] = [];
    let done = 0;
    this.log = (line) => progress(done, total, line);
    for (const step of SCENARIO) {
      if (signal.aborted) break;
      progress(done, total, `${step.name}: ${step.does}`);
      const result = await runStep(ctx, step);
      done++;
      if (!result.settled) problems.push(`step ${step.name}: the dispatcher's database did not agree with Ganeti (${result.checks.filter((c) => JSON.stringify(c.actual) !== JSON.stringify(c.expected)).map((c) => c.what).join(', ')})`);
      progress(done, total, `${step.name}: ${result.settled ? 'the database agrees' : 'the database DID NOT agree'}`);
    }
    return problems;
  }

  monitorCounts(): MonitorCounts[] {
    return [];
  }

  async stop(): Promise<void> {
    this.log = () => {};
    await this.cluster?.teardown();
  }

  where(): string[] {
    return this.cluster
      ? [`scratch directory ${this.cluster.dir} with the database, logs and settings (removed at teardown)`, 'the Ganeti node torn down (test/e2e/ganeti-node.sh teardown)']
      : [];
  }
}
