// A private RabbitMQ node: its own node name, ports and data directory, so that it can be started,
// stopped and killed without touching the machine's broker. The tests that stop or kill a broker use
// it (through test/helpers/rabbit.ts), and so does the demo when no broker answers (under var/).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import { redactText } from '../../src/common/redact.js';

const run = promisify(execFile);

/** Resolves once an AMQP connection to `url` succeeds; rejects after timeoutMs. */
export async function waitForBroker(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const conn = await amqp.connect(url, { timeout: Math.max(500, Math.min(3000, deadline - Date.now())) });
      await conn.close();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`broker ${redactText(url)} not up within ${timeoutMs} ms: ${(last as Error)?.message}`);
}

/** A TCP port nobody listens on right now (bind to 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PrivateRabbit {
  url: string;
  port: number;
  distPort: number;
  nodeName: string;
  dir: string;
  /** Stops the rabbit application: listener closed, clients disconnected; the Erlang VM stays (fast start). */
  stop(): Promise<void>;
  /** Starts it again (the app if the VM runs, else the whole node), and waits until AMQP answers. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** SIGKILLs the node's VM: connections die without a close frame, like a crashed host. */
  kill(): Promise<void>;
  /** Halts the node and removes its directory. */
  destroy(): Promise<void>;
}

const living = new Set<string>();
process.on('exit', () => {
  // Never leave a private node behind, even when a test crashes.
  for (const pidFile of living) {
    try {
      process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

export interface PrivateRabbitOptions {
  /** AMQP port (default: a free one). */
  port?: number;
  /** Where its data directory is made (default: the system temp directory). */
  parentDir?: string;
  /** More rabbitmq.conf lines, e.g. a TLS listener (`listeners.ssl.default = …`, `ssl_options.…`). */
  extraConfig?: string[];
}

export async function startPrivateRabbit(options: PrivateRabbitOptions = {}): Promise<PrivateRabbit> {
  const port = options.port ?? (await freePort());
  let distPort = await freePort();
  while (distPort === port) distPort = await freePort();
  const id = randomBytes(4).toString('hex');
  const nodeName = `t${id}@localhost`;
  const parentDir = options.parentDir ?? os.tmpdir();
  fs.mkdirSync(parentDir, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parentDir, `rabbit-${id}-`));
  fs.mkdirSync(path.join(dir, 'mnesia'));
  fs.mkdirSync(path.join(dir, 'log'));
  fs.writeFileSync(path.join(dir, 'plugins'), '[].\n');
  // The machine's /etc/rabbitmq/rabbitmq.conf pins the listener to 5672, so each node gets its own file.
  fs.writeFileSync(path.join(dir, 'rabbitmq.conf'), [`listeners.tcp.local = 127.0.0.1:${port}`, ...(options.extraConfig ?? [])].join('\n') + '\n');
  await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]);
  const pidFile = path.join(dir, 'pid');
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: nodeName,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq.conf'),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'plugins'),
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const ctl = (...args: string[]) => run('rabbitmqctl', ['-n', nodeName, ...args], { env, timeout: 90_000 });
  let vmRunning = false;

  const bootNode = async (): Promise<void> => {
    fs.rmSync(pidFile, { force: true });
    await run('rabbitmq-server', ['-detached'], { env, timeout: 30_000 });
    living.add(pidFile);
    try {
      await ctl('wait', pidFile, '--timeout', '60');
    } catch (err) {
      const logFile = path.join(dir, 'log', `${nodeName}.log`);
      const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`private RabbitMQ ${nodeName} did not start: ${(err as Error).message}\n${tail}`);
    }
    vmRunning = true;
    await waitForBroker(url, 30_000);
  };

  const rabbit: PrivateRabbit = {
    url,
    port,
    distPort,
    nodeName,
    dir,
    async stop() {
      await ctl('stop_app');
    },
    async start() {
      if (vmRunning) {
        await ctl('start_app');
        await waitForBroker(url, 30_000);
      } else {
        await bootNode();
      }
    },
    async restart() {
      await rabbit.stop();
      await rabbit.start();
    },
    async kill() {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      vmRunning = false;
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      // epmd forgets the node once its connection drops; wait so that a restart can register the name.
      await new Promise((r) => setTimeout(r, 200));
    },
    async destroy() {
      if (vmRunning) {
        try {
          await ctl('stop');
        } catch {
          await rabbit.kill().catch(() => {});
        }
        vmRunning = false;
      }
      living.delete(pidFile);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await bootNode();
  } catch (err) {
    await rabbit.destroy().catch(() => {});
    throw err;
  }
  return rabbit;
}
