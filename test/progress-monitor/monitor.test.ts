// runMonitor with a fake publisher and outbox: what is published, echoed, spooled, and when it ends.

import t from 'tap';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../src/common/log.js';
import type { OutgoingMessage } from '../../src/common/message.js';
import { buildProgressMessage, progressMessageId } from '../../src/progress-monitor/message.js';
import { runMonitor, type MonitorOutbox, type MonitorPublisher } from '../../src/progress-monitor/monitor.js';
import { STREAM_A, lines, progressLine } from './streams.js';

class FakePublisher implements MonitorPublisher {
  published: OutgoingMessage[] = [];
  private waiting: { msg: OutgoingMessage; resolve: () => void; reject: (e: Error) => void }[] = [];
  closeTimeouts: (number | undefined)[] = [];
  constructor(
    public confirm: boolean,
    public connected = confirm,
  ) {}
  start(): void {}
  isConnected(): boolean {
    return this.connected;
  }
  waitCalls: number[] = [];
  async waitConnected(ms: number): Promise<boolean> {
    this.waitCalls.push(ms);
    return this.connected;
  }
  pendingCount(): number {
    return this.waiting.length;
  }
  publish(msg: OutgoingMessage): Promise<void> {
    this.published.push(msg);
    if (this.confirm) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiting.push({ msg, resolve, reject }));
  }
  async close(o?: { timeoutMs?: number }): Promise<OutgoingMessage[]> {
    this.closeTimeouts.push(o?.timeoutMs);
    const left = this.waiting;
    this.waiting = [];
    for (const w of left) w.reject(new Error('closed'));
    return left.map((w) => w.msg);
  }
}

class FakeOutbox implements MonitorOutbox {
  entries: OutgoingMessage[][] = [];
  failures = 0;
  async put(messages: OutgoingMessage[]): Promise<string> {
    if (this.failures > 0) {
      this.failures--;
      throw new Error('ENOSPC');
    }
    this.entries.push([...messages]);
    return `e${this.entries.length}`;
  }
  get messages(): OutgoingMessage[] {
    return this.entries.flat();
  }
}

function harness(publisher: MonitorPublisher | undefined, outbox: MonitorOutbox | undefined) {
  const echoed: string[] = [];
  const logLines: Record<string, unknown>[] = [];
  const log = createLogger({ name: 't', level: 'debug', destination: { write: (s: string) => logLines.push(JSON.parse(s)) } });
  const input = new PassThrough();
  let clock = 1_500_000_000_000;
  const run = (extra = {}) =>
    runMonitor({ instance: 'snf-42', input, publisher, outbox, echo: (s) => echoed.push(s), log, now: () => clock++, ...extra });
  return { input, echoed, logLines, run };
}

t.test('stream A with a broker that confirms: 12 messages, spec §1.5 C shape, echoed', async (t) => {
  const pub = new FakePublisher(true);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  const done = h.run();
  h.input.end(STREAM_A);
  const r = await done;
  t.match(r, { code: 0, objects: 12, errors: 0, confirmed: 12, outboxed: 0, lost: 0 });
  t.equal(pub.published.length, 12);
  const want = lines(STREAM_A);
  pub.published.forEach((m, i) => {
    const original = JSON.parse(want[i] as string) as Record<string, unknown>;
    t.same(m.body, { ...original, event_time: [1_500_000_000 + Math.floor(i / 1000), i * 1000], instance: 'snf-42' }, `message ${i}`);
    t.equal(m.routingKey, 'ganeti.snf.event.progress');
    t.equal(m.type, original['type']);
    t.equal(m.messageId, progressMessageId('snf-42', want[i] as string, i));
  });
  t.equal(pub.published[1]?.body['timestamp'], 1500000003.1, 'timestamp kept');
  const echo = h.echoed.join('').split('\n').filter(Boolean);
  t.equal(echo.length, 12);
  t.same(echo.map((l) => JSON.parse(l.replace(/^\[MONITOR\] /, ''))), pub.published.map((m) => m.body));
  t.ok(echo.every((l) => l.startsWith('[MONITOR] {')));
  t.same(pub.closeTimeouts, [2000], 'connected at EOF: a grace period for confirms');
  t.same(box.entries, []);
});

t.test('message ids are deterministic and distinguish repeated objects', async (t) => {
  const raw = '{"type":"image-info","messages":["x"]}';
  const a = buildProgressMessage('snf-1', { raw, value: JSON.parse(raw), index: 3 }, 0);
  const b = buildProgressMessage('snf-1', { raw, value: JSON.parse(raw), index: 3 }, 99999);
  t.equal(a.messageId, b.messageId);
  t.match(a.messageId, /^progress:snf-1:[0-9a-f]{16}:3$/);
  t.not(buildProgressMessage('snf-1', { raw, value: JSON.parse(raw), index: 4 }, 0).messageId, a.messageId);
  const untyped = buildProgressMessage('snf-1', { raw: '{"a":1}', value: { a: 1 }, index: 0 }, 0);
  t.equal(untyped.type, 'image-unknown');
  const clash = buildProgressMessage('snf-1', { raw: '{}', value: { instance: 'x', event_time: 1 }, index: 0 }, 1500);
  t.same(clash.body, { instance: 'snf-1', event_time: [1, 500000] }, 'the monitor sets instance and event_time');
});

