// The outbox on disk, and drained through a real publisher (shared broker with a unique topology; a
// private node for the stopped-broker case).

import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, type Logger } from '../../src/common/log.js';
import type { OutgoingMessage } from '../../src/common/message.js';
import { Outbox, OutboxEntryError, parseEntry } from '../../src/common/outbox.js';
import { Publisher } from '../../src/common/publisher.js';
import { routingKey, type TopologyOptions } from '../../src/common/topology.js';
import { startConsumer } from '../helpers/consumer.js';
import { deleteTopology, sharedRabbitUrl, startPrivateRabbit, uniqueTopology, type PrivateRabbit } from '../helpers/rabbit.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ENTRY = /^\d{13}-\d+-\d+\.msgs$/;

function captureLog(): { log: Logger; records: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', name: 'test', destination: { write: (s: string) => void lines.push(s) } });
  return { log, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outbox-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'spool', 'outbox');
}

let counter = 0;
function message(topology: TopologyOptions | undefined, overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  const i = counter++;
  return {
    messageId: `o-${randomBytes(3).toString('hex')}-${i}`,
    routingKey: routingKey('op', topology?.prefix ?? 'snf'),
    type: 'ganeti-op-status',
    timestampMs: 1_700_000_000_000 + i,
    body: { instance: `snf-${i}`, status: 'success', text: 'ünïcode ✓', nested: { list: [1, 2, { a: null }] } },
    ...overrides,
  };
}

function makePublisher(t: { teardown: (fn: () => unknown) => void }, topology: TopologyOptions, url = sharedRabbitUrl): Publisher {
  const p = new Publisher({
    urls: [url],
    topology,
    log: createLogger({ level: 'silent', name: 'pub' }),
    backoff: { initialMs: 20, maxMs: 200 },
  });
  t.teardown(() => p.close({ timeoutMs: 0 }));
  return p;
}

t.test('put, entries, messageCount, drain: oldest first, deleted once confirmed', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  t.same(await outbox.entries(), [], 'no directory yet: no entries');
  t.equal(await outbox.messageCount(), 0);
  t.equal(await outbox.put([]), '', 'an empty batch writes nothing');
  t.notOk(fs.existsSync(dir));

  const batches = [[message(topology)], [message(topology), message(topology)], [message(topology), message(topology), message(topology)]];
  const names: string[] = [];
  for (const b of batches) names.push(await outbox.put(b));
  t.ok(names.every((n) => ENTRY.test(n)), `entry names: ${names.join(', ')}`);
  t.match(names[0], new RegExp(`^\\d{13}-${process.pid}-\\d+\\.msgs$`));
  t.same(await outbox.entries(), names, 'oldest first');
  t.equal(await outbox.messageCount(), 6);
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'directory 0700');
  t.equal(fs.statSync(path.join(dir, names[0] as string)).mode & 0o777, 0o600, 'entry 0600');
  t.same(fs.readdirSync(dir).sort(), [...names].sort(), 'no temporary file left');
  t.same(parseEntry(fs.readFileSync(path.join(dir, names[1] as string), 'utf8'), 'x'), batches[1], 'JSON lines round-trip');

  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const p = makePublisher(t, topology);
  p.start();
  t.same(await outbox.drain(p), { entries: 3, messages: 6 });
  t.same(await outbox.entries(), []);
  t.equal(await outbox.messageCount(), 0);
  await consumer.waitForCount(6, 5000);
  t.same(consumer.ids(), batches.flat().map((m) => m.messageId), 'published in entry order');
  t.same(consumer.messages[0]?.body, batches[0]?.[0]?.body);
  t.same(await outbox.drain(p), { entries: 0, messages: 0 }, 'nothing left to drain');
});

t.test('entries sort by time, pid and sequence as numbers', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(dir, { recursive: true });
  const names = ['1700000000001-5-1.msgs', '1700000000000-5-10.msgs', '1700000000000-5-9.msgs', '1700000000000-40-0.msgs'];
  for (const n of names) fs.writeFileSync(path.join(dir, n), `${JSON.stringify(message(undefined))}\n`);
  t.same(await new Outbox(dir).entries(), [
    '1700000000000-5-9.msgs',
    '1700000000000-5-10.msgs',
    '1700000000000-40-0.msgs',
    '1700000000001-5-1.msgs',
  ]);
});

