// The database side of the dispatcher: applies a batch of decoded messages in one transaction.
//
// A batch is a unit of work: the rows every message of the batch is about are loaded at once, the
// pure rules of rules.ts decide per message against the rows in memory, and only the net change is
// written at the end, a few statements per table. Several messages about one VM cost one row write,
// and a batch costs one commit.
//
// Several dispatchers on one PostgreSQL database: the row of the object a message is about is locked
// for the whole transaction (FOR NO KEY UPDATE, which still lets other transactions' foreign-key checks
// through), in name order, networks before VMs, so that two dispatchers lock in the same order. NICs
// are guarded by their VM's lock, backend networks and IP reservations by their network's lock. A
// missing row is inserted with ON CONFLICT DO NOTHING and read back locked, so two dispatchers meeting
// a new name agree on one row. A deadlock that remains possible is retried like a lock timeout. SQLite
// has one writer at a time and ignores the locking clauses.

import type { Knex } from 'knex';
import type { Database } from './db.js';
import type { DispatcherMessage, Micros } from './messages.js';
import {
  changedFields,
  decideClusterStatus,
  decideCopyProgress,
  decideDiagnostic,
  decideHeartbeat,
  decideNetStatus,
  decideNetworkStatus,
  decideOpStatus,
  deriveNetworkState,
  diagnosticKey,
  diagnosticOf,
  networkNameIsOurs,
  settleReservation,
  touchedAddresses,
  vmNameIsOurs,
  type BackendNetworkRow,
  type BackendRow,
  type Decision,
  type DiagnosticRow,
  type ExternalReservation,
  type IgnoreReason,
  type NetworkRow,
  type NicRow,
  type ReservationRow,
  type VmRow,
} from './rules.js';

export type ApplyResult = { result: 'applied' } | { result: 'ignored'; reason: IgnoreReason };

export interface StoreOptions {
  /** The routing prefix: our VMs are `<prefix>-<id>`, our networks `<prefix>-net-<id>`. */
  prefix: string;
  /** Never create a row: a message about an object Cyclades does not know is ignored. */
  strict: boolean;
}

// ---------------------------------------------------------------------------------------------
// Rows ↔ columns. Fields are camelCase, columns snake_case; times are bigints that node-postgres
// returns as strings, booleans are 0/1 in SQLite.

type ColumnType = 'int' | 'int?' | 'str' | 'str?' | 'time' | 'bool' | 'json';
type Columns<R> = { [K in keyof R]: ColumnType };

const column = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

function fromDb<R>(columns: Columns<R>, raw: Record<string, unknown>): R {
  const row: Record<string, unknown> = {};
  for (const [field, type] of Object.entries(columns) as [string, ColumnType][]) {
    const v = raw[column(field)];
    if (type === 'bool') row[field] = v === true || v === 1 || v === '1';
    else if (type === 'json') row[field] = JSON.parse(String(v));
    else if (type === 'int' || type === 'time' || (type === 'int?' && v !== null)) row[field] = Number(v);
    else row[field] = v ?? null;
  }
  return row as R;
}

function toDb<R>(columns: Columns<R>, patch: Partial<R>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, v] of Object.entries(patch)) {
    out[column(field)] = columns[field as keyof R] === 'json' ? JSON.stringify(v) : v;
  }
  return out;
}

const JOB_COLUMNS = { backendjobid: 'int?', backendopcode: 'str?', backendjobstatus: 'str?', backendlogmsg: 'str?', jobtime: 'time' } as const;

const VM_COLUMNS: Columns<VmRow> = {
  id: 'int',
  name: 'str',
  backendId: 'int?',
  operstate: 'str',
  ...JOB_COLUMNS,
  backendtime: 'time',
  buildpercentage: 'int',
  progresstime: 'time',
  nicstime: 'time',
  tags: 'json',
  deleted: 'bool',
};

const NIC_COLUMNS: Columns<NicRow> = {
  nicIndex: 'int',
  name: 'str?',
  uuid: 'str?',
  mac: 'str',
  ipv4: 'str?',
  ipv6: 'str?',
  networkId: 'int?',
  link: 'str?',
  mode: 'str?',
  firewallProfile: 'str?',
};

const NETWORK_COLUMNS: Columns<NetworkRow> = { id: 'int', name: 'str', operstate: 'str', subnet: 'str?', gateway: 'str?', deleted: 'bool' };

