// The unit every producer hands to the publisher or the outbox: a JSON body with its routing key and
// the AMQP properties that make it identifiable (architecture invariant 1: new information goes into
// properties, the JSON fields stay Synnefo's).

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
