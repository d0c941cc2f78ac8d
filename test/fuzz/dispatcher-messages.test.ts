// Fuzzing the dispatcher's message validation (src/dispatcher/messages.ts): generated bodies, deep
// nesting, mutations of what the producers really send (the captured scenario's eventd, hook and
// progress messages), and what eventd builds from real job files with any kind of log entry. The
// contract checked: decodeMessage never throws; a refusal is a reason that names the field at fault
// (`field "<path>": …`) or says the body is not JSON / not an object; the real messages, in any
// spelling and with unknown fields added, decode exactly as before; what eventd publishes is
// accepted; and `event_time` becomes microseconds exactly, or is refused.

import t from 'tap';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, type Decoded } from '../../src/dispatcher/messages.js';
import { parseJobFile } from '../../src/eventd/jobfile.js';
import { buildOpEvents } from '../../src/eventd/opmessages.js';
import { goldenStream } from '../fixtures/dispatcher/stream.js';
import { GOLDEN_CONTEXT, fixtureJobs, readFixture } from '../golden/eventd/replay.js';
import { anyJson, anyText, fuzz, jsonPaths, jsonSpelling, mutateAt, mutatedBytes, mutation, nested, nestingDepth, oddNumbers, spellJson, type JsonPath } from './fuzz.js';

/** A job file as JSON.parse reads it, as far as this test changes it. */
interface JobDoc {
  ops: { log: unknown[][] }[];
}

const bodies = goldenStream().map((m) => m.body);
const bodyIndex = fc.nat({ max: bodies.length - 1 });

const REASON = /^(body is not valid UTF-8 \(binary data\?\)|body is not JSON: .+|body is not a JSON object: .+|field "([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*)": .+, got .+)$/s;

/** Decodes, failing the property if anything is thrown; a refusal must read as REASON. */
function decode(content: Buffer | string): Decoded {
  let d: Decoded;
  try {
    d = decodeMessage(content);
  } catch (err) {
    throw new Error(`decodeMessage threw: ${String(err)}`);
  }
  if (!d.ok) assert.match(d.reason, REASON);
  return d;
}

const fieldOf = (d: Decoded): string | undefined => (d.ok ? undefined : /^field "([^"]+)"/.exec(d.reason)?.[1]);
const firstSegment = (path: string): string => path.split(/[.[]/)[0] as string;

t.test('arbitrary bytes, text, JSON and deep nesting: a message or a reason, never an exception', async (t) => {
  const deepAt = fc.record({ i: bodyIndex, at: fc.nat(), depth: nestingDepth, arrays: fc.boolean() }).map(({ i, at, depth, arrays }) => {
    const body = bodies[i] as Record<string, unknown>;
    const paths = jsonPaths(body);
    const path = paths[at % paths.length] as JsonPath;
    const marker = '\u0000DEEP\u0000';
    const deep = arrays ? nested(depth) : `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`;
    const text = JSON.stringify(mutateAt(body, path, { kind: 'replace', value: marker }));
    return text.replace(JSON.stringify(marker), deep);
  });
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
    anyText,
    anyJson.map((v) => JSON.stringify(v)),
    bodyIndex.chain((i) => mutatedBytes(Buffer.from(JSON.stringify(bodies[i])))).map((b) => Buffer.from(b)),
    fc.oneof(deepAt, nestingDepth.map((d) => nested(d))),
  );
  await fuzz(
    t,
    fc.property(input, (content) => {
      decode(content);
    }),
  );
});

t.test('a real message cut anywhere is refused as not JSON', async (t) => {
  await fuzz(
    t,
    fc.property(bodyIndex, fc.nat(), fc.boolean(), (i, cut, spaced) => {
      const text = JSON.stringify(bodies[i], null, spaced ? 1 : undefined);
      const d = decode(Buffer.from(text.slice(0, cut % text.length)));
      assert.equal(d.ok, false);
      if (!d.ok) assert.match(d.reason, /^body is not JSON: /);
    }),
  );
});

/** The fields the decoders read; anything else in a body is carried along and ignored. */
const READ = new Set([
  ...['type', 'instance', 'cluster', 'operation', 'status', 'event_time', 'jobId', 'logmsg', 'tags', 'job_fields', 'instance_nics', 'nics'],
  ...['network', 'role', 'outbox', 'node', 'progress', 'subtype', 'task', 'messages', 'stderr'],
]);
const READ_JOB_FIELDS = new Set(['dry_run', 'subnet', 'gateway', 'add_reserved_ips', 'remove_reserved_ips']);

function ignored(path: JsonPath): boolean {
  const [top, sub] = path;
  if (typeof top === 'string' && !READ.has(top)) return true;
  return top === 'job_fields' && path.length >= 2 && typeof sub === 'string' && !READ_JOB_FIELDS.has(sub);
}

