// What the dispatcher's database shows, read the way its operator commands read it (views.ts), plus
// the diagnostics and the cluster rows those commands do not print; and `project`, which cuts an
// actual value down to the shape of an expectation so that a test compares only what it states.

import { openDatabase, type Database } from '../../src/dispatcher/db.js';
import { rowCodecs } from '../../src/dispatcher/store.js';
import { networks, servers, type NetworkView, type ServerView } from '../../src/dispatcher/views.js';

export interface DiagnosticView {
  vm: string;
  source: string;
  level: string;
  message: string;
  details: string | null;
}

export interface BackendView {
  cluster: string;
  job: { id: number | null; opcode: string | null; status: string | null };
  masterNode: string | null;
}

export interface DispatcherState {
  servers: ServerView[];
  networks: NetworkView[];
  /** In the order snf-image reported them (source date), per VM. */
  diagnostics: DiagnosticView[];
  backends: BackendView[];
}

export async function readState(db: Database): Promise<DispatcherState> {
  const vmNames = new Map<number, string>();
  for (const v of await db.knex('virtual_machines').select('id', 'name')) vmNames.set(Number(v.id), String(v.name));
  const diagnostics = (await db.knex('vm_diagnostics').orderBy(['vm_id', 'source_date', 'id'])).map((raw) => {
    const d = rowCodecs.diagnostic(raw);
    return { vm: vmNames.get(Number(raw.vm_id)) ?? '?', source: d.source, level: d.level, message: d.message, details: d.details };
  });
  const backends = (await db.knex('backends').orderBy('clustername')).map((raw) => {
    const b = rowCodecs.backend(raw);
    return { cluster: b.clustername, job: { id: b.clusterJobid, opcode: b.clusterOpcode, status: b.clusterJobstatus }, masterNode: b.masterNode };
  });
  return { servers: await servers(db), networks: await networks(db), diagnostics, backends };
}

/** A read-only handle on the dispatcher's SQLite file (WAL: it reads while the dispatcher writes). */
export function openState(dbPath: string): { read(): Promise<DispatcherState>; close(): Promise<void> } {
  const db = openDatabase(dbPath);
  return { read: () => readState(db), close: () => db.knex.destroy() };
}

/**
 * `actual` restricted to the keys `expected` names, recursively; arrays keep their own length (an
 * extra or missing element shows in the comparison). Equal to `expected` iff every stated field holds.
 */
export function project(actual: unknown, expected: unknown): unknown {
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return actual;
    return actual.map((a, i) => (i < expected.length ? project(a, expected[i]) : a));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return actual;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(expected)) out[key] = project((actual as Record<string, unknown>)[key], (expected as Record<string, unknown>)[key]);
    return out;
  }
  return actual;
}
