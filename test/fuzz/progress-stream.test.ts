// Fuzzing the progress monitor's stream reader (src/progress-monitor/jsonstream.ts) and the message it
// builds from each object (message.ts): random bytes in chunks of random sizes, garbage between valid
// lines, and a reference splitter that reads the whole stream at once, line by line. The contract
// checked: the splitter never throws; each item says where it is (byte offset and line); bad input
// costs exactly the rest of its line; valid lines after garbage are still delivered, in order, with
// their exact text; and how the stream is cut into chunks never changes what comes out.

import t from 'tap';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JsonObjectSplitter, type StreamItem, type StreamObject } from '../../src/progress-monitor/jsonstream.js';
import { buildProgressMessage, progressBodyText } from '../../src/progress-monitor/message.js';
import { STREAM_A, STREAM_B, lines } from '../progress-monitor/streams.js';
import { anyChar, anyJson, anyText, fuzz, jsonSpelling, spellJson } from './fuzz.js';

/** Feeds `bytes` cut at `cuts` (positions, any order, duplicates allowed) and ends the stream. */
function splitAt(bytes: Uint8Array, cuts: readonly number[], maxObjectBytes?: number): StreamItem[] {
  const s = new JsonObjectSplitter(maxObjectBytes === undefined ? {} : { maxObjectBytes });
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: StreamItem[] = [];
  let from = 0;
  for (const to of [...points, bytes.length]) {
    // A copy, so that the splitter cannot rely on the caller keeping its buffer.
    out.push(...s.push(Uint8Array.from(bytes.subarray(from, to))));
    from = to;
  }
  out.push(...s.end());
  return out;
}

// ---- the reference: the whole stream at once, line by line --------------------------------------

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

type Expected = { kind: 'object'; raw: string; offset: number; line: number } | { kind: 'error'; reason: RegExp; offset: number; line: number };

/**
 * What the splitter must report, written from its documented rules rather than its code: a line holds
 * objects separated by blanks; anything else skips the rest of the line; an object cannot span a line;
 * an object over the limit skips the rest of its line; a last line without a newline may end inside one.
 */
