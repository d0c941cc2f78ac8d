// snf-dispatcher's settings: the shared ones plus the database, the queues and the operator flags.

import { metricsSettings } from '../common/metrics.js';
import { redactText } from '../common/redact.js';
import { checkPositive, commonSettings, type SettingSpecs } from '../common/settings.js';

const DEFAULT_DB_PATH = '/var/lib/snf-dispatcher/dispatcher.sqlite';

const checkDbUrl = (v: string): string | undefined => {
  if (v.trim() === '') return 'needs a SQLite file path or a postgres:// URL';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) && !/^(postgres|postgresql|sqlite|file):\/\//i.test(v)) {
    return `${JSON.stringify(redactText(v))} is neither a SQLite file path nor a postgres:// URL`;
  }
  return undefined;
};

export const dispatcherSettings = {
  ...commonSettings,
  dbUrl: {
    kind: 'string',
    describe: 'the database: a SQLite file path, or postgres://user:password@host/database',
    default: DEFAULT_DB_PATH,
    check: checkDbUrl,
  },
  prefetch: {
    kind: 'integer',
    // Several batches' worth, so that the next batch is already here while one commits.
    describe: 'unacknowledged messages the broker may hand over per queue',
    default: 1000,
    check: checkPositive,
  },
  batchSize: { kind: 'integer', describe: 'most messages applied in one database transaction', default: 250, check: checkPositive },
  strict: {
    kind: 'boolean',
    describe: 'ignore messages about VMs, networks and clusters without a row, as Cyclades does, instead of creating it',
    default: false,
  },
  maxSilence: {
    kind: 'integer',
    describe: 'status-check: seconds without a master heartbeat after which a cluster counts as silent',
    default: 120,
    check: checkPositive,
  },
  json: { kind: 'boolean', describe: 'servers, networks, queues, status-check: print JSON instead of a table (flag only)', default: false },
  yes: { kind: 'boolean', describe: 'drain-queue, purge-queues, retry-dead-letters: do not ask (flag only)', default: false },
  ...metricsSettings,
} satisfies SettingSpecs;

/** Flags that only make sense typed on a command line: an environment or settings file never sets them. */
export const FLAG_ONLY = ['yes', 'json'] as const;
