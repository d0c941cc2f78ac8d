// Turns a parsed Ganeti job into eventd's messages, one decision per op (spec §2.2–§2.3, latest
// Synnefo format). Pure: the clock and the cluster name come in through the context.
//
// Differences from Synnefo's eventd, on purpose:
// - An op whose status is unknown is `invalid`, and the other ops of the job are still built
//   (Synnefo raised and skipped the rest of the job).
// - A message is never dropped for lack of a timestamp: `event_time` falls back from the status's
//   own timestamp to the job's `end_timestamp`, then to its `received_timestamp` (§2.2 stops at the
//   end timestamp, which is null for a job that has not finished).
// - `waitlock` (older Ganeti) is published as `waiting`, the only name the dispatcher knows.
// - Instance tag ops are reported when `canceled` too (Synnefo misspelled it "cancelled").
// - No `instance_nics` / `instance_disks` / `instance_hvparams` extras: Synnefo filled them from a
//   live LUXI/config query (§2.4), which is I/O and, off the master, wrong (network UUIDs). In this
//   project snf-ganeti-hook publishes the NICs from the post-hook environment instead.
// - Ganeti writes reason-trail timestamps as nanosecond integers above 2^53; JSON.parse rounds
//   them, so a `job_fields` that carries the whole input (failed create) has them rounded.

import { CLUSTER_KEY, HEARTBEAT_KEY, routingKeyForName } from '../common/topology.js';
import { boundedMessageId, type OutgoingMessage, type SplitTime } from '../common/message.js';
import { own, type GanetiJob, type OpInput, type QueuedOp } from './jobfile.js';

export interface BuildContext {
  /** The Ganeti cluster name (ssconf), sent as `cluster` and part of every message id. */
  cluster: string;
  /** The build time, sent as the AMQP timestamp; not part of the body or the id. */
  nowMs: number;
  /** Whether this eventd reports the object (instance or network) with this name. */
  acceptsName: (objectName: string) => boolean;
}

export interface PublishEvent {
  opIndex: number;
  kind: 'publish';
  /** `<status>:<last log serial>`: changes on every status change and every new log line. */
  transition: string;
  message: OutgoingMessage;
  /** Something odd but not fatal about the op (e.g. a snapshot without a `gnt:user` reason). */
  warning?: string;
}

export interface IgnoredEvent {
  opIndex: number;
  kind: 'ignored';
  reason: string;
}

export interface InvalidEvent {
  opIndex: number;
  kind: 'invalid';
  reason: string;
}

export type OpEvent = PublishEvent | IgnoredEvent | InvalidEvent;

/** The statuses as published. `waitlock` is folded into `waiting` before it gets here. */
export type PublishedStatus = 'queued' | 'waiting' | 'canceling' | 'running' | 'success' | 'error' | 'canceled';

const STATUS_ALIASES: Readonly<Record<string, PublishedStatus>> = {
  queued: 'queued',
  waiting: 'waiting',
  waitlock: 'waiting',
  canceling: 'canceling',
  running: 'running',
  success: 'success',
  error: 'error',
  canceled: 'canceled',
};

const FINALIZED: ReadonlySet<PublishedStatus> = new Set(['success', 'error', 'canceled']);

/** One entry per op of the job, in op order. */
export function buildOpEvents(job: GanetiJob, ctx: BuildContext): OpEvent[] {
  return job.ops.map((op, opIndex) => buildOpEvent(job, op, opIndex, ctx));
}

function buildOpEvent(job: GanetiJob, op: QueuedOp, opIndex: number, ctx: BuildContext): OpEvent {
  const status = publishedStatus(op.status);
  if (status === undefined) return { opIndex, kind: 'invalid', reason: `unknown op status ${JSON.stringify(op.status)}` };

  const draft = draftFor(op.input, status, ctx);
  if (draft.kind !== 'draft') return { opIndex, ...draft };

  const eventTime = eventTimeFor(job, op, status);
  if (eventTime === null) return { opIndex, kind: 'invalid', reason: 'the op and the job have no timestamp to use as event_time' };

  // The draft's body is this call's own object: completed in place rather than copied (a copy of
  // every body costs as much as parsing the job file did).
  const body: Record<string, unknown> = draft.body;
  body.event_time = eventTime;
  body.operation = op.input.OP_ID;
  body.status = status;
  body.cluster = ctx.cluster;
  body.logmsg = op.log.at(-1)?.message ?? null;
  body.result = op.result;
  body.jobId = job.id;
  const transition = `${status}:${lastLogSerial(op)}`;
  const message: OutgoingMessage = {
    messageId: boundedMessageId(`${ctx.cluster}:${job.id}:${opIndex}:${transition}`),
    routingKey: draft.routingKey,
    type: draft.body.type,
    timestampMs: ctx.nowMs,
    body,
  };
  const event: PublishEvent = { opIndex, kind: 'publish', transition, message };
  return draft.warning === undefined ? event : { ...event, warning: draft.warning };
}

