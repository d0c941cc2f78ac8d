import t from 'tap';
import { randomBytes } from 'node:crypto';
import { JsonObjectSplitter, type StreamItem, type StreamObject, type StreamError } from '../../src/progress-monitor/jsonstream.js';
import { STREAM_A, STREAM_B, lines } from './streams.js';

/** Feeds `input` in chunks of `size` bytes (or at the given cut points) and returns every item. */
function split(input: Buffer | string, size = Infinity, options = {}): StreamItem[] {
  const buf = typeof input === 'string' ? Buffer.from(input) : input;
  const s = new JsonObjectSplitter(options);
  const out: StreamItem[] = [];
  const step = Math.min(size, Math.max(buf.length, 1));
  for (let i = 0; i < buf.length; i += step) out.push(...s.push(buf.subarray(i, i + step)));
  out.push(...s.end());
  return out;
}
const objects = (items: StreamItem[]) => items.filter((i): i is StreamObject => i.kind === 'object');
const errors = (items: StreamItem[]) => items.filter((i): i is StreamError => i.kind === 'error');

t.test('the example streams, whole and one byte at a time', async (t) => {
  for (const [name, stream] of [['A', STREAM_A], ['B', STREAM_B]] as const) {
    const want = lines(stream);
    for (const size of [Infinity, 1, 2, 3, 7, 64, 512]) {
      const items = split(stream, size);
      t.equal(errors(items).length, 0, `${name}/${size}: no errors`);
      t.same(objects(items).map((o) => o.raw), want, `${name}/${size}: exact text of every object`);
      t.same(objects(items).map((o) => o.value), want.map((l) => JSON.parse(l)), `${name}/${size}: values`);
      t.same(objects(items).map((o) => o.index), want.map((_, i) => i));
      t.same(objects(items).map((o) => o.line), want.map((_, i) => i + 1));
    }
  }
  const b = objects(split(STREAM_B, 1));
  t.equal(b[1]?.value['stderr'], 'mount: wrong fs type\nbad superblock\n', 'escaped newlines inside strings are kept');
  t.same(objects(split(STREAM_A, 1))[7]?.value['messages'], [' No swap partition defined'], 'the leading space is kept');
});

t.test('whitespace inside strings survives every cut point (Synnefo stripped it)', async (t) => {
  const line = '{"messages": ["  Starting   image copy...  "], "type": "image-info"}\n';
  const buf = Buffer.from(line);
  for (let cut = 1; cut < buf.length; cut++) {
    const s = new JsonObjectSplitter();
    const items = [...s.push(buf.subarray(0, cut)), ...s.push(buf.subarray(cut)), ...s.end()];
    t.same(objects(items).map((o) => o.value['messages']), [['  Starting   image copy...  ']], `cut at ${cut}`);
  }
});

t.test('multi-byte UTF-8 split anywhere', async (t) => {
  const line = '{"messages": ["καλημέρα 🚀 ok"], "type": "image-info"}\n';
  const items = split(line, 1);
  t.same(objects(items).map((o) => o.raw), [line.trimEnd()]);
});

t.test('objects concatenated without newlines, or several on a line', async (t) => {
  const items = split('{"a":1}{"b":{"c":[1,{"d":"}"}]}}  {"e":"{"}\r\n{"f":"\\"}"}', 3);
  t.same(objects(items).map((o) => o.value), [{ a: 1 }, { b: { c: [1, { d: '}' }] } }, { e: '{' }, { f: '"}' }]);
  t.equal(errors(items).length, 0);
});

