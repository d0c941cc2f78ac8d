// The unit every producer hands to the publisher or the outbox: a JSON body with its routing key and
// the AMQP properties that make it identifiable (architecture invariant 1: new information goes into
// properties, the JSON fields stay Synnefo's).

import { hash } from 'node:crypto';

export const APP_ID = 'snf-cyclades-gtools';
export const CONTENT_TYPE = 'application/json';

export interface OutgoingMessage {
  /** Deterministic: the same transition always gets the same id, so consumers can spot duplicates. */
  messageId: string;
  routingKey: string;
  /** The Synnefo message type, also sent as the AMQP `type` property. */
  type: string;
  /** Milliseconds since the epoch when the message was built; sent as the AMQP `timestamp` (seconds). */
  timestampMs: number;
  body: Record<string, unknown>;
}

/** `[seconds, microseconds]`, the `event_time` form of Synnefo and of Ganeti job timestamps. */
export type SplitTime = [number, number];

export function splitTime(epochMs: number): SplitTime {
  const us = Math.round(epochMs * 1000);
  return [Math.floor(us / 1_000_000), us % 1_000_000];
}

/** AMQP's short strings (message id, type, routing key) hold at most 255 bytes. */
export const AMQP_SHORTSTR_BYTES = 255;

/** UTF-8 takes at most 3 bytes per UTF-16 unit, so short text (nearly all) needs no encoding. */
function fitsShortstr(text: string): boolean {
  return text.length * 3 <= AMQP_SHORTSTR_BYTES || Buffer.byteLength(text, 'utf8') <= AMQP_SHORTSTR_BYTES;
}

/**
 * A message id that fits AMQP: ids are built from names (an instance name can be a 253-character
 * host name), and one over 255 bytes cannot be sent at all. A longer id keeps its first 200 bytes
 * and gets a digest of the whole, so it stays deterministic and distinct.
 */
export function boundedMessageId(id: string): string {
  if (fitsShortstr(id)) return id;
  const bytes = Buffer.from(id, 'utf8');
  // A character cut in two decodes as U+FFFD (3 bytes): 200 + 2 + 1 + 32 stays under the limit.
  return `${bytes.subarray(0, 200).toString('utf8')}~${hash('sha256', bytes, 'hex').slice(0, 32)}`;
}

/** Why the broker could not take this message, or undefined when it can. */
export function unpublishableReason(msg: Pick<OutgoingMessage, 'messageId' | 'type' | 'routingKey'>): string | undefined {
  // Runs on every publish: the common case allocates nothing.
  if (fitsShortstr(msg.messageId) && fitsShortstr(msg.type) && fitsShortstr(msg.routingKey)) return undefined;
  for (const [field, value] of [['message id', msg.messageId], ['type', msg.type], ['routing key', msg.routingKey]] as const) {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > AMQP_SHORTSTR_BYTES) return `its ${field} is ${bytes} bytes long; AMQP allows ${AMQP_SHORTSTR_BYTES} (${JSON.stringify(value.slice(0, 60))}…)`;
  }
  return undefined;
}
