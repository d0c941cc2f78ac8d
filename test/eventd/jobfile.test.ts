import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JobFileError, MAX_JOB_FILE_BYTES, MAX_JSON_DEPTH, parseJobFile } from '../../src/eventd/jobfile.js';
import { FIXTURES, fixtureJobs } from '../golden/eventd/replay.js';

const versions = fixtureJobs().flatMap((job) =>
  job.versions.map((v) => ({ job: job.job, file: v.file, bytes: readFileSync(join(FIXTURES, v.file)) })),
);
const sample = (file: string): Record<string, unknown> => JSON.parse(readFileSync(join(FIXTURES, file), 'utf8'));

/** Runs parseJobFile and returns the JobFileError it must throw (failing the test otherwise). */
function parseError(t: { fail: (message: string) => unknown }, content: string | Uint8Array, source = 'queue/job-9'): JobFileError | undefined {
  try {
    parseJobFile(content, source);
  } catch (err) {
    if (err instanceof JobFileError) return err;
    t.fail(`expected a JobFileError, got ${String(err)}`);
    return undefined;
  }
  t.fail('expected a JobFileError, but the content was accepted');
  return undefined;
}

t.test('every captured version of every fixture job parses, in both writer styles', async (t) => {
  t.equal(versions.length, 202);
  const styles = new Set<string>();
  for (const v of versions) {
    const text = v.bytes.toString('utf8');
    styles.add(text.endsWith('\n') ? 'spaced+newline' : 'compact');
    const job = parseJobFile(v.bytes, v.file);
    t.equal(job.id, v.job, `${v.file} id`);
    t.ok(job.ops.length >= 1, `${v.file} has ops`);
    t.same(parseJobFile(text, v.file), job, `${v.file}: string and bytes give the same job`);
  }
  t.same([...styles].sort(), ['compact', 'spaced+newline']);
});

t.test('the fields eventd needs are read as written', async (t) => {
  const job = parseJobFile(readFileSync(join(FIXTURES, 'jobs/job-4/v012.json')), 'job-4');
  t.equal(job.id, 4);
  t.same(job.receivedTimestamp, [1795597947, 637078]);
  t.same(job.startTimestamp, [1795597947, 789327]);
  t.same(job.endTimestamp, [1795597948, 305981]);
  const [op] = job.ops;
  t.equal(op?.input.OP_ID, 'OP_INSTANCE_CREATE');
  t.equal(op?.input.instance_name, 'snf-1');
  t.equal(op?.status, 'success');
  t.same(op?.result, ['node1.example.test']);
  t.equal(op?.log.length, 6);
  t.same(op?.log[5], { serial: 6, time: [1795597948, 228300], type: 'message', message: '* starting instance...' });
  t.same(op?.startTimestamp, [1795597947, 789327]);
  t.same(op?.execTimestamp, [1795597947, 795079]);
  t.same(op?.endTimestamp, [1795597948, 305972]);
});

t.test('lenient where Ganeti is: string ids, missing timestamps, extra keys, any log message', async (t) => {
  const doc = {
    id: '42',
    ops: [{ input: { OP_ID: 'OP_TEST_DELAY', extra: 1 }, status: 'queued', result: null, log: [[3, [1, 2], 'remote-import', { x: 1 }]], priority: 0 }],
    future_key: true,
  };
  const job = parseJobFile(JSON.stringify(doc), 'job-42');
  t.equal(job.id, 42);
  t.equal(job.receivedTimestamp, null);
  t.equal(job.ops[0]?.execTimestamp, null);
  t.same(job.ops[0]?.log[0]?.message, { x: 1 });
});

t.test('truncated JSON: every fixture cut at several points', async (t) => {
  let checked = 0;
  for (const v of versions) {
    const text = v.bytes.toString('utf8');
    const end = text.lastIndexOf('}'); // cutting only the trailing newline leaves a valid document
    for (const cut of new Set([1, 2, Math.floor(end / 4), Math.floor(end / 2), Math.floor((3 * end) / 4), end - 1, end])) {
      const err = parseError(t, text.slice(0, cut), v.file);
      if (!err) continue;
      checked++;
      if (!err.message.startsWith(`${v.file}: position `) || err.where !== `position ${cut}`) t.fail(`${v.file} cut at ${cut}: ${err.message}`);
    }
  }
  t.ok(checked >= 202 * 6, `${checked} truncations rejected with the source and position`);
  const err = parseError(t, '{"id": 4, "ops": [');
  t.match(err?.reason, /truncated/);
});