t.test('crash safety: temporary files are never entries; stale ones are removed', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir, { log: captureLog().log });
  const good = await outbox.put([message(undefined)]);
  const fresh = `.${'1700000000000-1-1.msgs'}.abc.tmp`;
  const stale = `.${'1700000000000-1-2.msgs'}.def.tmp`;
  fs.writeFileSync(path.join(dir, fresh), '{"messageId":"torn'); // a torn write
  fs.writeFileSync(path.join(dir, stale), '{"messageId":"old');
  const old = new Date(Date.now() - 2 * 3600 * 1000);
  fs.utimesSync(path.join(dir, stale), old, old);
  t.same(await outbox.entries(), [good]);
  t.ok(fs.existsSync(path.join(dir, fresh)), 'a fresh temporary file is left alone (a write may be in progress)');
  t.notOk(fs.existsSync(path.join(dir, stale)), 'a temporary file older than an hour is removed');
  t.equal(await outbox.messageCount(), 1);
  t.notOk(fs.existsSync(path.join(dir, 'rejected')), 'temporary files are not rejected either');

  // A writer killed at random points leaves only complete entries.
  const outboxPath = path.resolve(here, '../../src/common/outbox.ts');
  const script = path.join(path.dirname(dir), 'writer.ts');
  fs.writeFileSync(
    script,
    `import { Outbox } from ${JSON.stringify(outboxPath)};
const o = new Outbox(${JSON.stringify(dir)});
const big = 'x'.repeat(200_000);
process.stdout.write('ready\\n');
for (let i = 0; ; i++) o.putSync([{ messageId: 'c' + i, routingKey: 'k', type: 't', timestampMs: i, body: { big } }, { messageId: 'd' + i, routingKey: 'k', type: 't', timestampMs: i, body: {} }]);
`,
  );
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: path.resolve(here, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await sleep(150 + Math.random() * 200);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
  }
  const entries = await outbox.entries();
  t.ok(entries.length > 3, `${entries.length} entries written before the kills`);
  let bad = 0;
  for (const e of entries) {
    try {
      const msgs = parseEntry(fs.readFileSync(path.join(dir, e), 'utf8'), e);
      if (e !== good && msgs.length !== 2) bad++;
    } catch {
      bad++;
    }
  }
  t.equal(bad, 0, 'every entry is complete');
});

t.test('malformed entries are moved to rejected/ with the file and reason logged; draining goes on', async (t) => {
  const dir = tempDir(t);
  const cap = captureLog();
  const outbox = new Outbox(dir, { log: cap.log });
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const ok1 = await outbox.put([message(topology)]);
  const line = (o: unknown) => `${JSON.stringify(o)}\n`;
  const good = message(topology);
  const bad: Record<string, [string, RegExp]> = {
    '1000000000001-1-1.msgs': [line(good) + '{not json\n', /:2: invalid JSON/],
    '1000000000002-1-1.msgs': [line({ ...good, messageId: 42 }), /:1: messageId must be a non-empty string, found number 42/],
    '1000000000003-1-1.msgs': [line({ ...good, timestampMs: '12' }), /:1: timestampMs must be a finite number/],
    '1000000000004-1-1.msgs': [line({ ...good, body: [1] }), /:1: body must be a JSON object, found an array/],
    '1000000000005-1-1.msgs': [JSON.stringify(good), /:1: line does not end with a newline/],
    '1000000000006-1-1.msgs': ['', /empty entry/],
    '1000000000007-1-1.msgs': [line(good) + '\n' + line(good), /:2: empty line/],
    '1000000000008-1-1.msgs': [line([good]), /:1: not a JSON object/],
    '1000000000009-1-1.msgs': [line({ ...good, routingKey: undefined }), /:1: routingKey must be a non-empty string, found nothing/],
  };
  for (const [name, [text]] of Object.entries(bad)) fs.writeFileSync(path.join(dir, name), text);
  fs.mkdirSync(path.join(dir, '1000000000010-1-1.msgs')); // unreadable: a directory
  const ok2 = await outbox.put([message(topology), message(topology)]);
  t.equal((await outbox.entries()).length, 12);

  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const p = makePublisher(t, topology);
  p.start();
  t.same(await outbox.drain(p), { entries: 2, messages: 3 }, 'the good entries are drained');
  t.same(await outbox.entries(), []);
  const rejected = fs.readdirSync(path.join(dir, 'rejected')).sort();
  t.same(rejected, [...Object.keys(bad), '1000000000010-1-1.msgs'].sort(), 'every bad entry is in rejected/');
  const errors = cap.records().filter((r) => r.level === 'error');
  for (const [name, [, reason]] of Object.entries(bad)) {
    const rec = errors.find((r) => String(r.file).endsWith(name));
    t.ok(rec, `${name} logged`);
    t.match(String(rec?.reason), reason, `${name}: ${rec?.reason}`);
    t.match(String(rec?.msg), name, 'the message names the file');
  }
  t.ok(errors.some((r) => String(r.file).endsWith('1000000000010-1-1.msgs') && /EISDIR/.test(String(r.reason))));
  await consumer.waitForCount(3, 5000);
  t.notOk(fs.existsSync(path.join(dir, ok1)) || fs.existsSync(path.join(dir, ok2)));
});

t.test('put and putSync check messages strictly before writing', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const bad = { ...message(undefined), timestampMs: Number.NaN };
  await t.rejects(outbox.put([message(undefined), bad]), OutboxEntryError);
  t.throws(() => outbox.putSync([bad]), /message 1: timestampMs must be a finite number/);
  t.same(await outbox.entries(), []);
});