export function publishedStatus(status: string): PublishedStatus | undefined {
  return Object.hasOwn(STATUS_ALIASES, status) ? STATUS_ALIASES[status] : undefined;
}

/** Serials are job-wide and increasing, so the last entry's serial identifies the op's log state. */
export function lastLogSerial(op: QueuedOp): number {
  return op.log.at(-1)?.serial ?? 0;
}

// ---- event_time (§2.2) --------------------------------------------------------------------------

/**
 * The timestamp of the moment the op reached its status, or a fallback: ops after a failed op end
 * in `error` with null timestamps, and then the job's end is the best we know.
 */
export function eventTimeFor(job: GanetiJob, op: QueuedOp, status: PublishedStatus): SplitTime | null {
  return statusTimestamp(job, op, status) ?? job.endTimestamp ?? job.receivedTimestamp;
}

function statusTimestamp(job: GanetiJob, op: QueuedOp, status: PublishedStatus): SplitTime | null {
  switch (status) {
    case 'queued':
      return job.receivedTimestamp;
    case 'waiting':
    case 'canceling':
      return op.startTimestamp;
    case 'running':
      return op.execTimestamp;
    case 'success':
    case 'error':
    case 'canceled':
      return op.endTimestamp;
  }
}

// ---- per-family message drafts (§2.3) -----------------------------------------------------------

interface Draft {
  kind: 'draft';
  routingKey: string;
  /** The family's own fields; the common fields are added by buildOpEvent. */
  body: { type: string } & Record<string, unknown>;
  warning?: string;
}

type NotPublished = { kind: 'ignored'; reason: string } | { kind: 'invalid'; reason: string };

const ignored = (reason: string): NotPublished => ({ kind: 'ignored', reason });
const invalid = (reason: string): NotPublished => ({ kind: 'invalid', reason });

/** Like Synnefo, the second `_` token of OP_ID picks the family: OP_INSTANCE_CREATE → INSTANCE. */
function draftFor(input: OpInput, status: PublishedStatus, ctx: BuildContext): Draft | NotPublished {
  switch (input.OP_ID.split('_')[1]) {
    case 'INSTANCE':
      return instanceDraft(input, status, ctx);
    case 'NETWORK':
      return networkDraft(input, ctx);
    case 'CLUSTER':
      return clusterDraft(input);
    case 'TAGS':
      return tagsDraft(input, status, ctx);
    default:
      return ignored(`${input.OP_ID} is not reported`);
  }
}

function instanceDraft(input: OpInput, status: PublishedStatus, ctx: BuildContext): Draft | NotPublished {
  const instance = singleInstance(input);
  if (typeof instance !== 'string') return instance;
  if (!ctx.acceptsName(instance)) return ignored(`instance ${JSON.stringify(instance)} is not ours`);
  const { jobFields, warning } = instanceJobFields(input, status);
  const draft: Draft = {
    kind: 'draft',
    routingKey: routingKeyForName('op', instance),
    body: { type: 'ganeti-op-status', instance, operation: input.OP_ID, tags: tagsOf(input), job_fields: jobFields },
  };
  return warning === undefined ? draft : { ...draft, warning };
}

/**
 * `instance_name`, or the only element of `instances`. The dispatcher cannot apply one message to
 * several instances, so ops on zero or many instances are not reported (Synnefo 6a515dc06).
 */
function singleInstance(input: OpInput): string | NotPublished {
  const name = own(input, 'instance_name');
  if (typeof name === 'string' && name !== '') return name;
  if (name !== undefined && name !== null && name !== '') return invalid(`instance_name is not a string: ${JSON.stringify(name)}`);
  const instances = own(input, 'instances');
  if (!Array.isArray(instances) || instances.length !== 1) return ignored(`${input.OP_ID} does not name exactly one instance`);
  const [only] = instances;
  if (typeof only !== 'string' || only === '') return invalid(`instances[0] is not an instance name: ${JSON.stringify(only)}`);
  return only;
}

/**
 * What the dispatcher needs to update its row. Absent inputs are sent as null, as Synnefo's
 * `get_field` did, so the key set of `job_fields` is the same for every op of a kind.
 */
function instanceJobFields(input: OpInput, status: PublishedStatus): { jobFields: Record<string, unknown>; warning?: string } {
  const opId = input.OP_ID;
  if (opId === 'OP_INSTANCE_CREATE' && status === 'error') {
    // The whole input, so that the dispatcher can resubmit the failed create (Synnefo 4e3b9527e).
    return { jobFields: { ...input } };
  }
  if (opId === 'OP_INSTANCE_CREATE' || opId === 'OP_INSTANCE_SET_PARAMS') {
    return { jobFields: pick(input, ['nics', 'disks', 'hvparams', 'beparams']) };
  }
  if (opId === 'OP_INSTANCE_SNAPSHOT') return snapshotJobFields(input);
  return { jobFields: {} };
}

/**
 * Cyclades passes `{"snapshot_id": …}` as the RAPI reason, which Ganeti records as the first
 * reason-trail entry `["gnt:user", <reason>, <ns>]`; the dispatcher reads it back from
 * `disks[0][1].snapshot_info` (Ganeti snapshots one disk at a time). A malformed reason is only a
 * warning, as in Synnefo: the message still goes out.
 */