const BACKEND_NETWORK_COLUMNS: Columns<BackendNetworkRow> = {
  id: 'int',
  networkId: 'int',
  backendId: 'int',
  operstate: 'str',
  ...JOB_COLUMNS,
  backendtime: 'time',
};

const BACKEND_COLUMNS: Columns<BackendRow> = {
  id: 'int',
  clustername: 'str',
  clusterJobid: 'int?',
  clusterOpcode: 'str?',
  clusterJobstatus: 'str?',
  clusterLogmsg: 'str?',
  clusterTime: 'time',
  heartbeatNode: 'str?',
  heartbeatRole: 'str?',
  heartbeatOutbox: 'int?',
  heartbeatTime: 'time',
  masterNode: 'str?',
  masterTime: 'time',
};

const RESERVATION_COLUMNS: Columns<ReservationRow> = {
  networkId: 'int',
  address: 'str',
  external: 'bool',
  externalTime: 'time',
  vmId: 'int?',
  nicIndex: 'int?',
};

const DIAGNOSTIC_COLUMNS: Columns<DiagnosticRow> = { source: 'str', level: 'str', message: 'str', details: 'str?', sourceDate: 'time' };

export const rowCodecs = {
  vm: (raw: Record<string, unknown>) => fromDb(VM_COLUMNS, raw),
  nic: (raw: Record<string, unknown>) => fromDb(NIC_COLUMNS, raw),
  network: (raw: Record<string, unknown>) => fromDb(NETWORK_COLUMNS, raw),
  backendNetwork: (raw: Record<string, unknown>) => fromDb(BACKEND_NETWORK_COLUMNS, raw),
  backend: (raw: Record<string, unknown>) => fromDb(BACKEND_COLUMNS, raw),
  reservation: (raw: Record<string, unknown>) => fromDb(RESERVATION_COLUMNS, raw),
  diagnostic: (raw: Record<string, unknown>) => fromDb(DIAGNOSTIC_COLUMNS, raw),
};

/** Microseconds since the epoch, for `created_at`/`updated_at`. */
const nowMicros = (): Micros => Date.now() * 1000;

/** SQLite allows 32766 bound values per statement; rows are inserted in chunks well below that. */
const INSERT_CHUNK = 200;

// ---------------------------------------------------------------------------------------------

interface Tracked<R> {
  row: R;
  original: R;
}

const track = <R>(row: R): Tracked<R> => ({ row, original: structuredClone(row) });

interface VmEntry extends Tracked<VmRow> {
  nics: NicRow[];
  originalNics: NicRow[];
}

interface NetworkEntry extends Tracked<NetworkRow> {
  backendNetworks: Map<number, Tracked<BackendNetworkRow>>;
}

const reservationKey = (networkId: number, address: string) => `${networkId} ${address}`;

/** One transaction: load, decide in memory, write the difference. */
class Batch {
  private readonly vms = new Map<string, VmEntry>();
  private readonly networks = new Map<string, NetworkEntry>();
  private readonly backends = new Map<string, Tracked<BackendRow>>();
  private readonly diagnostics: Record<string, unknown>[] = [];
  /** Keys of the diagnostics recorded already or queued in this batch. */
  private readonly diagnosticKeys = new Set<string>();
  private readonly external = new Map<string, ExternalReservation & { networkId: number }>();
  private readonly lockedNetworkIds = new Set<number>();
  /** Network name → id, for the NICs of this batch's messages. */
  private readonly networkIds = new Map<string, number>();
  private readonly now = nowMicros();

  constructor(
    private readonly trx: Knex.Transaction,
    private readonly options: StoreOptions,
  ) {}

  async run(messages: readonly DispatcherMessage[]): Promise<ApplyResult[]> {
    await this.load(messages);
    const results = messages.map((m) => this.apply(m));
    await this.flush();
    return results;
  }

  // ---- load

  private vmName(m: DispatcherMessage): string | null {
    return 'instance' in m ? m.instance : null;
  }

