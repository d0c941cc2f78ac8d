// One snf-image progress object → the message the monitor publishes (spec §1.5 C): every original
// field kept (`timestamp` included), plus `instance` and `event_time` (the monitor's clock).

import { hash } from 'node:crypto';
import { boundedMessageId, splitTime, type OutgoingMessage } from '../common/message.js';
import { routingKeyForName } from '../common/topology.js';

/** AMQP `type` of an object without a string `type` field (the body is still published as it is). */
export const UNTYPED = 'image-unknown';

/**
 * Deterministic id: the same object at the same place of the same stream always gets the same id, so
 * a replay (outbox after a crash, broker redelivery) is recognisable.
 */
export function progressMessageId(instance: string, raw: string, index: number): string {
  const digest = hash('sha256', raw, 'hex').slice(0, 16);
  return boundedMessageId(`progress:${instance}:${digest}:${index}`);
}

/** Builds the message around `object.value`, which becomes its body (it is not copied, for speed). */
export function buildProgressMessage(
  instance: string,
  object: { raw: string; value: Record<string, unknown>; index: number },
  nowMs: number,
): OutgoingMessage {
  const body = object.value;
  body['event_time'] = splitTime(nowMs);
  body['instance'] = instance;
  return {
    messageId: progressMessageId(instance, object.raw, object.index),
    routingKey: routingKeyForName('progress', instance),
    type: typeof object.value['type'] === 'string' ? (object.value['type'] as string) : UNTYPED,
    timestampMs: nowMs,
    body,
  };
}

/** An object read from stdin, kept compactly until it is needed as a message. */
export interface RawProgress {
  raw: string;
  index: number;
  /** The monitor's clock when the object was read (its `event_time`). */
  nowMs: number;
}

export function rebuildProgressMessage(instance: string, p: RawProgress): OutgoingMessage {
  return buildProgressMessage(instance, { raw: p.raw, value: JSON.parse(p.raw) as Record<string, unknown>, index: p.index }, p.nowMs);
}

/**
 * The published body as JSON text, for the `[MONITOR]` echo: the object exactly as snf-image wrote it
 * with `event_time` and `instance` appended (if the object had them already, JSON's last-one-wins
 * reading gives the monitor's values, as in the published body). Cheaper than serializing the body.
 */
export function progressBodyText(instance: string, object: { raw: string; value: Record<string, unknown> }, nowMs: number): string {
  const [s, us] = splitTime(nowMs);
  let empty = true;
  for (const _ in object.value) {
    empty = false;
    break;
  }
  return `${object.raw.slice(0, -1)}${empty ? '' : ','}"event_time":[${s},${us}],"instance":${JSON.stringify(instance)}}`;
}
