// The demo behind scripts/demo.sh: eventd (compiled, as installed) watching var/demo/queue, the recorded
// Ganeti run replayed into it by rename, and a consumer printing every message eventd publishes.

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import yargs from 'yargs';
import { declareTopology, dispatcherQueues } from '../src/common/topology.js';
import { redactText } from '../src/common/redact.js';
import { fixtureBytes, fixtureVersions, makeDirs, renameJobVersion, ROOT } from '../test/helpers/eventd.js';

const args = yargs(process.argv.slice(2))
  .option('speed', { type: 'number', default: 4, describe: 'replay speed factor (1 = the recorded timing, about 46 s)' })
  .option('amqp-url', { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672' })
  .strict()
  .parseSync();

const topology = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' as const };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function reachable(url: string): Promise<boolean> {
  try {
    await (await amqp.connect(url, { timeout: 2000 })).close();
    return true;
  } catch {
    return false;
  }
}

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A vhost of its own keeps the demo's queues away from anything else on the broker. */
function demoUrl(base: string): string {
  if (!hasCommand('rabbitmqctl')) return base;
  try {
    execFileSync('rabbitmqctl', ['-q', 'add_vhost', 'snf-demo'], { stdio: 'ignore' });
  } catch {
    // It exists already.
  }
  try {
    execFileSync('rabbitmqctl', ['-q', 'set_permissions', '-p', 'snf-demo', 'guest', '.*', '.*', '.*'], { stdio: 'ignore' });
    return `${base.replace(/\/+$/, '')}/snf-demo`;
  } catch {
    return base;
  }
}

async function main(): Promise<void> {
  let base = args['amqp-url'];
  if (!(await reachable(base))) {
    if (hasCommand('rabbitmq-server')) {
      console.log('demo: no broker answers; starting RabbitMQ (rabbitmq-server -detached)');
      spawn('rabbitmq-server', ['-detached'], { stdio: 'ignore' }).unref();
      for (let i = 0; i < 60 && !(await reachable(base)); i++) await sleep(1000);
    }
    if (!(await reachable(base))) {
      console.error(`demo: no AMQP broker at ${redactText(base)}. Install one with: apt-get install rabbitmq-server`);
      process.exit(1);
    }
  }
  const url = demoUrl(base);
  const root = join(ROOT, 'var', 'demo');
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const dirs = makeDirs(root);

  const conn = await amqp.connect(url);
  const ch = await conn.createChannel();
  await declareTopology(ch, topology);
  for (const q of dispatcherQueues(topology)) await ch.purgeQueue(q.name);
  let count = 0;
  for (const q of dispatcherQueues(topology)) {
    await ch.consume(q.name, (m) => {
      if (!m) return;
      count++;
      const b = JSON.parse(m.content.toString('utf8')) as Record<string, unknown>;
      const what = b.instance ?? b.network ?? b.cluster ?? '';
      const log = typeof b.logmsg === 'string' ? `  ${b.logmsg.trim().slice(0, 60)}` : '';
      console.log(`${new Date().toISOString().slice(11, 23)}  ${m.fields.routingKey.padEnd(26)} job ${String(b.jobId).padStart(2)}  ${String(what).padEnd(22)} ${String(b.operation).padEnd(24)} ${String(b.status).padEnd(8)}${log}`);
      ch.ack(m);
    });
  }

  console.log(`demo: eventd watching ${dirs.queueDir}; replaying the recorded Ganeti 3.0 run at ${args.speed}x`);
  const eventd = spawn(
    process.execPath,
    [join(ROOT, 'dist/src/eventd/main.js'), '--settings-file', '/dev/null', '--queue-dir', dirs.queueDir, '--ganeti-data-dir', dirs.dataDir,
      '--state-dir', dirs.stateDir, '--outbox-dir', dirs.outboxDir, '--amqp-url', url, '--node-name', 'node1.example.test', '--log-level', 'warn'],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  await sleep(1000);
  const versions = fixtureVersions();
  const start = Date.now();
  for (const v of versions) {
    const due = ((v.t - versions[0]!.t) * 1000) / args.speed;
    const wait = start + due - Date.now();
    if (wait > 0) await sleep(wait);
    renameJobVersion(dirs.queueDir, v.job, fixtureBytes(v.file));
  }
  await sleep(1500);
  eventd.kill('SIGTERM');
  await new Promise((r) => eventd.once('exit', r));
  await conn.close();
  console.log(`demo: ${versions.length} job-file versions replayed, ${count} messages published and confirmed; state in ${root}`);
}

await main();
