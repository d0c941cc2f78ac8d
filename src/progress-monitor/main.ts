#!/usr/bin/node --max-semi-space-size=1
// snf-progress-monitor <instance>: run by snf-image as `$PROGRESS_MONITOR <instance>` with the FIFO
// on stdin, its stdout/stderr going to Ganeti's OS log. See monitor.ts for the loop.
//
// The shebang caps V8's young generation (the one flag a shebang line can carry): under a firehose of
// input the default lets it grow to ~32 MB for little gain, and peak RSS matters on a busy node.
//
// It must never make snf-image fail: wrong arguments get the usage and exit 1 (as Synnefo's did), but
// once started it reads stdin to EOF whatever happens. Unusable settings (a bad broker URL in the
// file, say) are logged and the monitor degrades to echoing the stream, exiting 1 only at EOF.

import { createLogger } from '../common/log.js';
import { DEFAULT_TOPOLOGY, type QueueType } from '../common/topology.js';
import { Outbox } from '../common/outbox.js';
import { Publisher } from '../common/publisher.js';
import { SettingsError, loadSettings, warnIfSettingsFileExposed } from '../common/settings.js';
import { readAmqpTls, type AmqpTls } from '../common/tls.js';
import { packageVersion } from '../common/version.js';
import { splitArgv } from '../common/args.js';
import { runMonitor, type MonitorOutbox, type MonitorPublisher } from './monitor.js';
import { monitorSettings } from './settings.js';

export const PROGRAM = 'snf-progress-monitor';

// Best-effort stderr: an EPIPE (or anything else) there must never end the monitor.
let stderrOk = true;
process.stderr.on('error', () => {
  stderrOk = false;
});
process.on('SIGPIPE', () => {});
const echo = (text: string): void => {
  if (!stderrOk) return;
  try {
    process.stderr.write(text);
  } catch {
    stderrOk = false;
  }
};

const usage = `Usage: ${PROGRAM} <instance_name>\n`;
// loadSettings is strict and takes no positional arguments, so the instance name is taken out first.
const { flags: argv, positionals } = splitArgv(process.argv.slice(2), monitorSettings);

// First the flags alone (defaults for everything else), so that a usage error is told apart from a
// settings problem.
try {
  // The file is read in the second pass: here it reads as empty, so --settings-file is no error.
  await loadSettings(monitorSettings, { argv, env: {}, readFile: () => '', scriptName: PROGRAM, positional: ['<instance_name>'], version: packageVersion() });
} catch (err) {
  echo(`${PROGRAM}: ${(err as Error).message}\n${usage}`);
  process.exit(1);
}
if (positionals.length !== 1 || positionals[0] === '') {
  echo(usage);
  process.exit(1);
}
const instance = positionals[0] as string;

let settingsProblem: string | undefined;
let settings: Awaited<ReturnType<typeof loadSettings<typeof monitorSettings>>> | undefined;
let tls: AmqpTls | undefined;
try {
  settings = await loadSettings(monitorSettings, { argv, scriptName: PROGRAM, positional: ['<instance_name>'], version: packageVersion() });
  tls = readAmqpTls(settings);
} catch (err) {
  if (!(err instanceof SettingsError)) throw err;
  settings = undefined;
  settingsProblem = err.message;
}

const log = createLogger({ name: PROGRAM, level: settings?.logLevel ?? 'info', destination: { write: echo } }).child({ instance });

if (settings) warnIfSettingsFileExposed(log, settings.settingsFile);

let publisher: MonitorPublisher | undefined;
let outbox: MonitorOutbox | undefined;
if (settings) {
  outbox = new Outbox(settings.outboxDir, { log });
  publisher = new Publisher({
    urls: settings.amqpUrl,
    tls,
    topology: { ...DEFAULT_TOPOLOGY, exchange: settings.exchange, prefix: settings.prefix, queueType: settings.queueType as QueueType },
    log,
    connectTimeoutMs: 2000,
  });
} else {
  log.error({ problem: settingsProblem }, 'unusable settings: nothing will be published; echoing the stream only');
}

let stopRequested: () => void = () => {};
const stop = new Promise<void>((resolve) => {
  stopRequested = resolve;
});
process.once('SIGTERM', () => stopRequested());
process.once('SIGINT', () => stopRequested());

const result = await runMonitor({ instance, input: process.stdin, publisher, outbox, echo, log, stop });
process.exit(settings ? result.code : 1);
