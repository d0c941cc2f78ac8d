// A private virtual host on the machine's broker: tests that need Synnefo's real names (exchange
// `ganeti`, prefix `snf`, as in the fixtures and golden files) get them without seeing anyone else's
// messages, and everything is removed with the vhost.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { sharedRabbitUrl } from './rabbit.js';

const run = promisify(execFile);

export interface Vhost {
  name: string;
  url: string;
  remove(): Promise<void>;
}

export async function createVhost(baseUrl: string = sharedRabbitUrl): Promise<Vhost> {
  const name = `test-${randomBytes(5).toString('hex')}`;
  await run('rabbitmqctl', ['-q', 'add_vhost', name], { timeout: 60_000 });
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*'], { timeout: 60_000 });
  const url = `${baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(name)}`;
  return {
    name,
    url,
    remove: async () => {
      await run('rabbitmqctl', ['-q', 'delete_vhost', name], { timeout: 60_000 }).catch(() => undefined);
    },
  };
}
