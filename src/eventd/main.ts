#!/usr/bin/env node
// snf-ganeti-eventd's entry point: settings, logger, signals. The daemon itself is in daemon.ts.

import { createLogger } from '../common/log.js';
import { loadSettings, SettingsError } from '../common/settings.js';
import { packageVersion } from '../common/version.js';
import { Eventd, type EventdSettings } from './daemon.js';
import { eventdSettings } from './settings.js';

const PROGRAM = 'snf-ganeti-eventd';

async function main(): Promise<void> {
  let settings: EventdSettings;
  try {
    settings = await loadSettings(eventdSettings, { argv: process.argv.slice(2), scriptName: PROGRAM, version: packageVersion() });
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`${PROGRAM}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: settings.logLevel, name: PROGRAM });
  const eventd = new Eventd(settings, log);
  const onSignal = (signal: string) => {
    log.info({ signal }, 'signal received');
    eventd.stop().then(
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
    await eventd.start();
  } catch (err) {
    log.fatal({ err }, 'eventd could not start');
    process.exit(1);
  }
}

await main();
