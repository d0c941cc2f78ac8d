// snf-progress-monitor as snf-image runs it: a real process (compiled, run through its shebang line)
// with the stream on stdin, publishing to a real RabbitMQ.

import t, { type Test } from 'tap';
import type { BuiltPlugins } from '@tapjs/test';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/log.js';
import { Outbox } from '../../src/common/outbox.js';
import { Publisher } from '../../src/common/publisher.js';
import type { TopologyOptions } from '../../src/common/topology.js';
import { startConsumer, type Received } from '../helpers/consumer.js';
import { deleteTopology, sharedRabbitUrl, startPrivateRabbit, uniqueTopology } from '../helpers/rabbit.js';
import { buildPrograms } from '../hooks/build.js';
import { STREAM_A, STREAM_B, lines, progressLine } from './streams.js';

type TestT = Test & BuiltPlugins;

const { monitor } = buildPrograms();

interface MonitorRun {
  code: number | null;
  stderr: string;
  outbox: string;
  ms: number;
}

interface Feed {
  /** Writes the input; resolves when all of it is written and stdin is closed. */
  (stdin: NodeJS.WritableStream): Promise<void>;
}

const writeAll = (stdin: NodeJS.WritableStream, data: Buffer | string): Promise<void> =>
  new Promise((resolve) => {
    if (stdin.write(data)) resolve();
    else stdin.once('drain', () => resolve());
  });

function feedOf(data: Buffer | string, chunk = 64 * 1024): Feed {
  const buf = Buffer.from(data);
  return async (stdin) => {
    for (let i = 0; i < buf.length; i += chunk) await writeAll(stdin, buf.subarray(i, i + chunk));
    stdin.end();
  };
}