  private async load(messages: readonly DispatcherMessage[]): Promise<void> {
    const { prefix } = this.options;
    const vmNames = new Set<string>();
    const networkNames = new Set<string>();
    const clusters = new Set<string>();
    const lockedClusters = new Set<string>();
    for (const m of messages) {
      const vm = this.vmName(m);
      if (vm !== null && vmNameIsOurs(vm, prefix)) {
        vmNames.add(vm);
        const nics = m.type === 'ganeti-net-status' ? m.nics : m.type === 'ganeti-op-status' ? (m.nics ?? []) : [];
        for (const nic of nics) if (nic.network !== null && networkNameIsOurs(nic.network, prefix)) networkNames.add(nic.network);
        if ((m.type === 'ganeti-op-status' || m.type === 'ganeti-net-status') && m.cluster !== null) clusters.add(m.cluster);
      } else if (m.type === 'ganeti-network-status' && networkNameIsOurs(m.network, prefix)) {
        networkNames.add(m.network);
        clusters.add(m.cluster);
      } else if (m.type === 'ganeti-cluster-status' || m.type === 'eventd-heartbeat') {
        clusters.add(m.cluster);
        lockedClusters.add(m.cluster);
      }
    }

    // Backends first, unlocked: most messages only need a backend's id. Then the lock order of every
    // dispatcher: networks, VMs, then the backends whose rows this batch changes.
    for (const raw of await this.ensureRows('backends', 'clustername', clusters, (clustername) => ({ clustername }), false)) {
      const row = rowCodecs.backend(raw);
      this.backends.set(row.clustername, track(row));
    }
    for (const raw of await this.ensureRows('networks', 'name', networkNames, (name) => ({ name, operstate: 'ACTIVE' }), true)) {
      const row = rowCodecs.network(raw);
      this.networks.set(row.name, { ...track(row), backendNetworks: new Map() });
      this.lockedNetworkIds.add(row.id);
      this.networkIds.set(row.name, row.id);
    }
    for (const raw of await this.ensureRows('virtual_machines', 'name', vmNames, (name) => ({ name, operstate: 'BUILD', tags: '{}' }), true)) {
      const row = rowCodecs.vm(raw);
      // `nics` is replaced, never mutated, when a rule changes them: the same array means unchanged.
      const nics: NicRow[] = [];
      this.vms.set(row.name, { ...track(row), nics, originalNics: nics });
    }
    if (lockedClusters.size > 0) {
      const rows = await this.trx('backends').whereIn('clustername', [...lockedClusters]).orderBy('clustername').forNoKeyUpdate();
      for (const raw of rows) {
        const row = rowCodecs.backend(raw);
        this.backends.set(row.clustername, track(row));
      }
    }

    const vmsById = new Map([...this.vms.values()].map((e) => [e.row.id, e]));
    if (vmsById.size > 0) {
      const rows = await this.trx('nics').whereIn('vm_id', [...vmsById.keys()]).orderBy(['vm_id', 'nic_index']);
      for (const raw of rows) {
        const entry = vmsById.get(Number(raw.vm_id));
        entry?.originalNics.push(rowCodecs.nic(raw));
      }
    }

    await this.loadBackendNetworks(messages);
    await this.loadDiagnosticKeys(messages);
  }

  private async loadDiagnosticKeys(messages: readonly DispatcherMessage[]): Promise<void> {
    const keys: string[] = [];
    for (const m of messages) {
      if (m.type !== 'image-info' && m.type !== 'image-warning' && m.type !== 'image-error' && m.type !== 'image-helper') continue;
      const vm = this.vms.get(m.instance);
      if (vm !== undefined) keys.push(diagnosticKey(vm.row.id, diagnosticOf(m)));
    }
    for (let i = 0; i < keys.length; i += INSERT_CHUNK) {
      const found = await this.trx('vm_diagnostics').select('dedupe_key').whereIn('dedupe_key', keys.slice(i, i + INSERT_CHUNK));
      for (const row of found) this.diagnosticKeys.add(String(row.dedupe_key));
    }
  }

  /**
   * The rows of `keys`, created when missing unless --strict. `lock` takes the row locks in key order.
   */
  private async ensureRows(
    table: string,
    key: string,
    keys: ReadonlySet<string>,
    fresh: (key: string) => Record<string, unknown>,
    lock: boolean,
  ): Promise<Record<string, unknown>[]> {
    if (keys.size === 0) return [];
    const sorted = [...keys].sort();
    const select = (ks: string[]) => {
      const q = this.trx(table).whereIn(key, ks).orderBy(key);
      return lock ? q.forNoKeyUpdate() : q;
    };
    const rows: Record<string, unknown>[] = await select(sorted);
    if (this.options.strict || rows.length === keys.size) return rows;
    const found = new Set(rows.map((r) => String(r[key])));
    const missing = sorted.filter((k) => !found.has(k));
    for (let i = 0; i < missing.length; i += INSERT_CHUNK) {
      const chunk = missing.slice(i, i + INSERT_CHUNK).map((k) => ({ ...fresh(k), created_at: this.now, updated_at: this.now }));
      await this.trx(table).insert(chunk).onConflict(key).ignore();
    }
    return [...rows, ...(await select(missing))];
  }

