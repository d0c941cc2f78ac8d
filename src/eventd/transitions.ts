// Publish on change (spec §6.7): Ganeti rewrites a job file on every status change and on every
// log line, and each write shows all ops of the job. Synnefo re-sent every op on every write; we
// send an op only when its transition (`<status>:<last log serial>`) differs from the last one
// published for it. The record is what eventd keeps durably per job, so that a restart or a rescan
// of the queue publishes exactly the transitions not yet published.

import type { OpEvent, PublishEvent } from './opmessages.js';

/** The last published transition per op index (null: nothing published for that op yet). */
export interface JobRecord {
  ops: (string | null)[];
}

/** The publish entries whose transition is not the one already recorded for their op. */
export function opsToPublish(record: JobRecord | undefined, events: readonly OpEvent[]): PublishEvent[] {
  return events.filter(
    (event): event is PublishEvent => event.kind === 'publish' && event.transition !== (record?.ops[event.opIndex] ?? null),
  );
}

/**
 * The record once `published` went out (the caller passes only what the broker confirmed). Ops
 * not in `published` keep their previous transition; the input record is not modified.
 */
export function recordAfter(record: JobRecord | undefined, published: readonly PublishEvent[]): JobRecord {
  const ops = [...(record?.ops ?? [])];
  for (const event of published) {
    while (ops.length <= event.opIndex) ops.push(null);
    ops[event.opIndex] = event.transition;
  }
  return { ops };
}
