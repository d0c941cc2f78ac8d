// snf-progress-monitor's settings: the shared ones (brokers, TLS, prefix, log level) plus its outbox.

import { commonSettings, type SettingSpecs } from '../common/settings.js';

export const monitorSettings = {
  ...commonSettings,
  outboxDir: {
    kind: 'string',
    describe: 'spool for messages the broker has not confirmed (eventd publishes them)',
    default: '/var/spool/snf-cyclades-gtools/outbox',
  },
} satisfies SettingSpecs;
