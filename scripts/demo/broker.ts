// The demo's broker: the one at --amqp-url when it answers (in a virtual host of the demo's own, so its
// queues stay apart from anything else there), else a private RabbitMQ node under var/ when
// rabbitmq-server is installed, else an error that says what to install.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { redactText } from '../../src/common/redact.js';
import { startPrivateRabbit } from './private-rabbit.js';

const run = promisify(execFile);

export const INSTALL_BROKER = 'apt-get install rabbitmq-server';

export class NoBrokerError extends Error {}

export interface DemoBroker {
  url: string;
  /** One line for the operator: which broker, where. */
  description: string;
  /** The demo's alone (a private node, or the vhost the demo made for itself): it may empty its queues. */
  own: boolean;
  /** Stops what the demo started (the private node); leaves a broker it found alone. */
  stop(): Promise<void>;
}

export async function answers(url: string, timeoutMs = 2000): Promise<boolean> {
  try {
    await (await amqp.connect(url, { timeout: timeoutMs })).close();
    return true;
  } catch {
    return false;
  }
}

/** Whether an executable of that name is on PATH. */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  for (const dir of path.split(':')) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The URL's virtual host, or '' for none given (`amqp://host:5672` and `amqp://host:5672/` both mean the default). */
export function vhostOf(url: string): string {
  const path = new URL(url).pathname;
  return decodeURIComponent(path.replace(/^\//, ''));
}

export const withVhost = (url: string, vhost: string): string => `${url.replace(/\/+$/, '')}/${encodeURIComponent(vhost)}`;

const isLoopback = (url: string): boolean => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);

/**
 * The demo's own virtual host on a local broker (rabbitmqctl talks to the local node only). A URL that
 * names a vhost already is used as it is; so is a remote broker, or one rabbitmqctl cannot manage.
 */
async function demoVhost(url: string, vhost: string): Promise<string> {
  if (vhost === '' || vhostOf(url) !== '' || !isLoopback(url) || !onPath('rabbitmqctl')) return url;
  const user = decodeURIComponent(new URL(url).username) || 'guest';
  try {
    await run('rabbitmqctl', ['-q', 'add_vhost', vhost], { timeout: 60_000 }).catch(async (err: unknown) => {
      // It exists already (a previous demo): fine; anything else is not.
      const { stdout } = await run('rabbitmqctl', ['-q', 'list_vhosts'], { timeout: 60_000 });
      if (!stdout.split('\n').includes(vhost)) throw err;
    });
    await run('rabbitmqctl', ['-q', 'set_permissions', '-p', vhost, user, '.*', '.*', '.*'], { timeout: 60_000 });
    return withVhost(url, vhost);
  } catch {
    return url;
  }
}

export interface BrokerOptions {
  url: string;
  vhost: string;
  /** Where a private node keeps its data (under var/). */
  varDir: string;
  say(line: string): void;
}

export async function ensureBroker(o: BrokerOptions): Promise<DemoBroker> {
  if (await answers(o.url)) {
    const url = await demoVhost(o.url, o.vhost);
    const vhost = vhostOf(url);
    return {
      url,
      description: `RabbitMQ at ${redactText(url)}${vhost ? ` (virtual host ${vhost})` : ''}`,
      own: url !== o.url,
      stop: async () => {},
    };
  }
  if (!onPath('rabbitmq-server')) {
    throw new NoBrokerError(`no AMQP broker answers at ${redactText(o.url)} and rabbitmq-server is not installed; install it with:\n  ${INSTALL_BROKER}`);
  }
  o.say(`no AMQP broker answers at ${redactText(o.url)}: starting a private RabbitMQ node under ${o.varDir} (takes a few seconds)`);
  const node = await startPrivateRabbit({ parentDir: o.varDir });
  return {
    url: node.url,
    description: `a private RabbitMQ node ${node.nodeName} on port ${node.port} (data in ${node.dir}, removed at the end)`,
    own: true,
    stop: () => node.destroy(),
  };
}