  private async loadBackendNetworks(messages: readonly DispatcherMessage[]): Promise<void> {
    const targeted = new Set<NetworkEntry>();
    const wanted = new Map<string, { networkId: number; backendId: number }>();
    for (const m of messages) {
      if (m.type !== 'ganeti-network-status') continue;
      const network = this.networks.get(m.network);
      const backend = this.backends.get(m.cluster);
      if (network === undefined || backend === undefined) continue;
      targeted.add(network);
      wanted.set(`${network.row.id} ${backend.row.id}`, { networkId: network.row.id, backendId: backend.row.id });
    }
    if (targeted.size === 0) return;
    const byId = new Map([...targeted].map((n) => [n.row.id, n]));
    const load = async () => {
      for (const raw of await this.trx('backend_networks').whereIn('network_id', [...byId.keys()])) {
        const row = rowCodecs.backendNetwork(raw);
        byId.get(row.networkId)?.backendNetworks.set(row.backendId, track(row));
      }
    };
    await load();
    // Synnefo's get_or_create: a backend network appears with its first message, also with --strict.
    const missing = [...wanted.values()].filter((w) => !byId.get(w.networkId)?.backendNetworks.has(w.backendId));
    if (missing.length === 0) return;
    const rows = missing.map((w) => ({ network_id: w.networkId, backend_id: w.backendId, operstate: 'PENDING', created_at: this.now, updated_at: this.now }));
    await this.trx('backend_networks').insert(rows).onConflict(['network_id', 'backend_id']).ignore();
    await load();
  }

  // ---- apply (in memory)

  private apply(m: DispatcherMessage): ApplyResult {
    switch (m.type) {
      case 'ganeti-op-status':
      case 'ganeti-net-status':
      case 'image-copy-progress':
      case 'image-info':
      case 'image-warning':
      case 'image-error':
      case 'image-helper':
        return this.applyVm(m);
      case 'ganeti-network-status':
        return this.applyNetwork(m);
      case 'ganeti-cluster-status':
      case 'eventd-heartbeat': {
        const backend = this.backends.get(m.cluster);
        if (backend === undefined) return { result: 'ignored', reason: 'unknown' };
        const d = m.type === 'eventd-heartbeat' ? decideHeartbeat(m, backend.row) : decideClusterStatus(m, backend.row);
        if (d.result === 'applied') Object.assign(backend.row, d.change);
        return outcome(d);
      }
    }
  }

  private applyVm(m: Extract<DispatcherMessage, { instance: string }>): ApplyResult {
    if (!vmNameIsOurs(m.instance, this.options.prefix)) return { result: 'ignored', reason: 'not-ours' };
    const entry = this.vms.get(m.instance);
    if (entry === undefined) return { result: 'ignored', reason: 'unknown' };
    const state = { row: entry.row, nics: entry.nics };
    if (m.type === 'image-copy-progress' || m.type === 'ganeti-op-status' || m.type === 'ganeti-net-status') {
      const resolved = {
        backendId: 'cluster' in m && m.cluster !== null ? (this.backends.get(m.cluster)?.row.id ?? null) : null,
        networkIds: this.networkIds,
      };
      const d =
        m.type === 'image-copy-progress'
          ? decideCopyProgress(m, state)
          : m.type === 'ganeti-op-status'
            ? decideOpStatus(m, state, resolved)
            : decideNetStatus(m, state, resolved);
      if (d.result === 'applied') {
        Object.assign(entry.row, d.change.row);
        if (d.change.nics !== undefined) entry.nics = d.change.nics;
      }
      return outcome(d);
    }
    const d = decideDiagnostic(m, state);
    if (d.result !== 'applied') return outcome(d);
    const key = diagnosticKey(entry.row.id, d.change);
    if (this.diagnosticKeys.has(key)) return { result: 'ignored', reason: 'duplicate' };
    this.diagnosticKeys.add(key);
    this.diagnostics.push({ vm_id: entry.row.id, ...toDb(DIAGNOSTIC_COLUMNS, d.change), dedupe_key: key, created_at: this.now });
    return outcome(d);
  }