function runMonitor(args: string[], env: Record<string, string>, feed: Feed, options: { closeStderr?: boolean } = {}): Promise<MonitorRun> {
  const outbox = join(mkdtempSync(join(tmpdir(), 'snf-monitor-test-')), 'outbox');
  const start = Date.now();
  const child = spawn(monitor, args, {
    cwd: '/',
    env: { PATH: '/sbin:/bin:/usr/sbin:/usr/bin', SNF_GTOOLS_SETTINGS_FILE: '/dev/null', SNF_GTOOLS_OUTBOX_DIR: outbox, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  if (options.closeStderr) child.stderr.destroy();
  else child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  child.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return feed(child.stdin).then(async () => ({ code: await exited, stderr, outbox, ms: Date.now() - start }));
}

const entries = (dir: string): string[] => {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.msgs'));
  } catch {
    return [];
  }
};
const monitorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('[MONITOR] '));
const finished = (stderr: string) => stderr.split('\n').filter((l) => l.includes('"msg":"finished')).map((l) => JSON.parse(l))[0];

t.test('wrong arguments: usage on stderr, exit 1', async (t) => {
  for (const args of [[], ['snf-1', 'snf-2'], ['--bogus', 'snf-1']]) {
    const r = await runMonitor(args, {}, async (stdin) => {
      stdin.end();
    });
    t.equal(r.code, 1, JSON.stringify(args));
    t.match(r.stderr, /Usage: snf-progress-monitor <instance_name>/, JSON.stringify(args));
  }
});

t.test('unusable settings: the stream is still read to EOF and echoed, exit 1 at the end', async (t) => {
  const r = await runMonitor(['snf-1'], { SNF_GTOOLS_AMQP_URL: 'http://not-amqp/' }, feedOf(STREAM_A));
  t.equal(r.code, 1);
  t.match(r.stderr, /unusable settings: nothing will be published/);
  t.match(r.stderr, /is not an amqp:\/\/ or amqps:\/\/ URL/);
  t.equal(monitorLines(r.stderr).length, 12);
});

t.test('against the shared RabbitMQ', async (t) => {
  const topology = uniqueTopology();
  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(async () => {
    await consumer.close();
    await deleteTopology(sharedRabbitUrl, topology);
  });
  const env = { SNF_GTOOLS_AMQP_URL: sharedRabbitUrl, SNF_GTOOLS_EXCHANGE: topology.exchange, SNF_GTOOLS_PREFIX: topology.prefix };
  const key = `ganeti.${topology.prefix}.event.progress`;
  let seen = 0;
  /** Checks that what arrived for `instance` is `stream` plus the monitor's fields, in order. */
  const check = async (t: TestT, instance: string, stream: string, r: MonitorRun) => {
    const want = lines(stream).map((l) => JSON.parse(l) as Record<string, unknown>);
    t.equal(r.code, 0, 'exit 0');
    const got = (await consumer.waitFor((m) => m.filter((x) => (x.body as { instance?: string }).instance === instance).length >= want.length, 20_000)).filter(
      (x) => (x.body as { instance?: string }).instance === instance,
    );
    seen += got.length;
    t.equal(got.length, want.length, 'every object published once');
    const now = Date.now() / 1000;
    got.forEach((m: Received, i) => {
      const body = m.body as Record<string, unknown>;
      const { event_time: et, instance: inst, ...rest } = body;
      t.same(rest, want[i], `object ${i}: every original field kept`);
      t.equal(inst, instance);
      t.ok(Array.isArray(et) && Math.abs((et as number[])[0]! - now) < 120 && Number.isInteger((et as number[])[1]), 'event_time [s, us] from the monitor clock');
      t.equal(m.routingKey, key);
      t.match(m.properties, { deliveryMode: 2, type: want[i]!['type'], contentType: 'application/json', messageId: new RegExp(`^progress:${instance}:[0-9a-f]{16}:${i}$`) });
    });
    const echoed = monitorLines(r.stderr).map((l) => JSON.parse(l.slice('[MONITOR] '.length)));
    t.same(echoed, got.map((m) => m.body), '[MONITOR] <json> on stderr for each object');
    t.same(entries(r.outbox), [], 'nothing left in the outbox');
  };

  await t.test('the example streams of spec §1.5', async (t) => {
    const a = `${topology.prefix}-1`;
    await check(t, a, STREAM_A, await runMonitor([a], env, feedOf(STREAM_A)));
    const b = `${topology.prefix}-2`;
    const rb = await runMonitor([b], env, feedOf(STREAM_B));
    await check(t, b, STREAM_B, rb);
    const stderrMsg = consumer.messages.find((m) => (m.body as { subtype?: string }).subtype === 'error');
    t.equal((stderrMsg?.body as { stderr: string }).stderr, 'mount: wrong fs type\nbad superblock\n');
  });

  await t.test('settings from a file named by --settings-file', async (t) => {
    const file = join(mkdtempSync(join(tmpdir(), 'snf-monitor-settings-')), 'snf-cyclades-gtools');
    writeFileSync(file, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o640 });
    const a = `${topology.prefix}-6`;
    const r = await runMonitor(['--settings-file', file, a], {}, feedOf(STREAM_A));
    t.notMatch(r.stderr, /does not exist/, 'the flag is no usage error');
    await check(t, a, STREAM_A, r);
  });

  await t.test('the same streams written one byte at a time', async (t) => {
    const a = `${topology.prefix}-3`;
    const bytes = Buffer.from(STREAM_A);
    const r = await runMonitor([a], env, async (stdin) => {
      for (let i = 0; i < bytes.length; i++) {
        await writeAll(stdin, bytes.subarray(i, i + 1));
        if (i % 8 === 0) await new Promise((res) => setImmediate(res));
      }
      stdin.end();
    });
    await check(t, a, STREAM_A, r);
    t.ok(consumer.messages.some((m) => JSON.stringify(m.body).includes('" No swap partition defined"')), 'whitespace in strings intact');
  });

  await t.test('garbage lines, a 10 MB line and binary input', async (t) => {
    const a = `${topology.prefix}-4`;
    const good = lines(STREAM_A);
    const input = Buffer.concat([
      Buffer.from(`${good[0]}\nthis is not json\n${good[1]}\n{"broken": \n${good[2]}\n`),
      Buffer.from(`{"messages": ["${'z'.repeat(10 * 1024 * 1024)}"], "type": "image-info"}\n`),
      Buffer.from(`${good[3]}\n`),
      randomBytes(100_000),
      Buffer.from(`\n${good.slice(4).join('\n')}\n`),
    ]);
    const r = await runMonitor([a], env, feedOf(input));
    await check(t, a, STREAM_A, r);
    const warnings = r.stderr.split('\n').filter((l) => l.includes('skipped malformed input'));
    t.ok(warnings.length >= 4, `each bad line logged (${warnings.length})`);
    t.ok(warnings.some((w) => /object over 1048576 bytes/.test(w)), 'the 10 MB line');
    t.match(finished(r.stderr), { objects: 12 });
  });

  await t.test('a broken stderr (EPIPE) never stops it', async (t) => {
    const a = `${topology.prefix}-5`;
    const r = await runMonitor([a], env, feedOf(STREAM_A), { closeStderr: true });
    t.equal(r.code, 0);
    const got = await consumer.waitFor((m) => m.filter((x) => (x.body as { instance?: string }).instance === a).length >= 12, 20_000);
    t.equal(got.filter((x) => (x.body as { instance?: string }).instance === a).length, 12);
  });

  t.equal(consumer.messages.length, seen + 12);
});