t.test('a broker that never confirms: reading never waits, the overflow goes to the outbox in batches', async (t) => {
  const pub = new FakePublisher(false, false);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  const done = h.run({ memoryLimit: 100, batchSize: 50 });
  let text = '';
  for (let i = 0; i < 1000; i++) text += `${progressLine(i)}\n`;
  h.input.end(text);
  const r = await done;
  t.match(r, { code: 0, objects: 1000, confirmed: 0, outboxed: 1000, lost: 0 });
  t.equal(pub.published.length, 100, 'at most memoryLimit messages handed to the publisher');
  t.same(pub.closeTimeouts, [0], 'disconnected at EOF: no waiting for confirms');
  t.equal(pub.waitCalls.length, 1, 'a stream ending right after start waits for the first connection');
  t.ok((pub.waitCalls[0] ?? 0) > 0 && (pub.waitCalls[0] ?? 0) <= 1000);
  const sizes = box.entries.map((e) => e.length);
  t.equal(sizes.at(-1), 100, 'the 100 unconfirmed messages in one last entry');
  const overflowSizes = sizes.slice(0, -1);
  t.equal(overflowSizes.reduce((a, b) => a + b, 0), 900);
  t.ok(overflowSizes.every((n) => n >= 50 && n <= 250), `overflow entries of 50 to 250 messages: ${overflowSizes.join(' ')}`);
  t.same(new Set(box.messages.map((m) => m.messageId)).size, 1000, 'every message exactly once');
  t.ok(h.logLines.some((l) => l['msg'] === 'broker is behind; the overflow goes to the outbox'));
});

t.test('a partial overflow batch is written after a short delay, not only at EOF', async (t) => {
  const pub = new FakePublisher(false);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  const done = h.run({ memoryLimit: 1, batchSize: 1000, batchDelayMs: 20 });
  h.input.write(`${progressLine(0)}\n${progressLine(1)}\n${progressLine(2)}\n`);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(box.entries.length, 1);
  t.equal(box.entries[0]?.length, 2);
  h.input.end();
  t.match(await done, { outboxed: 3, lost: 0 });
});

t.test('an outbox write that fails is retried at EOF; a lasting failure exits 1', async (t) => {
  const pub = new FakePublisher(false, false);
  const box = new FakeOutbox();
  box.failures = 1;
  const h = harness(pub, box);
  const done = h.run({ memoryLimit: 2, batchSize: 3 });
  h.input.end(Array.from({ length: 8 }, (_, i) => progressLine(i)).join('\n'));
  t.match(await done, { code: 0, outboxed: 8, lost: 0 });
  t.same(new Set(box.messages.map((m) => m.messageId)).size, 8);

  const box2 = new FakeOutbox();
  box2.failures = 100;
  const h2 = harness(new FakePublisher(false, false), box2);
  const done2 = h2.run();
  h2.input.end(progressLine(0));
  t.match(await done2, { code: 1, lost: 1 });
});

t.test('without a publisher (unusable settings) the stream is still read and echoed', async (t) => {
  const h = harness(undefined, undefined);
  const done = h.run();
  h.input.end(STREAM_A);
  t.match(await done, { code: 1, objects: 12, lost: 12 });
  t.equal(h.echoed.join('').split('\n').filter(Boolean).length, 12);
});

t.test('garbage is logged with its line and skipped', async (t) => {
  const pub = new FakePublisher(true);
  const h = harness(pub, new FakeOutbox());
  const done = h.run();
  h.input.end('{"type":"image-info","messages":["a"]}\nnot json\n{"type":"image-info","messages":["b"]}\n');
  t.match(await done, { code: 0, objects: 2, errors: 1 });
  t.match(h.logLines.find((l) => l['msg'] === 'skipped malformed input'), { line: 2, preview: '"not json"' });
});

t.test('stop (SIGTERM) ends the run as at EOF', async (t) => {
  const pub = new FakePublisher(false, false);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  let stop: () => void = () => {};
  const done = h.run({ stop: new Promise<void>((r) => (stop = r)) });
  h.input.write(`${progressLine(0)}\n`);
  await new Promise((r) => setImmediate(r));
  stop();
  t.match(await done, { code: 0, objects: 1, outboxed: 1 });
});

t.test('a stream ending long after start does not wait for a connection', async (t) => {
  const pub = new FakePublisher(false, false);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  const done = h.run({ connectGraceMs: 30 });
  h.input.write(`${progressLine(0)}\n`);
  await new Promise((r) => setTimeout(r, 60));
  h.input.end();
  t.match(await done, { code: 0, outboxed: 1 });
  t.same(pub.waitCalls, []);
  t.same(pub.closeTimeouts, [0]);
});

t.test('the batch timer firing on an empty overflow does not stop later outbox writes (a stalled reader)', async (t) => {
  // The sequence that once left a settled writer behind: one object starts the batch timer, a full
  // batch is written before it fires, so the timer finds nothing to write; every later batch must
  // still be written and reading must go on.
  const pub = new FakePublisher(false, false);
  const box = new FakeOutbox();
  const h = harness(pub, box);
  const done = h.run({ memoryLimit: 1, disconnectedLimit: 1, batchSize: 10, batchDelayMs: 30 });
  let next = 0;
  const send = (n: number) => {
    let text = '';
    for (const end = next + n; next < end; next++) text += `${progressLine(next)}\n`;
    h.input.write(text);
  };
  send(2); // one to the publisher (its limit), one to the overflow: the timer starts
  await new Promise((r) => setTimeout(r, 5));
  send(9); // the overflow reaches a full batch and is written before the timer fires
  await new Promise((r) => setTimeout(r, 80)); // the timer fires with nothing to write
  send(25);
  await new Promise((r) => setTimeout(r, 80));
  t.ok(box.messages.length >= 30, `later batches are still written before EOF (${box.messages.length} in the outbox)`);
  h.input.end();
  const r = await done;
  t.match(r, { code: 0, objects: 36, outboxed: 36, lost: 0 });
  t.equal(new Set(box.messages.map((m) => m.messageId)).size, 36, 'every object in the outbox once');
});
