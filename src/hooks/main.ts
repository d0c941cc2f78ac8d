#!/usr/bin/node
// snf-ganeti-hook: run by Ganeti from /etc/ganeti/hooks/<path>-<phase>.d/ with a cleared environment.
// Kept to node built-ins and small local modules for start-up speed: the outbox module is loaded only
// when there is a message to store, so the no-op invocations (pre phases, instance-stop, other paths,
// non-master nodes) cost no more than Node's start-up.

import { hostname } from 'node:os';
import type { OutgoingMessage } from '../common/message.js';
import { runHook } from './hook.js';

const outcome = await runHook({
  env: process.env,
  now: () => Date.now(),
  hostname,
  log: (line) => {
    try {
      process.stderr.write(`${line}\n`);
    } catch {
      // Nobody to tell.
    }
  },
  putSync: async (dir: string, messages: OutgoingMessage[]) => {
    const { Outbox } = await import('../common/outbox.js');
    return new Outbox(dir).putSync(messages);
  },
});
process.exitCode = outcome.code;
