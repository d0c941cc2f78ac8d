// The dispatcher's update rules (spec §5.3–§5.7), pure: a message and the current rows in, the planned
// change out. No I/O here; store.ts loads the rows, calls these and writes what they return.
//
// Ordering. Delivery is at least once, and several dispatchers may apply one stream in any order, so
// every rule must give the same rows whatever the order (architecture invariant 3). Each aspect of a
// row therefore has its own clock and only a strictly newer event changes it (last writer wins):
//
// - operstate and `deleted`: `backendtime`, the rule of spec §5.3, advanced by the successes that
//   imply a state (CREATE, STARTUP, REBOOT, SHUTDOWN, REMOVE; ADD, CONNECT, DISCONNECT, REMOVE for
//   networks). A success that sets no state (SET_PARAMS, tags) does not advance it, or an older
//   STARTUP success delivered after it would be dropped and the VM would show the wrong state.
//   CREATE (network ADD) error/canceled gives ERROR only to an object that never reached a state
//   through a success, and does not advance `backendtime`: a failed duplicate create (fixture jobs 18
//   and 19) must not break an existing object, and a late-delivered older success must still apply.
// - the backend job fields: the job key (event_time, status rank, job id). Non-final statuses never
//   move `backendtime`, so without their own clock an old `running` could overwrite a newer `error`
//   (spec §6.9). Ties apply, so in-order `running` updates show the newest log line.
// - NICs: `nicstime` (the hook's and eventd's `instance_nics`; both run on the master node).
// - build progress: `progresstime`, the monitor's clock on the VM's primary node. Progress messages
//   never read or move `backendtime` (spec §6.8: the monitor's clock must not make a CREATE success
//   look old), and a copy progress applies only while the VM is in BUILD, so a late one cannot undo
//   the 100 % that CREATE success sets (spec §6.9: no ordering between the op and progress queues).
// - tags, external IP reservations: one clock per tag and per address, since their messages are
//   deltas. Diagnostics are a set (deduplicated by content), so they need no clock.

import { createHash } from 'node:crypto';
import {
  FINALIZED,
  type ClusterStatusMessage,
  type CopyProgressMessage,
  type DiagnosticMessage,
  type HeartbeatMessage,
  type JobReport,
  type JobStatus,
  type Micros,
  type NetStatusMessage,
  type NetworkStatusMessage,
  type NicReport,
  type OpStatusMessage,
} from './messages.js';

export type VmOperstate = 'BUILD' | 'STARTED' | 'STOPPED' | 'DESTROYED' | 'ERROR';
export type NetworkOperstate = 'PENDING' | 'ACTIVE' | 'ERROR' | 'DELETED';
export type FirewallProfile = 'ENABLED' | 'DISABLED' | 'PROTECTED';

/** Per tag: present or removed, and the event time of the op that said so. */
export type TagClock = Record<string, { present: boolean; time: Micros }>;

export interface JobFields {
  backendjobid: number | null;
  backendopcode: string | null;
  backendjobstatus: JobStatus | null;
  backendlogmsg: string | null;
  /** Event time of the message the job fields come from. */
  jobtime: Micros;
}

export interface VmRow extends JobFields {
  id: number;
  name: string;
  backendId: number | null;
  operstate: VmOperstate;
  /** Microseconds since the epoch, UTC; 0 before the first state-setting event (Synnefo's datetime.min). */
  backendtime: Micros;
  buildpercentage: number;
  progresstime: Micros;
  nicstime: Micros;
  tags: TagClock;
  deleted: boolean;
}

export interface NicRow {
  nicIndex: number;
  name: string | null;
  uuid: string | null;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  networkId: number | null;
  link: string | null;
  mode: string | null;
  firewallProfile: FirewallProfile | null;
}

export interface NetworkRow {
  id: number;
  name: string;
  operstate: NetworkOperstate;
  subnet: string | null;
  gateway: string | null;
  deleted: boolean;
}

