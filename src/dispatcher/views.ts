// Read-only views of the database for the operator subcommands (`servers`, `networks`,
// `status-check`), and their rendering as aligned text tables.

import type { Database } from './db.js';
import type { Micros } from './messages.js';
import { presentTags } from './rules.js';
import { rowCodecs } from './store.js';

/** An ISO 8601 UTC time with microseconds, or null for "never" (0). */
export function isoMicros(us: Micros): string | null {
  if (us === 0) return null;
  const ms = Math.floor(us / 1000);
  return new Date(ms).toISOString().replace(/Z$/, `${String(us % 1000).padStart(3, '0')}Z`);
}

export interface ServerView {
  name: string;
  cluster: string | null;
  operstate: string;
  deleted: boolean;
  buildpercentage: number;
  job: { id: number | null; opcode: string | null; status: string | null; logmsg: string | null };
  backendtime: string | null;
  tags: string[];
  nics: { index: number; mac: string; ipv4: string | null; ipv6: string | null; network: string | null; firewall: string | null }[];
}

export async function servers(db: Database): Promise<ServerView[]> {
  const backendNames = await clusterNames(db);
  const networkNames = new Map<number, string>();
  for (const n of await db.knex('networks').select('id', 'name')) networkNames.set(Number(n.id), String(n.name));
  const nicsByVm = new Map<number, ServerView['nics']>();
  for (const raw of await db.knex('nics').orderBy(['vm_id', 'nic_index'])) {
    const nic = rowCodecs.nic(raw);
    const list = nicsByVm.get(Number(raw.vm_id)) ?? [];
    list.push({
      index: nic.nicIndex,
      mac: nic.mac,
      ipv4: nic.ipv4,
      ipv6: nic.ipv6,
      network: nic.networkId === null ? null : (networkNames.get(nic.networkId) ?? null),
      firewall: nic.firewallProfile,
    });
    nicsByVm.set(Number(raw.vm_id), list);
  }
  return (await db.knex('virtual_machines').orderBy('name')).map((raw) => {
    const vm = rowCodecs.vm(raw);
    return {
      name: vm.name,
      cluster: vm.backendId === null ? null : (backendNames.get(vm.backendId) ?? null),
      operstate: vm.operstate,
      deleted: vm.deleted,
      buildpercentage: vm.buildpercentage,
      job: { id: vm.backendjobid, opcode: vm.backendopcode, status: vm.backendjobstatus, logmsg: vm.backendlogmsg },
      backendtime: isoMicros(vm.backendtime),
      tags: presentTags(vm.tags),
      nics: nicsByVm.get(vm.id) ?? [],
    };
  });
}

export interface NetworkView {
  name: string;
  operstate: string;
  deleted: boolean;
  subnet: string | null;
  gateway: string | null;
  backends: { cluster: string | null; operstate: string; job: { id: number | null; opcode: string | null; status: string | null }; backendtime: string | null }[];
  /** Addresses reserved outside NICs, and addresses held by NICs. */
  reserved: string[];
  inUse: string[];
}

export async function networks(db: Database): Promise<NetworkView[]> {
  const backendNames = await clusterNames(db);
  const backendsByNetwork = new Map<number, NetworkView['backends']>();
  for (const raw of await db.knex('backend_networks').orderBy(['network_id', 'backend_id'])) {
    const bn = rowCodecs.backendNetwork(raw);
    const list = backendsByNetwork.get(bn.networkId) ?? [];
    list.push({
      cluster: backendNames.get(bn.backendId) ?? null,
      operstate: bn.operstate,
      job: { id: bn.backendjobid, opcode: bn.backendopcode, status: bn.backendjobstatus },
      backendtime: isoMicros(bn.backendtime),
    });
    backendsByNetwork.set(bn.networkId, list);
  }
  const reservations = (await db.knex('ip_reservations').orderBy(['network_id', 'address'])).map(rowCodecs.reservation);
  return (await db.knex('networks').orderBy('name')).map((raw) => {
    const n = rowCodecs.network(raw);
    const mine = reservations.filter((r) => r.networkId === n.id);
    return {
      name: n.name,
      operstate: n.operstate,
      deleted: n.deleted,
      subnet: n.subnet,
      gateway: n.gateway,
      backends: backendsByNetwork.get(n.id) ?? [],
      reserved: mine.filter((r) => r.external).map((r) => r.address),
      inUse: mine.filter((r) => r.vmId !== null).map((r) => r.address),
    };
  });
}

export interface HeartbeatView {
  cluster: string;
  master: string | null;
  /** Seconds since the newest master heartbeat, or null if none was ever recorded. */
  masterAgeSeconds: number | null;
  lastNode: string | null;
  lastRole: string | null;
  lastOutbox: number | null;
  lastAgeSeconds: number | null;
  silent: boolean;
}

/** Per known cluster: who publishes and how long ago it was heard (eventd heartbeats, `event_time`). */
export async function heartbeats(db: Database, maxSilenceSeconds: number, nowMs = Date.now()): Promise<HeartbeatView[]> {
  const age = (us: Micros) => (us === 0 ? null : Math.max(0, Math.round((nowMs * 1000 - us) / 1e5) / 10));
  return (await db.knex('backends').orderBy('clustername')).map((raw) => {
    const b = rowCodecs.backend(raw);
    const masterAge = age(b.masterTime);
    return {
      cluster: b.clustername,
      master: b.masterNode,
      masterAgeSeconds: masterAge,
      lastNode: b.heartbeatNode,
      lastRole: b.heartbeatRole,
      lastOutbox: b.heartbeatOutbox,
      lastAgeSeconds: age(b.heartbeatTime),
      silent: masterAge === null || masterAge > maxSilenceSeconds,
    };
  });
}

async function clusterNames(db: Database): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  for (const b of await db.knex('backends').select('id', 'clustername')) names.set(Number(b.id), String(b.clustername));
  return names;
}

/** Renders rows as a text table with a header line; null shows as `-`. */
export function table(headers: string[], rows: (string | number | boolean | null)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}