t.test('the broker stopped during a 100,000-line stream', async (t) => {
  const rabbit = await startPrivateRabbit();
  t.teardown(() => rabbit.destroy());
  const topology: TopologyOptions = { exchange: 'ganeti', prefix: 'snf', queueType: 'classic' };
  const N = 100_000;
  let stopped: Promise<void> | undefined;
  const r = await runMonitor(['snf-42'], { SNF_GTOOLS_AMQP_URL: rabbit.url }, async (stdin) => {
    // Let the monitor connect, as it has time to when snf-image starts it.
    await new Promise((res) => setTimeout(res, 500));
    let batch = '';
    for (let i = 0; i < N; i++) {
      batch += `${progressLine(i)}\n`;
      if (i % 500 === 499) {
        await writeAll(stdin, batch);
        batch = '';
        // Slow enough for some to be confirmed before the broker goes.
        if (i < 20_000) await new Promise((res) => setTimeout(res, 2));
      }
      if (i === 20_000) stopped = rabbit.stop();
    }
    await writeAll(stdin, batch);
    stdin.end();
  });
  await stopped;
  t.equal(r.code, 0, 'exit 0');
  t.comment(`monitor ran ${r.ms} ms`);
  const summary = finished(r.stderr);
  t.match(summary, { objects: N, skipped: 0, lost: 0 }, 'read everything');
  t.ok(summary.confirmed > 0, `some confirmed before the broker stopped (${summary.confirmed})`);
  t.equal(summary.confirmed + summary.outboxed, N, 'every message confirmed or in the outbox');
  t.ok(entries(r.outbox).length > 0 && entries(r.outbox).length < 200, `the outbox holds batches, not single messages (${entries(r.outbox).length} entries)`);
  t.equal(monitorLines(r.stderr).length, N, 'every object echoed');

  // The broker comes back; the outbox is drained (what eventd does) and nothing is missing.
  await rabbit.start();
  const log = createLogger({ name: 'drain', level: 'warn', destination: { write: () => {} } });
  const publisher = new Publisher({ urls: [rabbit.url], topology, log });
  publisher.start();
  const drained = await new Outbox(r.outbox, { log }).drain(publisher);
  await publisher.close();
  t.equal(drained.messages, summary.outboxed, 'the outbox published');
  const consumer = await startConsumer(rabbit.url, topology, { queues: ['snf-events-progress'] });
  t.teardown(() => consumer.close());
  // Delivery is at least once: a message the broker took just before it stopped, unconfirmed, is in
  // the outbox too. So count distinct message ids.
  const ids = new Set<string>();
  let counted = 0;
  await consumer
    .waitFor((m) => {
      for (; counted < m.length; counted++) ids.add(String(m[counted]?.properties.messageId));
      return ids.size >= N;
    }, 120_000)
    .catch(() => {});
  t.equal(ids.size, N, 'every one of the 100,000 objects arrived');
  t.comment(`${consumer.messages.length - ids.size} duplicates (unconfirmed when the broker stopped, so also in the outbox)`);
  const indexes = new Set([...ids].map((id) => Number(id.split(':').pop())));
  t.equal(indexes.size, N);
});