  private applyNetwork(m: Extract<DispatcherMessage, { type: 'ganeti-network-status' }>): ApplyResult {
    if (!networkNameIsOurs(m.network, this.options.prefix)) return { result: 'ignored', reason: 'not-ours' };
    const network = this.networks.get(m.network);
    const backend = this.backends.get(m.cluster);
    const bn = backend && network?.backendNetworks.get(backend.row.id);
    if (network === undefined || bn === undefined) return { result: 'ignored', reason: 'unknown' };
    const deletedAt = Math.max(0, ...[...network.backendNetworks.values()].map((b) => b.row.backendtime));
    const d = decideNetworkStatus(m, network.row, bn.row, deletedAt);
    if (d.result !== 'applied') return outcome(d);
    Object.assign(network.row, d.change.network);
    Object.assign(bn.row, d.change.backendNetwork);
    for (const r of d.change.reservations) {
      const key = reservationKey(network.row.id, r.address);
      const earlier = this.external.get(key);
      if (earlier === undefined || r.time > earlier.time) this.external.set(key, { ...r, networkId: network.row.id });
    }
    Object.assign(network.row, deriveNetworkState([...network.backendNetworks.values()].map((b) => b.row.operstate)));
    return outcome(d);
  }

  // ---- flush

  /**
   * Writes the difference, a few statements per table whatever the batch size: changed rows as one
   * upsert on their key (they exist and are locked, so it always updates), removals as one delete.
   */
  private async flush(): Promise<void> {
    await this.writeChanged('virtual_machines', VM_COLUMNS, [...this.vms.values()]);
    const touched = await this.writeNics();
    const networks = [...this.networks.values()];
    await this.writeChanged('networks', NETWORK_COLUMNS, networks);
    await this.writeChanged('backend_networks', BACKEND_NETWORK_COLUMNS, networks.flatMap((n) => [...n.backendNetworks.values()]));
    await this.writeChanged('backends', BACKEND_COLUMNS, [...this.backends.values()]);
    await this.upsert('vm_diagnostics', this.diagnostics, ['dedupe_key'], null);
    for (const [key, r] of this.external) touched.set(key, { networkId: r.networkId, address: r.address });
    await this.settleReservations([...touched.values()]);
  }

