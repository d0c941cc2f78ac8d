// Message ids and the AMQP short-string limit (255 bytes for message id, type and routing key).

import t from 'tap';
import { AMQP_SHORTSTR_BYTES, boundedMessageId, splitTime, unpublishableReason } from '../../src/common/message.js';

t.test('boundedMessageId keeps ids that fit and shortens the others deterministically', async (t) => {
  const short = 'net:snf-12:instance-add:1800000000.123456';
  t.equal(boundedMessageId(short), short, 'an ordinary id is unchanged');
  const exact = 'a'.repeat(AMQP_SHORTSTR_BYTES);
  t.equal(boundedMessageId(exact), exact, 'exactly 255 bytes is unchanged');
  const wide = 'é'.repeat(127); // 254 bytes in 127 UTF-16 units
  t.equal(boundedMessageId(wide), wide, 'multi-byte characters are counted as bytes, and fit');

  for (const long of [`net:snf-${'9'.repeat(100_000)}:instance-add:1`, 'é'.repeat(200), '😀'.repeat(100), `${'a'.repeat(199)}😀${'b'.repeat(100)}`]) {
    const id = boundedMessageId(long);
    t.ok(Buffer.byteLength(id) <= AMQP_SHORTSTR_BYTES, `${Buffer.byteLength(long)} bytes -> ${Buffer.byteLength(id)}`);
    t.equal(boundedMessageId(long), id, 'the same id every time');
    t.equal(unpublishableReason({ messageId: id, type: 't', routingKey: 'k' }), undefined);
  }
  const a = boundedMessageId(`${'x'.repeat(300)}:1`);
  const b = boundedMessageId(`${'x'.repeat(300)}:2`);
  t.not(a, b, 'ids that differ only after the cut stay distinct');
  t.ok(a.startsWith('x'.repeat(200)), 'the start of the id is kept, readable');
});

t.test('unpublishableReason names the field that does not fit', async (t) => {
  t.equal(unpublishableReason({ messageId: 'm', type: 'ganeti-op-status', routingKey: 'ganeti.snf.event.op' }), undefined);
  t.match(unpublishableReason({ messageId: 'm'.repeat(256), type: 't', routingKey: 'k' }), /^its message id is 256 bytes long; AMQP allows 255/);
  t.match(unpublishableReason({ messageId: 'm', type: 'é'.repeat(128), routingKey: 'k' }), /^its type is 256 bytes long/);
  t.match(unpublishableReason({ messageId: 'm', type: 't', routingKey: 'k'.repeat(1000) }), /^its routing key is 1000 bytes long/);
});

t.test('splitTime', async (t) => {
  t.same(splitTime(1_800_000_000_123.456), [1_800_000_000, 123_456]);
  t.same(splitTime(0), [0, 0]);
});