t.test('garbage lines are reported and skipped; every later line is parsed', async (t) => {
  const input = [
    'garbage here',
    '{"ok":1}',
    '{"bad": }',
    '{"unterminated": "string',
    '{"unbalanced": [1, 2',
    '[1,2,3]',
    '42',
    '"text"',
    '}',
    '{"ok":2} trailing junk',
    '{"ok":3}',
    '{"ctl":"a\u0001b"}',
    '{"ok":4}',
  ].join('\n');
  for (const size of [Infinity, 1, 5]) {
    const items = split(input, size);
    t.same(objects(items).map((o) => o.value), [{ ok: 1 }, { ok: 2 }, { ok: 3 }, { ok: 4 }], `size ${size}: valid objects`);
    const errs = errors(items);
    t.same(errs.map((e) => e.line), [1, 3, 4, 5, 6, 7, 8, 9, 10, 12], `size ${size}: one error per bad line, with its line`);
    t.match(errs[0], { reason: /not a JSON object/, offset: 0 });
    // The preview shows what the chunk held of the garbage.
    if (size === Infinity) t.equal(errs[0]?.preview, '"garbage here"');
    t.match(errs[1], { reason: /invalid JSON/ });
    t.match(errs[2], { reason: /line ends inside a string/ });
    t.match(errs[3], { reason: /line ends inside an unfinished object/ });
  }
});

t.test('an object over the size limit is skipped without being kept', async (t) => {
  const limit = 1024;
  const fits = `{"m":"${'x'.repeat(limit - 8)}"}`;
  t.equal(Buffer.byteLength(fits), limit);
  const over = `{"m":"${'x'.repeat(limit - 7)}"}`;
  for (const size of [Infinity, 1, 100, limit]) {
    const items = split(`${fits}\n${over}\n{"next":1}\n`, size, { maxObjectBytes: limit });
    t.same(objects(items).map((o) => o.raw.length), [limit, 10], `size ${size}: the object of exactly the limit passes`);
    t.match(errors(items), [{ reason: /object over 1024 bytes/, line: 2 }], `size ${size}`);
  }
});

t.test('a 10 MB line', async (t) => {
  const big = `{"messages": ["${'y'.repeat(10 * 1024 * 1024)}"], "type": "image-info"}`;
  const s = new JsonObjectSplitter();
  const buf = Buffer.from(`{"a":1}\n${big}\n{"b":2}\n`);
  const items: StreamItem[] = [];
  const before = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < buf.length; i += 65536) items.push(...s.push(buf.subarray(i, i + 65536)));
  const grown = process.memoryUsage().arrayBuffers - before;
  items.push(...s.end());
  t.same(objects(items).map((o) => o.value), [{ a: 1 }, { b: 2 }]);
  t.match(errors(items), [{ reason: /object over 1048576 bytes/, line: 2 }]);
  t.ok(grown < 4 * 1024 * 1024, `buffers grew by ${grown} bytes only`);
});

t.test('binary input', async (t) => {
  const junk = randomBytes(256 * 1024);
  const input = Buffer.concat([Buffer.from('{"first":1}\n'), junk, Buffer.from('\n{"after":"binary"}\n'), Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a]), Buffer.from('{"last":true}')]);
  for (const size of [Infinity, 1, 4096]) {
    const items = split(input, size);
    const objs = objects(items).map((o) => o.value);
    t.same(objs.slice(0, 1), [{ first: 1 }], `size ${size}`);
    t.same(objs.slice(-2), [{ after: 'binary' }, { last: true }], `size ${size}: lines after binary junk are parsed`);
    t.ok(errors(items).length >= 2, `size ${size}: junk reported`);
    t.ok(errors(items).some((e) => /not valid UTF-8/.test(e.reason)), 'invalid UTF-8 in a string');
  }
});

t.test('EOF inside an object is reported; a last object without a newline is kept', async (t) => {
  t.match(split('{"a":1}\n{"b":'), [{ kind: 'object', value: { a: 1 } }, { kind: 'error', reason: /stream ended inside an object/, line: 2 }]);
  t.match(split('{"a":1}'), [{ kind: 'object', value: { a: 1 } }]);
  t.same(split(''), []);
  t.same(split('\n\n  \r\n'), []);
  const s = new JsonObjectSplitter();
  s.push(Buffer.from('{"a":1}\nxx\n'));
  t.same(s.stats, { objects: 1, errors: 1, bytes: 11 });
});

t.test('a backslash right before a newline does not carry an object into the next line (found by fuzzing)', async (t) => {
  for (const size of [Infinity, 1, 4]) {
    const items = split('{"a":"x\\\n{"ok":1}\n', size);
    t.match(items, [{ kind: 'error', reason: /line ends inside a string/, line: 1, offset: 0 }, { kind: 'object', value: { ok: 1 }, line: 2 }], `size ${size}`);
  }
});