  /** Inserts `rows`, or on a conflict of `key` updates `merge` (null: leaves the existing row). */
  private async upsert(table: string, rows: Record<string, unknown>[], key: string[], merge: string[] | null): Promise<void> {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const q = this.trx(table).insert(rows.slice(i, i + INSERT_CHUNK)).onConflict(key);
      await (merge === null ? q.ignore() : q.merge(merge));
    }
  }

  private async deletePairs(table: string, columns: [string, string], pairs: [number, string | number][]): Promise<void> {
    for (let i = 0; i < pairs.length; i += INSERT_CHUNK) await this.trx(table).whereIn(columns, pairs.slice(i, i + INSERT_CHUNK)).delete();
  }

  private async writeChanged<R extends { id: number }>(table: string, columns: Columns<R>, entries: Tracked<R>[]): Promise<void> {
    const rows = entries
      .filter((e) => Object.keys(changedFields(e.original, e.row)).length > 0)
      .map((e) => ({ ...toDb(columns, e.row), created_at: this.now, updated_at: this.now }));
    if (rows.length === 0) return;
    const merge = [...Object.keys(columns).filter((f) => f !== 'id').map(column), 'updated_at'];
    await this.upsert(table, rows, ['id'], merge);
  }

  /** Writes the VMs' NIC changes; returns the addresses whose reservations they touch. */
  private async writeNics(): Promise<Map<string, { networkId: number; address: string }>> {
    const touched = new Map<string, { networkId: number; address: string }>();
    const gone: [number, number][] = [];
    const rows: Record<string, unknown>[] = [];
    for (const entry of this.vms.values()) {
      if (entry.nics === entry.originalNics) continue;
      const before = new Map(entry.originalNics.map((n) => [n.nicIndex, n]));
      const after = new Set(entry.nics.map((n) => n.nicIndex));
      for (const index of before.keys()) if (!after.has(index)) gone.push([entry.row.id, index]);
      for (const nic of entry.nics) {
        const old = before.get(nic.nicIndex);
        if (old === undefined || Object.keys(changedFields(old, nic)).length > 0) {
          rows.push({ vm_id: entry.row.id, ...toDb(NIC_COLUMNS, nic), created_at: this.now, updated_at: this.now });
        }
      }
      for (const t of touchedAddresses(entry.originalNics, entry.nics)) touched.set(reservationKey(t.networkId, t.address), t);
    }
    await this.deletePairs('nics', ['vm_id', 'nic_index'], gone);
    const merge = [...Object.keys(NIC_COLUMNS).filter((f) => f !== 'nicIndex').map(column), 'updated_at'];
    await this.upsert('nics', rows, ['vm_id', 'nic_index'], merge);
    return touched;
  }

  /**
   * Makes the reservation rows of the touched addresses agree with the NICs that now hold them and
   * with the newest external add/remove. Runs after the NIC writes, under each network's lock, so the
   * last dispatcher to commit has seen every other's committed NICs.
   */
  private async settleReservations(touched: { networkId: number; address: string }[]): Promise<void> {
    // A deleted network has no pool: its reservations go, and none is made in it again.
    const deleted = new Set([...this.networks.values()].filter((n) => n.row.deleted).map((n) => n.row.id));
    const newlyDeleted = [...this.networks.values()].filter((n) => n.row.deleted && !n.original.deleted).map((n) => n.row.id);
    if (newlyDeleted.length > 0) await this.trx('ip_reservations').whereIn('network_id', newlyDeleted).delete();
    const unlocked = [...new Set(touched.map((t) => t.networkId))].filter((id) => !this.lockedNetworkIds.has(id)).sort((a, b) => a - b);
    if (unlocked.length > 0) {
      for (const raw of await this.trx('networks').whereIn('id', unlocked).orderBy('id').forNoKeyUpdate()) {
        const network = rowCodecs.network(raw);
        if (network.deleted) deleted.add(network.id);
      }
    }
    const pairs = touched.filter((t) => !deleted.has(t.networkId)).map((t): [number, string] => [t.networkId, t.address]);
    const existing = new Map<string, ReservationRow>();
    const holders = new Map<string, { vmId: number; nicIndex: number }>();
    for (let i = 0; i < pairs.length; i += INSERT_CHUNK) {
      const chunk = pairs.slice(i, i + INSERT_CHUNK);
      for (const raw of await this.trx('ip_reservations').whereIn(['network_id', 'address'], chunk)) {
        const row = rowCodecs.reservation(raw);
        existing.set(reservationKey(row.networkId, row.address), row);
      }
      for (const raw of await this.trx('nics').whereIn(['network_id', 'ipv4'], chunk).orderBy(['vm_id', 'nic_index'])) {
        const key = reservationKey(Number(raw.network_id), String(raw.ipv4));
        if (!holders.has(key)) holders.set(key, { vmId: Number(raw.vm_id), nicIndex: Number(raw.nic_index) });
      }
    }
    const released: [number, string][] = [];
    const rows: Record<string, unknown>[] = [];
    for (const [networkId, address] of pairs) {
      const key = reservationKey(networkId, address);
      const before = existing.get(key);
      const after = settleReservation({ networkId, address }, before, this.external.get(key), holders.get(key));
      if (after === null) {
        if (before !== undefined) released.push([networkId, address]);
      } else if (before === undefined || Object.keys(changedFields(before, after)).length > 0) {
        rows.push({ ...toDb(RESERVATION_COLUMNS, after), created_at: this.now, updated_at: this.now });
      }
    }
    await this.deletePairs('ip_reservations', ['network_id', 'address'], released);
    const merge = ['external', 'external_time', 'vm_id', 'nic_index', 'updated_at'];
    await this.upsert('ip_reservations', rows, ['network_id', 'address'], merge);
  }
}

function outcome<P>(d: Decision<P>): ApplyResult {
  return d.result === 'applied' ? { result: 'applied' } : { result: 'ignored', reason: d.reason };
}

export class Store {
  constructor(
    private readonly db: Database,
    private readonly options: StoreOptions,
  ) {}

  /** Applies the messages in order in one transaction; the results are valid once it returned. */
  async applyBatch(messages: readonly DispatcherMessage[]): Promise<ApplyResult[]> {
    if (messages.length === 0) return [];
    return this.db.knex.transaction((trx) => new Batch(trx, this.options).run(messages));
  }
}