export interface BackendNetworkRow extends JobFields {
  id: number;
  networkId: number;
  backendId: number;
  operstate: NetworkOperstate;
  backendtime: Micros;
}

export interface BackendRow {
  id: number;
  clustername: string;
  clusterJobid: number | null;
  clusterOpcode: string | null;
  clusterJobstatus: JobStatus | null;
  clusterLogmsg: string | null;
  clusterTime: Micros;
  /** The newest heartbeat from any node of the cluster. */
  heartbeatNode: string | null;
  heartbeatRole: string | null;
  heartbeatOutbox: number | null;
  heartbeatTime: Micros;
  /** The newest heartbeat from the master: the node that publishes the cluster's job events. */
  masterNode: string | null;
  masterTime: Micros;
}

export interface ReservationRow {
  networkId: number;
  address: string;
  /** Reserved outside any NIC (OP_NETWORK_SET_PARAMS `add_reserved_ips`). */
  external: boolean;
  /** Event time of the last add/remove of this address; kept after a removal, to order late adds. */
  externalTime: Micros;
  /** The NIC holding the address, if any. */
  vmId: number | null;
  nicIndex: number | null;
}

export interface DiagnosticRow {
  source: string;
  level: 'DEBUG' | 'INFO' | 'WARNING' | 'ERROR';
  message: string;
  details: string | null;
  sourceDate: Micros;
}

export type IgnoreReason =
  /** `event_time` not newer than what the row already reflects. */
  | 'stale'
  /** The VM or network was deleted before this event. */
  | 'deleted'
  /** The name is not `<prefix>-<id>` / `<prefix>-net-<id>`. */
  | 'not-ours'
  /** No row and `--strict`: Cyclades has not created the object. */
  | 'unknown'
  /** A copy progress after the VM left BUILD. */
  | 'not-building'
  /** A diagnostic recorded already (a redelivered progress message). */
  | 'duplicate';

export const IGNORE_REASONS: Record<IgnoreReason, string> = {
  stale: 'event_time not newer than the row',
  deleted: 'the object was deleted before this event',
  'not-ours': 'name without our prefix',
  unknown: 'no such object and --strict',
  'not-building': 'copy progress after the VM left BUILD',
  duplicate: 'diagnostic recorded already',
};

export type Decision<P> = { result: 'applied'; change: P } | { result: 'ignored'; reason: IgnoreReason };

const ignored = (reason: IgnoreReason): { result: 'ignored'; reason: IgnoreReason } => ({ result: 'ignored', reason });

// ---------------------------------------------------------------------------------------------
// Names

