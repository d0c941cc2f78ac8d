import { metricsSettings } from '../common/metrics.js';
import { checkPositive, commonSettings, type SettingSpecs } from '../common/settings.js';

export const eventdSettings = {
  ...commonSettings,
  queueDir: { kind: 'string', describe: "Ganeti's job queue directory", default: '/var/lib/ganeti/queue' },
  ganetiDataDir: {
    kind: 'string',
    describe: "Ganeti's data directory, with the ssconf files naming the cluster and its master",
    default: '/var/lib/ganeti',
  },
  stateDir: {
    kind: 'string',
    describe: 'where eventd keeps its record of what it published',
    default: '/var/lib/snf-cyclades-gtools',
  },
  outboxDir: {
    kind: 'string',
    describe: 'spool of messages the hook and the progress monitor could not publish themselves',
    default: '/var/spool/snf-cyclades-gtools/outbox',
  },
  nodeName: { kind: 'string', describe: "this node's name as Ganeti knows it (default: its FQDN)" },
  heartbeatInterval: { kind: 'number', describe: 'seconds between eventd-heartbeat messages', default: 30, check: checkPositive },
  maxInFlight: {
    kind: 'integer',
    describe: 'messages published but not yet confirmed, at most; job files wait on disk beyond it',
    default: 5000,
    check: checkPositive,
  },
  rescanInterval: {
    kind: 'number',
    describe: 'seconds between safety rescans of the queue directory (inotify can overflow)',
    default: 30,
    check: checkPositive,
  },
  ...metricsSettings,
} satisfies SettingSpecs;
