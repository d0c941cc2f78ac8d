// The job processor's bookkeeping between the publisher's callbacks and the durable record: what a
// confirm records, that a job is not published again once its messages are confirmed (its in-memory
// "sent" entry goes, the record answers alone), and that a message the publisher refuses for good
// frees its place in the window without being recorded. Real job files and a real record on disk;
// the publisher's send() is a stub, the one part that decides when callbacks come.

import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/log.js';
import type { OutgoingMessage } from '../../src/common/message.js';
import { UnpublishableMessageError, type SentCallback } from '../../src/common/publisher.js';
import { routingPrefix } from '../../src/common/topology.js';
import { JobProcessor } from '../../src/eventd/processor.js';
import { PublishedRecord } from '../../src/eventd/record.js';
import { freshJobVersions } from '../helpers/eventd.js';

// What freshJobVersions computed its messages for.
const CLUSTER = 'cluster1.example.test';
const acceptsName = (name: string) => routingPrefix(name) === 'snf';

function setup(t: Test, answer: (msg: OutgoingMessage, done: SentCallback) => void) {
  const root = mkdtempSync(join(tmpdir(), 'processor-'));
  t.teardown(() => record.close());
  // The first recorded version that makes eventd publish, under a fresh job id.
  const version = freshJobVersions(1, 1, true)[0]!;
  writeFileSync(join(root, `job-${version.id}`), version.bytes);
  const record = new PublishedRecord(join(root, 'state'));
  const sent: OutgoingMessage[] = [];
  const processor = new JobProcessor({
    queueDir: root,
    send: (msg, done) => {
      sent.push(msg);
      answer(msg, done);
    },
    record,
    log: createLogger({ level: 'silent', name: 'test' }),
    publishContext: () => ({ cluster: CLUSTER }),
    acceptsName,
  });
  return { processor, record, sent, version };
}

t.test('a confirm records the transition, and the same file read again publishes nothing', async (t) => {
  const { processor, record, sent, version } = setup(t, (msg, done) => setImmediate(() => done(undefined, msg.messageId)));
  processor.notify(version.id, { force: true });
  await processor.idle();
  t.same(sent.map((m) => m.messageId), version.messages.map((m) => m.messageId), 'every publishable op sent once');
  await new Promise((r) => setImmediate(r));
  t.equal(processor.unconfirmedCount(), 0, 'nothing left waiting for a confirm');
  const recorded = record.get(version.id)?.ops.filter((op) => op !== null) ?? [];
  t.equal(recorded.length, version.messages.length, 'each confirmed transition is in the record');

  processor.notify(version.id, { force: true });
  await processor.idle();
  t.equal(sent.length, version.messages.length, 'read again after its confirms: nothing new to publish');
});

t.test('a message refused for good frees its window slot and is not recorded', async (t) => {
  const { processor, record, sent, version } = setup(t, (msg, done) => done(new UnpublishableMessageError('refused by the test'), msg.messageId));
  processor.notify(version.id, { force: true });
  await processor.idle();
  t.equal(sent.length, version.messages.length, 'handed to the publisher');
  t.equal(processor.unconfirmedCount(), 0, 'no window slot held by a message that will never be confirmed');
  t.notOk(processor.owns(sent[0]!.messageId), 'no longer tracked as in flight');
  t.same(record.get(version.id)?.ops.filter((op) => op !== null) ?? [], [], 'nothing recorded as published');
});