/** The objects a message is about, if their names are ours (spec §5.3 `instance_from_msg`). */
export function vmNameIsOurs(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}-`) && /^\d+$/.test(name.slice(prefix.length + 1));
}

export function networkNameIsOurs(name: string, prefix: string): boolean {
  return name.startsWith(`${prefix}-net-`) && /^\d+$/.test(name.slice(prefix.length + 5));
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

const STATUS_RANK: Record<JobStatus, number> = {
  queued: 0,
  waiting: 1,
  canceling: 2,
  running: 3,
  canceled: 4,
  success: 4,
  error: 4,
};

/** Whether a report may replace the shown job fields: its job key is not older (ties apply). */
export function jobKeyNotOlder(current: JobFields, report: JobReport): boolean {
  if (report.eventTime !== current.jobtime) return report.eventTime > current.jobtime;
  const rank = current.backendjobstatus === null ? -1 : STATUS_RANK[current.backendjobstatus];
  if (STATUS_RANK[report.status] !== rank) return STATUS_RANK[report.status] > rank;
  return report.jobId >= (current.backendjobid ?? -1);
}

function jobFields(report: JobReport): JobFields {
  return {
    backendjobid: report.jobId,
    backendopcode: report.operation,
    backendjobstatus: report.status,
    backendlogmsg: report.logmsg,
    jobtime: report.eventTime,
  };
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return typeof a === 'object' && typeof b === 'object' && a !== null && b !== null && JSON.stringify(a) === JSON.stringify(b);
}

/** The fields of `patch` whose value differs from `row`. */
export function changedFields<R extends object>(row: R, patch: Partial<R>): Partial<R> {
  const out: Partial<R> = {};
  for (const key of Object.keys(patch) as (keyof R)[]) {
    if (!equal(row[key], patch[key])) out[key] = patch[key];
  }
  return out;
}

const isEmpty = (o: object): boolean => Object.keys(o).length === 0;

/**
 * A deleted object takes no news: a message newer than its deletion is ignored. An older one is
 * history that another delivery order would have applied before the deletion, so it still goes
 * through the rules (which no longer let it change the state), and every order ends in one state.
 */
const newerThanDeletion = (deleted: boolean, deletedAt: Micros, t: Micros): boolean => deleted && t > deletedAt;

// ---------------------------------------------------------------------------------------------
// VMs

/** operstate after a successful op (Synnefo `OPER_STATE_FROM_OPCODE`); other opcodes set none. */
export const VM_STATE_FROM_SUCCESS: Readonly<Record<string, VmOperstate>> = {
  OP_INSTANCE_CREATE: 'STARTED',
  OP_INSTANCE_STARTUP: 'STARTED',
  OP_INSTANCE_REBOOT: 'STARTED',
  OP_INSTANCE_SHUTDOWN: 'STOPPED',
  OP_INSTANCE_REMOVE: 'DESTROYED',
};

/** The firewall tag value → Cyclades profile (spec §5.4); an unknown value gives none, as in Synnefo. */
export const FIREWALL_PROFILES: Readonly<Record<string, FirewallProfile>> = {
  protected: 'ENABLED',
  unprotected: 'DISABLED',
  limited: 'PROTECTED',
};

export interface VmState {
  row: VmRow;
  nics: readonly NicRow[];
}

export interface VmChange {
  row: Partial<VmRow>;
  /** The VM's complete new NIC list, when it changes. */
  nics?: NicRow[];
}

/** What the store resolved for a message: the backend of its `cluster`, the ids of network names. */
export interface Resolved {
  backendId: number | null;
  networkIds: ReadonlyMap<string, number>;
}

export function nicRows(reports: readonly NicReport[], networkIds: ReadonlyMap<string, number>): NicRow[] {
  return reports
    .map((r) => ({
      nicIndex: r.index,
      name: r.name,
      uuid: r.uuid,
      mac: r.mac,
      ipv4: r.ipv4,
      ipv6: r.ipv6,
      networkId: r.network === null ? null : (networkIds.get(r.network) ?? null),
      link: r.link,
      mode: r.mode,
      firewallProfile: r.firewall === null ? null : (FIREWALL_PROFILES[r.firewall] ?? null),
    }))
    .sort((a, b) => a.nicIndex - b.nicIndex);
}

function setTags(clock: TagClock, tags: readonly string[], present: boolean, time: Micros): TagClock {
  const next = { ...clock };
  for (const tag of tags) {
    const entry = next[tag];
    if (entry === undefined || time > entry.time) next[tag] = { present, time };
  }
  return next;
}

/** The tags Ganeti has on the instance, sorted. */
export const presentTags = (clock: TagClock): string[] =>
  Object.keys(clock)
    .filter((t) => clock[t]?.present)
    .sort();

function finishVm(state: VmState, patch: Partial<VmRow>, nics: NicRow[] | undefined): Decision<VmChange> {
  const row = changedFields(state.row, patch);
  const nicsChanged = nics !== undefined && !equal(nics, state.nics);
  if (isEmpty(row) && !nicsChanged) return ignored('stale');
  return { result: 'applied', change: nicsChanged ? { row, nics } : { row } };
}

function adoptBackend(state: VmState, resolved: Resolved, patch: Partial<VmRow>): void {
  // A VM never changes cluster in Ganeti; the first known one is kept.
  if (state.row.backendId === null && resolved.backendId !== null) patch.backendId = resolved.backendId;
}

/** `ganeti-op-status` (spec §5.4), minus what needs Cyclades itself (quotas, flavors, RAPI, disks). */
export function decideOpStatus(msg: OpStatusMessage, state: VmState, resolved: Resolved): Decision<VmChange> {
  const { row } = state;
  const t = msg.eventTime;
  if (newerThanDeletion(row.deleted, row.backendtime, t)) return ignored('deleted');
  const patch: Partial<VmRow> = {};
  let nics: NicRow[] | undefined;
  adoptBackend(state, resolved, patch);
  if (jobKeyNotOlder(row, msg)) Object.assign(patch, jobFields(msg));

  const finalized = FINALIZED.has(msg.status);
  const isCreate = msg.operation === 'OP_INSTANCE_CREATE';
  if (t > row.backendtime) {
    if (msg.status === 'success' && VM_STATE_FROM_SUCCESS[msg.operation] !== undefined) {
      Object.assign(patch, { operstate: VM_STATE_FROM_SUCCESS[msg.operation], backendtime: t });
      if (msg.operation === 'OP_INSTANCE_REMOVE') {
        // The NICs go with the VM; the store releases their addresses.
        Object.assign(patch, { deleted: true, nicstime: Math.max(t, row.nicstime) });
        nics = [];
      }
    }
  }
  if (isCreate && (msg.status === 'error' || msg.status === 'canceled') && row.backendtime === 0) patch.operstate = 'ERROR';
  // The deployment is over, whichever state a newer op has set meanwhile.
  if (isCreate && msg.status === 'success') patch.buildpercentage = 100;

  if (msg.status === 'success' && !msg.dryRun) {
    if (isCreate || msg.operation === 'OP_TAGS_SET') patch.tags = setTags(row.tags, msg.tags, true, t);
    else if (msg.operation === 'OP_TAGS_DEL') patch.tags = setTags(row.tags, msg.tags, false, t);
  }

  if (finalized && msg.nics !== null && nics === undefined && t > row.nicstime) {
    nics = nicRows(msg.nics, resolved.networkIds);
    patch.nicstime = t;
  }
  return finishVm(state, patch, nics);
}

/** `ganeti-net-status` from the hook (spec §3): the VM's NICs become the message's NICs. */
export function decideNetStatus(msg: NetStatusMessage, state: VmState, resolved: Resolved): Decision<VmChange> {
  if (newerThanDeletion(state.row.deleted, state.row.backendtime, msg.eventTime)) return ignored('deleted');
  if (msg.eventTime <= state.row.nicstime) return ignored('stale');
  const patch: Partial<VmRow> = { nicstime: msg.eventTime };
  adoptBackend(state, resolved, patch);
  return finishVm(state, patch, nicRows(msg.nics, resolved.networkIds));
}

/** `image-copy-progress` (spec §5.6): the build percentage, an int clamped to 100. */
export function decideCopyProgress(msg: CopyProgressMessage, state: VmState): Decision<VmChange> {
  const { row } = state;
  if (newerThanDeletion(row.deleted, row.backendtime, msg.eventTime)) return ignored('deleted');
  if (row.operstate !== 'BUILD') return ignored('not-building');
  if (msg.eventTime <= row.progresstime) return ignored('stale');
  return finishVm(state, { buildpercentage: Math.min(100, Math.floor(msg.progress)), progresstime: msg.eventTime }, undefined);
}

/** The diagnostic a progress message records (spec §5.6 sources, levels and texts). */
export function diagnosticOf(msg: DiagnosticMessage): DiagnosticRow {
  const task = msg.subtype === 'task-start' || msg.subtype === 'task-end';
  const source = task ? `image-helper-${msg.subtype}` : msg.type;
  let level: DiagnosticRow['level'] = 'DEBUG';
  if (msg.type === 'image-error' || msg.subtype === 'error') level = 'ERROR';
  else if (msg.type === 'image-warning' || msg.subtype === 'warning') level = 'WARNING';
  else if (msg.subtype === 'info') level = 'INFO';
  // snf-image keeps a leading space on helper warnings (spec §6.14); it carries no meaning.
  let message = task ? (msg.task ?? '') : msg.messages.map((m) => m.trim()).filter((m) => m !== '').join(' ');
  if (message === '') {
    const words = source.replace(/-/g, ' ');
    message = words.charAt(0).toUpperCase() + words.slice(1);
  }
  return { source, level, message, details: msg.stderr, sourceDate: msg.eventTime };
}

/** Identifies a diagnostic, so that a redelivered progress message does not record it twice. */
export function diagnosticKey(vmId: number, d: DiagnosticRow): string {
  return createHash('sha256')
    .update(JSON.stringify([vmId, d.source, d.level, d.message, d.details, d.sourceDate]))
    .digest('hex');
}

export function decideDiagnostic(msg: DiagnosticMessage, state: VmState): Decision<DiagnosticRow> {
  if (newerThanDeletion(state.row.deleted, state.row.backendtime, msg.eventTime)) return ignored('deleted');
  return { result: 'applied', change: diagnosticOf(msg) };
}

// ---------------------------------------------------------------------------------------------
// Networks

/** Backend network operstate after a successful op (spec §5.5); SET_PARAMS, QUERY_DATA set none. */
export const NETWORK_STATE_FROM_SUCCESS: Readonly<Record<string, NetworkOperstate>> = {
  OP_NETWORK_ADD: 'PENDING',
  OP_NETWORK_CONNECT: 'ACTIVE',
  OP_NETWORK_DISCONNECT: 'PENDING',
  OP_NETWORK_REMOVE: 'DELETED',
};

export interface ExternalReservation {
  address: string;
  reserved: boolean;
  time: Micros;
}

export interface NetworkChange {
  network: Partial<NetworkRow>;
  backendNetwork: Partial<BackendNetworkRow>;
  reservations: ExternalReservation[];
}

/** `deletedAt`: for a deleted network, the newest event time of its backend networks (their REMOVE). */
export function decideNetworkStatus(msg: NetworkStatusMessage, network: NetworkRow, bn: BackendNetworkRow, deletedAt: Micros): Decision<NetworkChange> {
  const t = msg.eventTime;
  if (newerThanDeletion(network.deleted, deletedAt, t)) return ignored('deleted');
  const bnPatch: Partial<BackendNetworkRow> = {};
  const netPatch: Partial<NetworkRow> = {};
  let reservations: ExternalReservation[] = [];
  if (jobKeyNotOlder(bn, msg)) Object.assign(bnPatch, jobFields(msg));
  if (t > bn.backendtime) {
    const state = NETWORK_STATE_FROM_SUCCESS[msg.operation];
    if (msg.status === 'success' && state !== undefined) Object.assign(bnPatch, { operstate: state, backendtime: t });
  }
  if (msg.operation === 'OP_NETWORK_ADD' && (msg.status === 'error' || msg.status === 'canceled') && bn.backendtime === 0) {
    bnPatch.operstate = 'ERROR';
  }
  if (msg.status === 'success' && msg.operation === 'OP_NETWORK_ADD') {
    if (msg.subnet !== null) netPatch.subnet = msg.subnet;
    if (msg.gateway !== null) netPatch.gateway = msg.gateway;
  }
  // Only a successful job changed Ganeti's pool (Synnefo reserved at any status and ignored removals).
  // OP_NETWORK_ADD reserves its `add_reserved_ips` in Ganeti too. A deleted network has no pool.
  if (!network.deleted && msg.status === 'success' && (msg.operation === 'OP_NETWORK_SET_PARAMS' || msg.operation === 'OP_NETWORK_ADD')) {
    reservations = [
      ...msg.addReservedIps.map((address) => ({ address, reserved: true, time: t })),
      ...msg.removeReservedIps.map((address) => ({ address, reserved: false, time: t })),
    ];
  }
  const change = { network: changedFields(network, netPatch), backendNetwork: changedFields(bn, bnPatch), reservations };
  if (isEmpty(change.network) && isEmpty(change.backendNetwork) && reservations.length === 0) return ignored('stale');
  return { result: 'applied', change };
}

/**
 * A network's own state from its backend networks (Synnefo `update_network_state`): deleted once every
 * backend network is; active while one is; otherwise the worst. With none it is usable (ACTIVE).
 */
export function deriveNetworkState(states: readonly NetworkOperstate[]): { operstate: NetworkOperstate; deleted: boolean } {
  if (states.length === 0) return { operstate: 'ACTIVE', deleted: false };
  if (states.every((s) => s === 'DELETED')) return { operstate: 'DELETED', deleted: true };
  if (states.includes('ACTIVE')) return { operstate: 'ACTIVE', deleted: false };
  if (states.includes('ERROR')) return { operstate: 'ERROR', deleted: false };
  return { operstate: 'PENDING', deleted: false };
}

/**
 * The reservation row of one address: external by the newest add/remove, held by the NIC that has the
 * address (the lowest VM id wins if stale data gives it to two). Null when nothing needs a row.
 */
export function settleReservation(
  key: { networkId: number; address: string },
  existing: ReservationRow | undefined,
  external: ExternalReservation | undefined,
  holder: { vmId: number; nicIndex: number } | undefined,
): ReservationRow | null {
  let reserved = existing?.external ?? false;
  let time = existing?.externalTime ?? 0;
  if (external !== undefined && external.time > time) {
    reserved = external.reserved;
    time = external.time;
  }
  if (!reserved && holder === undefined && time === 0) return null;
  return { ...key, external: reserved, externalTime: time, vmId: holder?.vmId ?? null, nicIndex: holder?.nicIndex ?? null };
}

/** The addresses a NIC change touches: those of the old and of the new NICs, per network. */
export function touchedAddresses(before: readonly NicRow[], after: readonly NicRow[]): { networkId: number; address: string }[] {
  const out = new Map<string, { networkId: number; address: string }>();
  for (const nic of [...before, ...after]) {
    if (nic.networkId !== null && nic.ipv4 !== null) out.set(`${nic.networkId} ${nic.ipv4}`, { networkId: nic.networkId, address: nic.ipv4 });
  }
  return [...out.values()];
}

// ---------------------------------------------------------------------------------------------
// Backends

/** `ganeti-cluster-status` (spec §5.7): recorded on the backend row, newest job first. */
export function decideClusterStatus(msg: ClusterStatusMessage, backend: BackendRow): Decision<Partial<BackendRow>> {
  const current: JobFields = {
    backendjobid: backend.clusterJobid,
    backendopcode: backend.clusterOpcode,
    backendjobstatus: backend.clusterJobstatus,
    backendlogmsg: backend.clusterLogmsg,
    jobtime: backend.clusterTime,
  };
  if (!jobKeyNotOlder(current, msg)) return ignored('stale');
  const patch = changedFields(backend, {
    clusterJobid: msg.jobId,
    clusterOpcode: msg.operation,
    clusterJobstatus: msg.status,
    clusterLogmsg: msg.logmsg,
    clusterTime: msg.eventTime,
  });
  return isEmpty(patch) ? ignored('stale') : { result: 'applied', change: patch };
}

/** `eventd-heartbeat`: the newest heartbeat per cluster, and the newest from its master. */
export function decideHeartbeat(msg: HeartbeatMessage, backend: BackendRow): Decision<Partial<BackendRow>> {
  const patch: Partial<BackendRow> = {};
  if (msg.eventTime > backend.heartbeatTime) {
    Object.assign(patch, { heartbeatNode: msg.node, heartbeatRole: msg.role, heartbeatOutbox: msg.outbox, heartbeatTime: msg.eventTime });
  }
  if (msg.role === 'master' && msg.eventTime > backend.masterTime) Object.assign(patch, { masterNode: msg.node, masterTime: msg.eventTime });
  return isEmpty(patch) ? ignored('stale') : { result: 'applied', change: patch };
}