t.test('putSync writes the same entries, creating the directory 0700', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const msgs = [message(undefined), message(undefined)];
  const a = outbox.putSync(msgs);
  const b = outbox.putSync([message(undefined)]);
  t.match(a, ENTRY);
  t.equal(fs.statSync(dir).mode & 0o777, 0o700);
  t.same(await outbox.entries(), [a, b]);
  t.same(parseEntry(fs.readFileSync(path.join(dir, a), 'utf8'), a), msgs);
  t.equal(await outbox.messageCount(), 3);
  t.same(fs.readdirSync(dir).sort(), [a, b].sort(), 'no temporary file left');
});

t.test('concurrent drain() calls never publish one entry twice', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const topology = uniqueTopology();
  t.teardown(() => deleteTopology(sharedRabbitUrl, topology));
  const all: OutgoingMessage[] = [];
  for (let i = 0; i < 40; i++) {
    const batch = [message(topology), message(topology)];
    all.push(...batch);
    await outbox.put(batch);
  }
  const consumer = await startConsumer(sharedRabbitUrl, topology);
  t.teardown(() => consumer.close());
  const p = makePublisher(t, topology);
  p.start();
  const results = await Promise.all([outbox.drain(p), outbox.drain(p), outbox.drain(p)]);
  t.equal(results.reduce((n, r) => n + r.entries, 0), 40, `entries per drain: ${results.map((r) => r.entries).join(', ')}`);
  t.equal(results.reduce((n, r) => n + r.messages, 0), 80);
  await consumer.waitForCount(80, 5000);
  await sleep(300);
  t.equal(consumer.messages.length, 80, 'no duplicates');
  t.same(new Set(consumer.ids()), new Set(all.map((m) => m.messageId)));
});

t.test('watch() reports new entries, debounced, until stopped', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  let calls = 0;
  const stop = outbox.watch(() => calls++);
  t.ok(fs.existsSync(dir), 'watch() creates the directory');
  await outbox.put([message(undefined)]);
  outbox.putSync([message(undefined)]);
  outbox.putSync([message(undefined)]);
  await sleep(300);
  t.ok(calls >= 1 && calls <= 2, `called ${calls} time(s) for 3 quick entries`);
  const before = calls;
  fs.writeFileSync(path.join(dir, '.x.tmp'), 'temp');
  await sleep(200);
  t.equal(calls, before, 'temporary files do not count');
  stop();
  await outbox.put([message(undefined)]);
  await sleep(200);
  t.equal(calls, before, 'not called after stop()');
});

t.test('drain stops when the publisher closes, or at once on abort; entries stay', async (t) => {
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const topology = uniqueTopology();
  for (let i = 0; i < 3; i++) await outbox.put([message(topology)]);
  // Never started: publish() waits forever.
  const idle = new Publisher({ urls: [sharedRabbitUrl], topology, log: createLogger({ level: 'silent', name: 'p' }) });
  const ac = new AbortController();
  const draining = outbox.drain(idle, { signal: ac.signal });
  await sleep(200);
  const t0 = Date.now();
  ac.abort();
  t.same(await draining, { entries: 0, messages: 0 });
  t.ok(Date.now() - t0 < 200, 'returns at once on abort');
  t.equal((await outbox.entries()).length, 3);

  const fresh = new Outbox(dir);
  const draining2 = fresh.drain(idle);
  await sleep(100);
  const left = await idle.close({ timeoutMs: 0 });
  t.equal(left.length, 6, 'the publisher gives back what both drains handed it (the aborted one too)');
  t.same(await draining2, { entries: 0, messages: 0 });
  t.equal((await outbox.entries()).length, 3, 'entries stay when the publisher closes');
});

t.test('drain against a private broker that is stopped, then started', async (t) => {
  let rabbit: PrivateRabbit;
  try {
    rabbit = await startPrivateRabbit();
  } catch (err) {
    t.fail(`cannot start a private RabbitMQ: ${(err as Error).message}`);
    return;
  }
  t.teardown(() => rabbit.destroy());
  const dir = tempDir(t);
  const outbox = new Outbox(dir);
  const topology = uniqueTopology();
  const all: OutgoingMessage[] = [];
  for (let i = 0; i < 50; i++) {
    const batch = Array.from({ length: 1 + (i % 4) }, () => message(topology));
    all.push(...batch);
    await outbox.put(batch);
  }
  const p = makePublisher(t, topology, rabbit.url);
  p.start();
  t.equal(await p.waitConnected(5000), true);
  await rabbit.stop();
  const started = Date.now();
  const draining = outbox.drain(p);
  await sleep(1000);
  t.equal((await outbox.entries()).length, 50, 'nothing deleted while the broker is down');
  await rabbit.start();
  t.same(await draining, { entries: 50, messages: all.length });
  t.comment(`drained ${Date.now() - started} ms after the start of the drain`);
  t.same(await outbox.entries(), []);
  const consumer = await startConsumer(rabbit.url, topology);
  t.teardown(() => consumer.close());
  await consumer.waitFor((m) => new Set(m.map((r) => r.properties.messageId)).size >= all.length, 10_000);
  const ids = new Set(consumer.ids());
  t.equal(all.filter((m) => !ids.has(m.messageId)).length, 0, 'every message arrived');
});