function reference(bytes: Uint8Array, max: number): Expected[] {
  const out: Expected[] = [];
  let lineStart = 0;
  for (let line = 1; lineStart <= bytes.length; line++) {
    const nl = bytes.indexOf(0x0a, lineStart);
    const lineEnd = nl === -1 ? bytes.length : nl;
    let i = lineStart;
    while (i < lineEnd) {
      const b = bytes[i] as number;
      if (b === 0x20 || b === 0x09 || b === 0x0d) {
        i++;
        continue;
      }
      if (b !== 0x7b) {
        out.push({ kind: 'error', reason: /^not a JSON object/, offset: i, line });
        break;
      }
      // Find the end of the object: brackets outside strings, escapes inside them.
      let depth = 0;
      let inString = false;
      let escaped = false;
      let j = i;
      let closed = false;
      for (; j < lineEnd; j++) {
        const c = bytes[j] as number;
        if (inString) {
          if (escaped) escaped = false;
          else if (c === 0x5c) escaped = true;
          else if (c === 0x22) inString = false;
        } else if (c === 0x22) inString = true;
        else if (c === 0x7b || c === 0x5b) depth++;
        else if ((c === 0x7d || c === 0x5d) && --depth === 0) {
          closed = true;
          j++;
          break;
        }
      }
      const size = j - i;
      const more = j < bytes.length; // a newline or more bytes follow what was scanned
      if (size > max || (!closed && size === max && more)) {
        out.push({ kind: 'error', reason: new RegExp(`^object over ${max} bytes`), offset: i, line });
        break;
      }
      if (!closed) {
        const reason = nl === -1 ? /^stream ended inside an object/ : inString ? /^line ends inside a string/ : /^line ends inside an unfinished object/;
        out.push({ kind: 'error', reason, offset: i, line });
        break;
      }
      const objectBytes = bytes.subarray(i, j);
      let raw: string | undefined;
      try {
        raw = strictUtf8.decode(objectBytes);
      } catch {
        out.push({ kind: 'error', reason: /^not valid UTF-8/, offset: i, line });
      }
      if (raw !== undefined) {
        try {
          JSON.parse(raw);
          out.push({ kind: 'object', raw, offset: i, line });
        } catch {
          out.push({ kind: 'error', reason: /^invalid JSON \(/, offset: i, line });
        }
      }
      i = j;
    }
    lineStart = lineEnd + 1;
  }
  return out;
}

/** The splitter's items match the reference one for one, and each is well-formed. */
function assertAsReference(items: StreamItem[], want: Expected[], bytes: Uint8Array): void {
  assert.equal(items.length, want.length, `${items.length} items, reference ${want.length}: ${JSON.stringify(items.map((x) => [x.kind, x.offset, x.kind === 'error' ? x.reason : x.raw]))}`);
  let index = 0;
  items.forEach((item, k) => {
    const w = want[k] as Expected;
    assert.equal(item.kind, w.kind, `item ${k} at ${item.offset}: ${item.kind === 'error' ? item.reason : 'an object'}`);
    assert.equal(item.offset, w.offset, `item ${k} offset`);
    assert.equal(item.line, w.line, `item ${k} line`);
    if (item.kind === 'object' && w.kind === 'object') {
      assert.equal(item.raw, w.raw);
      assert.deepEqual(item.value, JSON.parse(w.raw));
      assert.equal(item.index, index++);
    } else if (item.kind === 'error' && w.kind === 'error') {
      assert.match(item.reason, w.reason);
      // The preview is printable text, quoted (a JSON string), of what was skipped there.
      assert.equal(typeof JSON.parse(item.preview.replace(/…$/, '')), 'string');
    }
    assert.ok(item.offset < bytes.length, 'the offset is inside the stream');
  });
}

// ---- generators ---------------------------------------------------------------------------------

const sampleLines = [...lines(STREAM_A), ...lines(STREAM_B)];
const sampleValues = sampleLines.map((l) => JSON.parse(l) as unknown);

/** A line of the spec streams in another spelling: one object per line, so no newline inside it. */
const respelledLine = fc
  .record({ v: fc.nat({ max: sampleValues.length - 1 }), spelling: jsonSpelling([' ', '\t', '\r']), seed: fc.integer() })
  .map(({ v, spelling, seed }) => spellJson(sampleValues[v], { ...spelling, style: spelling.style === 'spaced' ? 'compact' : spelling.style }, seed));

/** One line of a stream: valid objects (real or generated, any spelling without a newline) or garbage. */
const streamLine: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  { weight: 4, arbitrary: respelledLine },
  { weight: 2, arbitrary: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3, stringUnit: anyChar }), { maxKeys: 4 }).map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: fc.array(fc.nat({ max: sampleLines.length - 1 }), { minLength: 2, maxLength: 3 }).map((ix) => ix.map((i) => sampleLines[i]).join(' ')) },
  { weight: 1, arbitrary: fc.tuple(fc.nat({ max: sampleLines.length - 1 }), fc.nat()).map(([i, cut]) => (sampleLines[i] as string).slice(0, cut % (sampleLines[i] as string).length)) },
  { weight: 1, arbitrary: anyText.map((s) => s.replace(/\n/g, ' ')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((b) => b.map((x) => (x === 0x0a ? 0x20 : x))) },
  { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.constantFrom('', '{', '}', '{"a":"\\"}', '{"a":[}]', '{"a":1}}', '{"a":1} x {"b":2}', '{"\u00e9":"\ud83d\ude80"}', '{"a":"\\u00"}', '{}', '{ }') },
);

const encode = (line: string | Uint8Array): Uint8Array => (typeof line === 'string' ? Buffer.from(line) : line);

const stream = fc
  .record({ lines: fc.array(streamLine, { maxLength: 12 }), crlf: fc.boolean(), finalNewline: fc.boolean() })
  .map(({ lines: ls, crlf, finalNewline }) => {
    const sep = Buffer.from(crlf ? '\r\n' : '\n');
    const parts: Uint8Array[] = [];
    ls.forEach((l, k) => {
      parts.push(encode(l));
      if (k < ls.length - 1 || finalNewline) parts.push(sep);
    });
    return Uint8Array.from(Buffer.concat(parts));
  });

const cuts = fc.array(fc.nat(), { maxLength: 20 });

/**
 * The items without the previews of errors: a line of garbage is skipped without being buffered, so
 * its preview shows only what the chunk in which it started held of it.
 */
const withoutPreview = (items: StreamItem[]): unknown[] => items.map((item) => (item.kind === 'error' ? { ...item, preview: undefined } : item));

// ---- properties ---------------------------------------------------------------------------------