function snapshotJobFields(input: OpInput): { jobFields: Record<string, unknown>; warning?: string } {
  const disks = structuredClone(own(input, 'disks') ?? null);
  const reason = own(input, 'reason');
  const first: unknown = Array.isArray(reason) ? reason[0] : undefined;
  const firstDisk: unknown = Array.isArray(disks) && Array.isArray(disks[0]) ? disks[0][1] : undefined;
  if (!Array.isArray(first) || first[0] !== 'gnt:user') {
    return { jobFields: { disks }, warning: 'snapshot op without a "gnt:user" reason: no snapshot_info' };
  }
  if (!isObject(firstDisk)) {
    return { jobFields: { disks }, warning: 'snapshot op whose disks[0][1] is not an object: no snapshot_info' };
  }
  firstDisk.snapshot_info = first[1];
  return { jobFields: { disks } };
}

/** Sent only when `network_name` is present; a missing parameter is null, as in Synnefo. */
function networkDraft(input: OpInput, ctx: BuildContext): Draft | NotPublished {
  const network = own(input, 'network_name');
  if (network === undefined || network === null || network === '') return ignored(`${input.OP_ID} has no network_name`);
  if (typeof network !== 'string') return invalid(`network_name is not a string: ${JSON.stringify(network)}`);
  if (!ctx.acceptsName(network)) return ignored(`network ${JSON.stringify(network)} is not ours`);
  const fields = pick(input, ['network', 'gateway', 'add_reserved_ips', 'remove_reserved_ips', 'group_name']);
  return {
    kind: 'draft',
    routingKey: routingKeyForName('network', network),
    body: {
      type: 'ganeti-network-status',
      network,
      operation: input.OP_ID,
      job_fields: {
        subnet: fields.network,
        gateway: fields.gateway,
        add_reserved_ips: fields.add_reserved_ips,
        remove_reserved_ips: fields.remove_reserved_ips,
        group_name: fields.group_name,
      },
    },
  };
}

/** Only OP_CLUSTER_SET_PARAMS tells the dispatcher something (it refreshes the backend). */
function clusterDraft(input: OpInput): Draft | NotPublished {
  if (input.OP_ID !== 'OP_CLUSTER_SET_PARAMS') return ignored(`${input.OP_ID} is not reported`);
  return { kind: 'draft', routingKey: CLUSTER_KEY, body: { type: 'ganeti-cluster-status', operation: input.OP_ID } };
}

/**
 * Two uses of tag ops: the dispatcher's status check adds a dry-run cluster tag
 * `snf:eventd:heartbeat:…` and waits for eventd to answer while the job waits (§2.6); and a
 * finished instance tag op updates the VM's tags.
 */
function tagsDraft(input: OpInput, status: PublishedStatus, ctx: BuildContext): Draft | NotPublished {
  const kind = own(input, 'kind');
  if (kind === 'cluster') {
    if (!isHeartbeat(input, status)) return ignored('cluster tag op that is not an eventd heartbeat');
    return { kind: 'draft', routingKey: HEARTBEAT_KEY, body: { type: 'eventd-heartbeat', cluster: ctx.cluster } };
  }
  if (kind !== 'instance') return ignored(`tag op on a ${JSON.stringify(kind)} is not reported`);
  if (!FINALIZED.has(status)) return ignored('instance tag op is reported when finalized');
  const instance = own(input, 'name');
  if (typeof instance !== 'string' || instance === '') return invalid(`instance tag op without an instance name: ${JSON.stringify(instance)}`);
  if (!ctx.acceptsName(instance)) return ignored(`instance ${JSON.stringify(instance)} is not ours`);
  return {
    kind: 'draft',
    routingKey: routingKeyForName('op', instance),
    body: {
      type: 'ganeti-op-status',
      instance,
      operation: input.OP_ID,
      tags: tagsOf(input),
      job_fields: { dry_run: own(input, 'dry_run') ?? null },
    },
  };
}

/** `dry_run` is checked after `kind`, so only cluster tags can be heartbeats (Synnefo 02082ac17). */
function isHeartbeat(input: OpInput, status: PublishedStatus): boolean {
  const tags = own(input, 'tags');
  const first: unknown = Array.isArray(tags) ? tags[0] : undefined;
  return (
    input.OP_ID === 'OP_TAGS_SET' &&
    status === 'waiting' &&
    own(input, 'dry_run') === true &&
    typeof first === 'string' &&
    first.startsWith('snf:eventd:heartbeat')
  );
}

// ---- small helpers ------------------------------------------------------------------------------

function tagsOf(input: OpInput): unknown[] {
  const tags = own(input, 'tags');
  return Array.isArray(tags) ? tags : [];
}

function pick<K extends string>(input: OpInput, keys: readonly K[]): Record<K, unknown> {
  const out = {} as Record<K, unknown>;
  for (const key of keys) out[key] = own(input, key) ?? null;
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
