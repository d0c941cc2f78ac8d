#!/usr/bin/env -S /usr/bin/node --max-semi-space-size=4 --heap-growing-percent=20
// snf-ganeti-eventd's entry point: settings, logger, signals. The daemon itself is in daemon.ts.
//
// The `#!` line sizes V8's heap for a daemon that shares a small node with Ganeti and the broker.
// Left alone, after a burst of job files the heap grows lazily to ~145 MB peak RSS; a 4 MB young
// generation and old-space steps of 20% keep it under ~90 MB. These replace --optimize-for-size,
// which held RSS as low but pinned the young generation at 1 MB: ~600 scavenges per 20,000 job files
// instead of ~110, and about 15% more CPU per message, paired runs in bench/eventd. No hard heap
// limit: a large live queue could hit it and turn into a crash loop. (`env -S` because Linux passes
// everything after the interpreter as one argument.)

import { createLogger } from '../common/log.js';
import { loadSettings, SettingsError, warnIfSettingsFileExposed } from '../common/settings.js';
import { readAmqpTls } from '../common/tls.js';
import { packageVersion } from '../common/version.js';
import { Eventd, type EventdSettings } from './daemon.js';
import { eventdSettings } from './settings.js';
import * as notify from '../common/notify.js';
import { createEventdMetrics, createRegistry, startMetricsServer, type EventdMetrics } from '../common/metrics.js';

const PROGRAM = 'snf-ganeti-eventd';

async function main(): Promise<void> {
  let settings: EventdSettings;
  try {
    const loaded = await loadSettings(eventdSettings, { argv: process.argv.slice(2), scriptName: PROGRAM, version: packageVersion() });
    settings = { ...loaded, amqpTls: readAmqpTls(loaded) };
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`${PROGRAM}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: settings.logLevel, name: PROGRAM });
  warnIfSettingsFileExposed(log, settings.settingsFile);
  let eventd: Eventd | undefined;
  let metrics: EventdMetrics | undefined;
  if (settings.metricsPort !== undefined) {
    const registry = createRegistry(PROGRAM);
    metrics = createEventdMetrics(registry, {
      isMaster: () => eventd?.master ?? false,
      outboxMessages: () => eventd?.outboxMessageCount() ?? 0,
    });
    await startMetricsServer({ registry, host: settings.metricsHost, port: settings.metricsPort });
  }
  const daemon = new Eventd(settings, log, metrics);
  eventd = daemon;
  const onSignal = (signal: string) => {
    log.info({ signal }, 'signal received');
    const told = notify.stopping('stopping: saving unconfirmed messages to the outbox');
    daemon.stop().then(() => Promise.race([told, new Promise((r) => setTimeout(r, 2000))])).then(
      () => process.exit(0),
      (err: unknown) => {
        log.fatal({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await daemon.start();
    await daemon.connected();
    notify.startWatchdog(() => daemon.healthy());
    await notify.ready(await daemon.statusLine());
    // STATUS= follows what eventd does: role, broker, outbox, last error.
    setInterval(() => void daemon.statusLine().then(notify.status), 10_000).unref();
  } catch (err) {
    log.fatal({ err }, 'eventd could not start');
    process.exit(1);
  }
}

await main();