t.test('valid JSON of the wrong shape names the place', async (t) => {
  const cases: [string, (doc: any) => void, string, RegExp][] = [
    ['id missing', (d) => delete d.id, 'id', /is missing/],
    ['id a word', (d) => (d.id = 'four'), 'id', /numeric string/],
    ['id fractional', (d) => (d.id = 4.5), 'id', /integer/],
    ['id negative', (d) => (d.id = -1), 'id', /non-negative/],
    ['ops an object', (d) => (d.ops = {}), 'ops', /must be an array, found an object/],
    ['ops missing', (d) => delete d.ops, 'ops', /is missing/],
    ['op a string', (d) => (d.ops[0] = 'op'), 'ops[0]', /op object/],
    ['input an array', (d) => (d.ops[0].input = []), 'ops[0].input', /must be an object/],
    ['OP_ID missing', (d) => delete d.ops[0].input.OP_ID, 'ops[0].input.OP_ID', /is missing/],
    ['OP_ID a number', (d) => (d.ops[0].input.OP_ID = 7), 'ops[0].input.OP_ID', /non-empty string, found number 7/],
    ['status null', (d) => (d.ops[0].status = null), 'ops[0].status', /must be a string, found null/],
    ['result missing', (d) => delete d.ops[0].result, 'ops[0].result', /is missing/],
    ['log a string', (d) => (d.ops[0].log = 'x'), 'ops[0].log', /must be an array/],
    ['log entry short', (d) => (d.ops[0].log[3] = [4, [1, 2]]), 'ops[0].log[3]', /found 2 elements/],
    ['log serial a string', (d) => (d.ops[0].log[2][0] = '3'), 'ops[0].log[2][0]', /serial/],
    ['log time one element', (d) => (d.ops[0].log[1][1] = [1]), 'ops[0].log[1][1]', /timestamp/],
    ['log type a number', (d) => (d.ops[0].log[5][2] = 1), 'ops[0].log[5][2]', /type must be a string/],
    ['op start a string', (d) => (d.ops[0].start_timestamp = 'now'), 'ops[0].start_timestamp', /timestamp/],
    ['op exec floats', (d) => (d.ops[0].exec_timestamp = [1.5, 2]), 'ops[0].exec_timestamp', /integers/],
    ['op end usec too big', (d) => (d.ops[0].end_timestamp = [1, 1_000_000]), 'ops[0].end_timestamp', /timestamp/],
    ['received three elements', (d) => (d.received_timestamp = [1, 2, 3]), 'received_timestamp', /timestamp/],
    ['job end negative', (d) => (d.end_timestamp = [-1, 0]), 'end_timestamp', /timestamp/],
    ['second op broken', (d) => d.ops.push({ input: { OP_ID: 'OP_X' }, status: 'queued', result: null, log: [[1, 'x', 'message', '']] }), 'ops[1].log[0][1]', /timestamp/],
  ];
  for (const [name, mutate, where, reason] of cases) {
    const doc = sample('jobs/job-4/v012.json');
    mutate(doc);
    const err = parseError(t, JSON.stringify(doc), '/var/lib/ganeti/queue/job-4');
    t.equal(err?.where, where, `${name}: where`);
    t.match(err?.reason, reason, `${name}: reason`);
    t.ok(err?.message.startsWith(`/var/lib/ganeti/queue/job-4: ${where}: `), `${name}: message names source and place`);
  }
  for (const doc of ['[]', 'null', '42', '"job"', 'true']) {
    t.equal(parseError(t, doc)?.where, '(document)', `top level ${doc}`);
  }
});

t.test('oversized files are refused before parsing', async (t) => {
  const big = Buffer.alloc(MAX_JOB_FILE_BYTES + 1, 0x20);
  t.equal(MAX_JOB_FILE_BYTES, 16 * 1024 * 1024);
  t.match(parseError(t, big, 'job-big')?.message, /^job-big: \(document\): is too large/);
  t.match(parseError(t, ' '.repeat(MAX_JOB_FILE_BYTES + 1))?.reason, /too large/);
  // Multi-byte characters count in bytes, not UTF-16 units.
  t.match(parseError(t, `"${'é'.repeat(MAX_JOB_FILE_BYTES / 2)}"`)?.reason, /too large/);
});

t.test('empty files, binary garbage, NUL bytes and invalid UTF-8', async (t) => {
  t.match(parseError(t, '', 'job-1')?.message, /^job-1: \(document\): is empty/);
  t.match(parseError(t, Buffer.alloc(0))?.reason, /is empty/);
  t.match(parseError(t, ' \n\t')?.reason, /is empty/);
  t.match(parseError(t, Buffer.from([0xff, 0xfe, 0x00, 0x41]))?.reason, /not valid UTF-8/);
  t.match(parseError(t, Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'))?.reason, /not valid UTF-8/);
  const nul = parseError(t, '{"id": 1\0}');
  t.equal(nul?.where, 'position 8');
  t.match(nul?.reason, /NUL/);
  t.match(parseError(t, 'not json at all')?.reason, /not valid JSON/);
  t.match(parseError(t, '{"id": 1}}')?.where, /^position \d+$/);
  t.match(parseError(t, '{"id": "\ud800"}')?.reason, /lone surrogate/);
});

t.test('absurd nesting is refused (later copies would overflow the stack)', async (t) => {
  const doc = (depth: number) =>
    `{"id":1,"ops":[{"input":{"OP_ID":"OP_INSTANCE_SNAPSHOT","disks":${'['.repeat(depth)}${']'.repeat(depth)}},"status":"queued","result":null,"log":[]}]}`;
  // The document, `ops`, the op and `input` take four levels.
  t.doesNotThrow(() => parseJobFile(doc(MAX_JSON_DEPTH - 4), 'job-1'));
  t.match(parseError(t, doc(MAX_JSON_DEPTH - 3))?.reason, /nested more than 64 levels/);
  t.match(parseError(t, doc(200_000))?.reason, /nested more than 64 levels/);
});

t.test('no other exception type escapes (deterministic fuzzing of real files)', async (t) => {
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let accepted = 0;
  let rejected = 0;
  for (const v of versions) {
    for (let i = 0; i < 20; i++) {
      const bytes = Buffer.from(v.bytes);
      for (let k = 0; k <= random(3); k++) bytes[random(bytes.length)] = random(256);
      try {
        parseJobFile(bytes, v.file);
        accepted++;
      } catch (err) {
        if (!(err instanceof JobFileError)) t.fail(`${v.file}: ${String(err)}`);
        else rejected++;
      }
    }
  }
  t.ok(rejected > 0 && accepted + rejected === versions.length * 20, `${rejected} rejected, ${accepted} still valid`);
});