t.test('one field of a real message changed: refused naming that field, or decoded as before when it is not read', async (t) => {
  const arb = fc.record({ i: bodyIndex, at: fc.nat(), mutation, spelling: jsonSpelling(), seed: fc.integer() });
  let refused = 0;
  await fuzz(
    t,
    fc.property(arb, ({ i, at, mutation: m, spelling, seed }) => {
      const body = bodies[i] as Record<string, unknown>;
      const paths = jsonPaths(body);
      const path = paths[at % paths.length] as JsonPath;
      const d = decode(spellJson(mutateAt(body, path, m), spelling, seed));
      const changed: JsonPath = m.kind === 'insert' && typeof path[path.length - 1] === 'string' ? [...path.slice(0, -1), m.key] : path;
      if (ignored(changed)) {
        assert.deepEqual(d, decode(JSON.stringify(body)), `a change of ${changed.join('.')} makes no difference`);
      }
      if (d.ok) return;
      refused++;
      const field = fieldOf(d);
      assert.ok(field !== undefined, `a refused real message names a field: ${d.reason}`);
      // A new `type` asks for other fields; otherwise the field at fault is the one changed.
      if (changed[0] !== 'type') assert.equal(firstSegment(field), changed[0], `changed ${changed.join('.')} (${m.kind}): ${d.reason}`);
    }),
  );
  t.ok(refused > 0, `${refused} refused`);
});

const unreadKey = fc.string({ minLength: 1, maxLength: 10 }).filter((k) => !READ.has(k) && k !== '__proto__');

t.test('every real message, in any spelling and with unknown fields added, decodes exactly as before', async (t) => {
  const before = bodies.map((b) => decode(JSON.stringify(b)));
  assert.ok(before.every((d) => d.ok));
  const arb = fc.record({ i: bodyIndex, spelling: jsonSpelling(), seed: fc.integer(), extra: fc.dictionary(unreadKey, anyJson, { maxKeys: 4 }) });
  await fuzz(
    t,
    fc.property(arb, ({ i, spelling, seed, extra }) => {
      const body = { ...extra, ...(bodies[i] as Record<string, unknown>) };
      assert.deepEqual(decode(spellJson(body, spelling, seed)), before[i]);
    }),
  );
});

t.test('what eventd publishes for a real job whose last log entry has any type and any value is accepted', async (t) => {
  const jobDocs = fixtureJobs().flatMap((j) => j.versions.map((v) => JSON.parse(readFixture(v.file).toString('utf8')) as JobDoc));
  const arb = fc.record({
    j: fc.nat({ max: jobDocs.length - 1 }),
    op: fc.nat(),
    type: fc.oneof(fc.constantFrom('message', 'remote-import', 'jqueue-test', 'delay-test'), fc.string({ maxLength: 12 })),
    value: fc.oneof(anyText, anyJson),
  });
  let published = 0;
  await fuzz(
    t,
    fc.property(arb, ({ j, op, type, value }) => {
      const doc = structuredClone(jobDocs[j] as JobDoc);
      const target = doc.ops[op % doc.ops.length] as JobDoc['ops'][number];
      const serial = Math.max(0, ...doc.ops.flatMap((o) => o.log.map((e) => e[0] as number))) + 1;
      target.log.push([serial, [1795597950, 0], type, value]);
      for (const event of buildOpEvents(parseJobFile(JSON.stringify(doc), 'job'), GOLDEN_CONTEXT)) {
        if (event.kind !== 'publish') continue;
        published++;
        const d = decode(JSON.stringify(event.message.body));
        assert.ok(d.ok, `${event.message.messageId}: ${d.ok ? '' : d.reason}`);
        const logmsg = event.message.body['logmsg'];
        const want = logmsg === null || logmsg === '' ? null : typeof logmsg === 'string' ? logmsg : JSON.stringify(logmsg);
        if ('logmsg' in d.message) assert.equal(d.message.logmsg, want);
      }
    }),
  );
  t.ok(published > 0, `${published} messages decoded`);
});

const MAX_SECONDS = Math.floor(Number.MAX_SAFE_INTEGER / 1_000_000);
const timePart = fc.oneof(fc.nat({ max: 2_000_000_000 }), fc.integer({ min: 0, max: 999_999 }), fc.constantFrom(...oddNumbers, MAX_SECONDS, MAX_SECONDS + 1), fc.double(), fc.constantFrom('1', null, true));

t.test('event_time becomes exactly s * 1e6 + us microseconds, or is refused by name', async (t) => {
  const arb = fc.record({ i: bodyIndex, s: timePart, us: timePart, extra: fc.array(timePart, { maxLength: 1 }) });
  await fuzz(
    t,
    fc.property(arb, ({ i, s, us, extra }) => {
      const eventTime = [s, us, ...extra];
      const d = decode(JSON.stringify({ ...bodies[i], event_time: eventTime }));
      const asJson = JSON.parse(JSON.stringify(eventTime)) as unknown[]; // -0 is written 0
      const [js, jus] = asJson;
      const exact =
        asJson.length === 2 &&
        Number.isInteger(js) &&
        Number.isInteger(jus) &&
        (js as number) >= 0 &&
        (jus as number) >= 0 &&
        (jus as number) <= 999_999 &&
        BigInt(js as number) * 1_000_000n + BigInt(jus as number) <= BigInt(Number.MAX_SAFE_INTEGER);
      if (!exact) {
        assert.equal(d.ok, false, `event_time ${JSON.stringify(eventTime)} cannot be exact microseconds, yet accepted`);
        assert.equal(fieldOf(d), 'event_time');
        return;
      }
      assert.ok(d.ok, d.ok ? '' : d.reason);
      const micros = (d.message as { eventTime: number }).eventTime;
      assert.equal(BigInt(micros), BigInt(js as number) * 1_000_000n + BigInt(jus as number));
    }),
  );
});