t.test('streams of valid lines and garbage, in chunks of random sizes, split exactly as the reference does', async (t) => {
  const arb = fc.record({ bytes: stream, cuts, max: fc.oneof(fc.constant(undefined), fc.integer({ min: 2, max: 200 })) });
  let objects = 0;
  let errors = 0;
  await fuzz(
    t,
    fc.property(arb, ({ bytes, cuts: c, max }) => {
      const items = splitAt(bytes, c, max);
      assertAsReference(items, reference(bytes, max ?? 1024 * 1024), bytes);
      for (const item of items) item.kind === 'object' ? objects++ : errors++;
    }),
  );
  t.ok(objects > 0 && errors > 0, `${objects} objects and ${errors} errors checked`);
});

t.test('arbitrary bytes: never throws, and the chunking makes no difference', async (t) => {
  const bytes = fc.oneof(fc.uint8Array({ maxLength: 300 }), anyText.map((s) => Uint8Array.from(Buffer.from(s))));
  await fuzz(
    t,
    fc.property(bytes, cuts, (b, c) => {
      const whole = splitAt(b, []);
      assert.deepEqual(withoutPreview(splitAt(b, c)), withoutPreview(whole));
      if (b.length <= 100) assert.deepEqual(withoutPreview(splitAt(b, [...b.keys()])), withoutPreview(whole), 'one byte at a time');
      assertAsReference(whole, reference(b, 1024 * 1024), b);
      // Stream order: offsets only grow.
      whole.forEach((item, k) => assert.ok(k === 0 || item.offset > (whole[k - 1] as StreamItem).offset));
    }),
  );
});

t.test('the valid lines of the spec streams are all delivered, in order and exactly, whatever garbage comes between', async (t) => {
  const arb = fc.record({
    garbage: fc.array(fc.oneof(anyText.map((s) => s.replace(/\n/g, '')), fc.constantFrom('{', '{"a":', '}', '[1]', '{"x":1} junk', '\u0000')), { minLength: sampleLines.length + 1, maxLength: sampleLines.length + 1 }),
    cuts,
  });
  await fuzz(
    t,
    fc.property(arb, ({ garbage, cuts: c }) => {
      const text = sampleLines.map((l, k) => `${garbage[k]}\n${l}\n`).join('') + (garbage[sampleLines.length] ?? '');
      const items = splitAt(Buffer.from(text), c);
      const delivered = items.filter((i): i is StreamObject => i.kind === 'object' && sampleLines.includes(i.raw));
      assert.deepEqual(delivered.map((o) => o.raw), sampleLines);
    }),
  );
});

t.test('the published body: the object as written plus event_time and instance, and its echo text says the same', async (t) => {
  const arb = fc.record({
    value: fc.oneof(fc.constantFrom(...sampleValues), fc.dictionary(fc.oneof(fc.constantFrom('event_time', 'instance', 'type', '__proto__'), fc.string({ maxLength: 6 })), anyJson, { maxKeys: 5 })),
    spelling: jsonSpelling([' ', '\t']),
    seed: fc.integer(),
    instance: fc.oneof(fc.constantFrom('snf-1', 'snf-42'), fc.string({ unit: anyChar, minLength: 1, maxLength: 12 })),
    nowMs: fc.oneof(fc.constant(1_795_597_948_296.2388), fc.double({ min: 0, max: 4e12, noNaN: true })),
  });
  await fuzz(
    t,
    fc.property(arb, ({ value, spelling, seed, instance, nowMs }) => {
      const raw = spellJson(value, { ...spelling, style: 'compact' }, seed).trim();
      const [item] = splitAt(Buffer.from(raw), []);
      assert.ok(item?.kind === 'object', `${raw} is one object`);
      const echo = progressBodyText(instance, item, nowMs);
      const message = buildProgressMessage(instance, item, nowMs);
      const parsed = JSON.parse(raw) as Record<string, unknown>;
      assert.deepEqual(JSON.parse(JSON.stringify(message.body)), JSON.parse(JSON.stringify({ ...parsed, event_time: message.body['event_time'], instance })));
      assert.deepEqual(JSON.parse(echo), JSON.parse(JSON.stringify(message.body)), 'the echo is the published body');
      assert.equal(message.type, typeof parsed['type'] === 'string' ? parsed['type'] : 'image-unknown');
      // The id depends on the object and its place in the stream, not on the clock.
      assert.equal(message.messageId, buildProgressMessage(instance, { raw, value: JSON.parse(raw) as Record<string, unknown>, index: item.index }, 0).messageId);
    }),
  );
});
