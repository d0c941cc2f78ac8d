import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJobFile } from '../../src/eventd/jobfile.js';
import { buildOpEvents, type BuildContext, type OpEvent } from '../../src/eventd/opmessages.js';
import { opsToPublish, recordAfter, type JobRecord } from '../../src/eventd/transitions.js';
import { FIXTURES, GOLDEN_CONTEXT } from '../golden/eventd/replay.js';

const ctx: BuildContext = GOLDEN_CONTEXT;

/** One write of a multi-op job: each op as [OP_ID, status, log length]. */
function write(ops: [string, string, number][]): OpEvent[] {
  const doc = {
    id: 20,
    ops: ops.map(([opId, status, logs]) => ({
      input: { OP_ID: opId, instance_name: 'snf-1' },
      status,
      result: null,
      log: Array.from({ length: logs }, (_, i) => [i + 1, [10, i], 'message', `line ${i + 1}`]),
    })),
    received_timestamp: [10, 0],
    end_timestamp: null,
  };
  return buildOpEvents(parseJobFile(JSON.stringify(doc), 'job-20'), ctx);
}

/** Applies writes in order the way eventd does, returning the ids published per write. */
function replay(writes: OpEvent[][], start?: JobRecord): { ids: string[][]; record: JobRecord | undefined } {
  let record = start;
  const ids = writes.map((events) => {
    const out = opsToPublish(record, events);
    record = recordAfter(record, out);
    return out.map((e) => e.message.messageId.replace('cluster1.example.test:20:', ''));
  });
  return { ids, record };
}

const [SD, ST, RB] = ['OP_INSTANCE_SHUTDOWN', 'OP_INSTANCE_STARTUP', 'OP_INSTANCE_REBOOT'];

t.test('a multi-op job publishes only the ops that changed', async (t) => {
  const { ids, record } = replay([
    write([[SD, 'queued', 0], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'queued', 0], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'waiting', 0], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'running', 0], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'running', 1], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'success', 1], [ST, 'queued', 0], [RB, 'queued', 0]]),
    write([[SD, 'success', 1], [ST, 'waiting', 0], [RB, 'queued', 0]]),
    write([[SD, 'success', 1], [ST, 'error', 0], [RB, 'error', 0]]),
    write([[SD, 'success', 1], [ST, 'error', 0], [RB, 'error', 0]]),
  ]);
  t.same(ids, [
    ['0:queued:0', '1:queued:0', '2:queued:0'],
    [],
    ['0:waiting:0'],
    ['0:running:0'],
    ['0:running:1'],
    ['0:success:1'],
    ['1:waiting:0'],
    ['1:error:0', '2:error:0'],
    [],
  ]);
  t.same(record, { ops: ['success:1', 'error:0', 'error:0'] });
});

t.test('a restart with the stored record publishes nothing already published', async (t) => {
  const last = write([[SD, 'success', 1], [ST, 'running', 0], [RB, 'queued', 0]]);
  const stored: JobRecord = JSON.parse(JSON.stringify({ ops: ['success:1', 'waiting:0', 'queued:0'] }));
  t.same(replay([last, last], stored).ids, [['1:running:0'], []]);
});

t.test('ignored and invalid ops are never recorded, so an invalid op is retried', async (t) => {
  const events = write([[SD, 'success', 0], [ST, 'bogus', 0], ['OP_TEST_DELAY', 'success', 0]]);
  const published = opsToPublish(undefined, events);
  t.same(published.map((e) => e.opIndex), [0]);
  const record = recordAfter(undefined, published);
  t.same(record, { ops: ['success:0'] });
  const fixed = write([[SD, 'success', 0], [ST, 'success', 0], ['OP_TEST_DELAY', 'success', 0]]);
  t.same(opsToPublish(record, fixed).map((e) => e.opIndex), [1]);
});

t.test('recordAfter does not modify its input and fills gaps with null', async (t) => {
  const record: JobRecord = { ops: ['queued:0'] };
  const events = opsToPublish(undefined, write([[SD, 'queued', 0], [ST, 'queued', 0], [RB, 'running', 2]])).filter((e) => e.opIndex === 2);
  t.same(recordAfter(record, events), { ops: ['queued:0', null, 'running:2'] });
  t.same(record, { ops: ['queued:0'] });
  t.same(recordAfter(undefined, []), { ops: [] });
  t.same(recordAfter(record, []), record);
});

t.test('re-reading the same fixture file publishes nothing new', async (t) => {
  const file = join(FIXTURES, 'jobs/job-4/v011.json');
  const events = buildOpEvents(parseJobFile(readFileSync(file), file), ctx);
  const first = opsToPublish(undefined, events);
  t.equal(first.length, 1);
  t.same(opsToPublish(recordAfter(undefined, first), events), []);
});
