// The demo behind scripts/demo.sh: the whole main job on this machine. A broker (found, or a private
// node), snf-ganeti-eventd and snf-dispatcher (compiled, as installed) on scratch directories under
// var/demo, fed a recorded run of a real Ganeti cluster (or, with --ganeti, a real one), and a view of
// the dispatcher's database and the programs' counters that refreshes while it runs.

import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import yargs from 'yargs';
import { ROOT } from '../test/helpers/eventd.js';
import { ensureBroker, NoBrokerError, type DemoBroker } from './demo/broker.js';
import { Observer } from './demo/observe.js';
import { emptyDemoDir, NotDemoDirError, ReplaySource } from './demo/replay.js';
import type { WorkSource } from './demo/source.js';
import { liveDisplay, plainDisplay, type Display } from './demo/terminal.js';
import { settled, totalsOf } from './demo/totals.js';
import { renderSummary, type ViewState } from './demo/view.js';

const args = yargs(process.argv.slice(2))
  .usage('Usage: scripts/demo.sh [options]')
  .option('speed', { type: 'number', default: 1, describe: 'replay speed factor: the recorded gaps are divided by it (1 = the recorded 31 s)' })
  .option('amqp-url', { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672', describe: 'broker to use; a private RabbitMQ node is started when none answers' })
  .option('vhost', { type: 'string', default: 'snf-demo', describe: 'virtual host of the demo on a local broker whose URL names none ("" for the default vhost)' })
  .option('dir', { type: 'string', default: join(ROOT, 'var', 'demo'), describe: 'scratch directory for queue, state, database and logs (emptied at start); a private broker goes beside it' })
  .option('refresh', { type: 'number', default: 100, describe: 'milliseconds between two reads of the database and the metrics' })
  .option('ganeti', { type: 'boolean', default: false, describe: 'run the scenario on a real single-node Ganeti cluster (test/e2e harness; root, ganeti packages) instead of the replay' })
  .option('settle-timeout', { type: 'number', default: 30, describe: 'seconds to wait at the end for every confirmed message to be consumed' })
  .check((a) => (a.speed > 0 ? true : '--speed must be positive'))
  .strict()
  .version(false)
  .help()
  .parseSync();

const dir = resolve(args.dir);
const out = process.stdout;
const say = (line: string) => out.write(`demo: ${line}\n`);

async function main(): Promise<number> {
  const stop = new AbortController();
  let interrupted: string | undefined;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: leave now (the exit handlers still kill the children)
    interrupted = 'interrupted';
    stop.abort();
  });
  // Terminated, or its terminal closed: stop everything as for a Ctrl-C. The children run in process
  // groups of their own (so that a Ctrl-C does not reach them before the demo stops them in order), so
  // nothing else would end them. Output to a terminal that is gone must not stop the cleanup either.
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      interrupted = signal === 'SIGHUP' ? 'its terminal closed' : 'terminated';
      stop.abort();
    });
  }
  out.on('error', () => {});

  let broker: DemoBroker | undefined;
  let source: WorkSource;
  if (args.ganeti) {
    // Loaded only here: the harness and its scenario are not needed for the replay.
    const { GanetiSource } = await import('./demo/ganeti.js');
    source = new GanetiSource();
  } else {
    try {
      broker = await ensureBroker({ url: args['amqp-url'], vhost: args.vhost, varDir: dirname(dir), say });
    } catch (err) {
      if (!(err instanceof NoBrokerError)) throw err;
      process.stderr.write(`demo: ${err.message}\n`);
      return 1;
    }
    say(`broker: ${broker.description}`);
    try {
      // A --dir that holds anything the demo does not make is refused, not emptied.
      emptyDemoDir(dir);
    } catch (err) {
      await broker.stop();
      if (!(err instanceof NotDemoDirError)) throw err;
      process.stderr.write(`demo: ${err.message}\n`);
      return 1;
    }
    if (stop.signal.aborted) {
      await broker.stop();
      return 130;
    }
    source = new ReplaySource({ amqpUrl: broker.url, purgeQueues: broker.own, speed: args.speed, dir });
  }

  let observer: Observer | undefined;
  let display: Display | undefined;
  let read: (() => Promise<ViewState>) | undefined;
  let state: ViewState | undefined;
  let viewing = false;
  let viewLoop: Promise<void> | undefined;
  let problems: string[] = [];
  try {
    const observed = await source.start(say);
    observer = new Observer(observed);
    const obs = observer;
    let steps = { done: 0, total: 0, last: 'starting' };
    const t0 = performance.now();
    read = async (): Promise<ViewState> => {
      const snap = await obs.snapshot();
      return {
        source: source.description,
        elapsedMs: performance.now() - t0,
        steps,
        vms: snap.vms,
        networks: snap.networks,
        totals: observed.metrics ? totalsOf(snap.eventd, snap.dispatcher, source.monitorCounts()) : undefined,
      };
    };
    const [shown, reader] = [(display = out.isTTY ? liveDisplay(out) : plainDisplay(out)), read];
    viewing = true;
    viewLoop = (async () => {
      while (viewing) {
        shown.show((state = await reader()));
        await sleep(args.refresh);
      }
    })();
    problems = await source.run((done, total, last) => (steps = { done, total, last }), stop.signal);
    // The work is over when the dispatcher has consumed everything that was published.
    const deadline = performance.now() + args['settle-timeout'] * 1000;
    const unsettled = async () => {
      const totals = (await reader()).totals;
      return totals !== undefined && !settled(totals);
    };
    while (!stop.signal.aborted && performance.now() < deadline && (await unsettled())) {
      await sleep(args.refresh, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } catch (err) {
    if (!stop.signal.aborted) interrupted = `failed: ${(err as Error).message}`;
  } finally {
    viewing = false;
    await viewLoop;
    // The last word, also after a Ctrl-C: what the database and the counters say now.
    if (read) display?.show((state = await read()));
    display?.close();
    await source.stop();
    await observer?.close();
    await broker?.stop();
  }
  const isSettled = state?.totals ? settled(state.totals) : undefined;
  const summary = renderSummary({
    state: state ?? { source: source.description, elapsedMs: 0, steps: { done: 0, total: 0, last: '' }, vms: [], networks: [], totals: undefined },
    settled: isSettled,
    problems,
    ...(interrupted ? { interrupted } : {}),
    where: [...source.where(), ...(broker ? [`broker ${broker.description}`] : [])],
  });
  out.write(`\n${summary.join('\n')}\n`);
  if (interrupted) return interrupted.startsWith('failed') ? 1 : 130;
  return isSettled !== false && problems.length === 0 ? 0 : 1;
}

process.exitCode = await main();
