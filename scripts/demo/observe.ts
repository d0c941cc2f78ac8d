// What the view shows, read from where it is true: the dispatcher's database (read-only; SQLite in WAL
// mode lets a reader in while the dispatcher writes) and the two daemons' Prometheus endpoints.

import knex from 'knex';
import { isPostgresUrl, openDatabase, type Database } from '../../src/dispatcher/db.js';
import { networks, servers } from '../../src/dispatcher/views.js';
import type { Observed } from './source.js';
import { parseMetrics, type Sample } from './totals.js';
import type { NetView, VmView } from './view.js';

export interface Snapshot {
  vms: VmView[];
  networks: NetView[];
  eventd: Sample[];
  dispatcher: Sample[];
}

function openReadOnly(url: string): Database {
  if (isPostgresUrl(url)) return openDatabase(url);
  return {
    dialect: 'sqlite',
    knex: knex({ client: 'better-sqlite3', connection: { filename: url, options: { readonly: true } }, useNullAsDefault: true, pool: { min: 0, max: 1 } }),
  };
}

async function scrape(url: string): Promise<Sample[] | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? parseMetrics(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}

export class Observer {
  private readonly db: Database;
  private last: Snapshot = { vms: [], networks: [], eventd: [], dispatcher: [] };

  constructor(private readonly observed: Observed) {
    this.db = openReadOnly(observed.dbUrl);
  }

  /** The current state; a part that cannot be read just now (a daemon stopped, say) keeps its last value. */
  async snapshot(): Promise<Snapshot> {
    const [vms, nets, eventd, dispatcher] = await Promise.all([
      servers(this.db).catch(() => undefined),
      networks(this.db).catch(() => undefined),
      this.observed.metrics ? scrape(this.observed.metrics.eventd) : undefined,
      this.observed.metrics ? scrape(this.observed.metrics.dispatcher) : undefined,
    ]);
    this.last = {
      vms: vms ?? this.last.vms,
      networks: nets ?? this.last.networks,
      eventd: eventd ?? this.last.eventd,
      dispatcher: dispatcher ?? this.last.dispatcher,
    };
    return this.last;
  }

  async close(): Promise<void> {
    await this.db.knex.destroy();
  }
}
