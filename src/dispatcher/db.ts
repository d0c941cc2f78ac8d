// Opening the database (SQLite file by default, PostgreSQL for a postgres:// URL), running the
// migrations, and telling a passing failure (retry later) from a permanent one.

import knex, { type Knex } from 'knex';
import type { Logger } from '../common/log.js';
import { migrationSource } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';

export interface Database {
  knex: Knex;
  dialect: Dialect;
}

export interface DatabaseOptions {
  /** How long a statement waits for a row lock (PostgreSQL) or the write lock (SQLite) before failing. */
  lockTimeoutMs: number;
  /** Where knex's own messages go (instead of the console), at debug: what matters is also thrown. */
  log?: Logger;
}

export const DEFAULT_DATABASE_OPTIONS: DatabaseOptions = { lockTimeoutMs: 10_000 };

function knexLog(log: Logger | undefined): Knex.Config['log'] {
  const debug = (message: unknown) => log?.debug({ knex: message }, 'knex');
  return { warn: debug, error: debug, deprecate: debug, debug };
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** A SQLite location: a path, or `sqlite:`/`file:` followed by one. */
function sqlitePath(url: string): string {
  const m = /^(?:sqlite|file):(?:\/\/)?(.*)$/i.exec(url);
  return m ? (m[1] ?? '') : url;
}

export function openDatabase(url: string, options: DatabaseOptions = DEFAULT_DATABASE_OPTIONS): Database {
  if (isPostgresUrl(url)) {
    return {
      dialect: 'postgres',
      knex: knex({
        client: 'pg',
        log: knexLog(options.log),
        // lock_timeout turns a row lock held too long (another dispatcher stuck) into an error we retry.
        connection: { connectionString: url, options: `-c lock_timeout=${Math.round(options.lockTimeoutMs)}` },
        pool: { min: 0, max: 2 },
        acquireConnectionTimeout: 5_000,
      }),
    };
  }
  return {
    dialect: 'sqlite',
    knex: knex({
      client: 'better-sqlite3',
      log: knexLog(options.log),
      // `timeout` is SQLite's busy timeout: how long a write waits for another connection's lock.
      connection: { filename: sqlitePath(url), options: { timeout: options.lockTimeoutMs } } as Knex.Sqlite3ConnectionConfig,
      useNullAsDefault: true,
      pool: {
        afterCreate(conn: { pragma(text: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          try {
            // WAL lets the operator subcommands read while the daemon writes; FULL makes a commit
            // durable before the message is acknowledged; SQLite leaves foreign keys off by default.
            conn.pragma('journal_mode = WAL');
            conn.pragma('synchronous = FULL');
            conn.pragma('foreign_keys = ON');
            done(null, conn);
          } catch (err) {
            done(err as Error, conn);
          }
        },
      },
    }),
  };
}

const MIGRATIONS: Knex.MigratorConfig = { migrationSource, tableName: 'dispatcher_migrations' };

/** pg_advisory_xact_lock's key for the dispatcher's migrations (any constant no other program here uses). */
const MIGRATION_LOCK_KEY = 0x736e6664; // "snfd"

/**
 * Brings the schema up to date. On PostgreSQL several dispatchers may start at once, and knex
 * alone does not serialize them: it creates its bookkeeping tables with "exists? create" (two
 * first starts both create, and one fails on "already exists"), and its lock fails at once rather
 * than waits when another process holds it. So the migrations run while this session holds a
 * PostgreSQL advisory lock, which the others wait for (a minute at most) and which the server
 * releases if the holder dies. Holding it, any lock knex's own table still shows was left by a
 * dispatcher that died while migrating, and is cleared.
 */
export async function migrate(db: Database): Promise<void> {
  if (db.dialect !== 'postgres') {
    await db.knex.migrate.latest(MIGRATIONS);
    return;
  }
  await db.knex.transaction(async (trx) => {
    await trx.raw("SET LOCAL lock_timeout = '60s'");
    await trx.raw('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK_KEY]);
    // knex runs the migrations on other connections of the pool; the lock stays with this one.
    await db.knex.migrate.forceFreeMigrationsLock(MIGRATIONS);
    await db.knex.migrate.latest(MIGRATIONS);
  });
}

const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * PostgreSQL SQLSTATEs that say "not now" rather than "never": connection exceptions (08), a
 * serialization failure or deadlock (40001, 40P01), a lock timeout (55P03), the server shutting down
 * or starting (57P01–57P03), insufficient resources (53) and system errors (58).
 */
function transientSqlState(code: string): boolean {
  return /^(08|53|58)/.test(code) || ['40001', '40P01', '55P03', '57P01', '57P02', '57P03'].includes(code);
}

/** SQLite codes for a locked, busy, full or vanished database file. */
const TRANSIENT_SQLITE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL|READONLY)/;

/** Whether a database error is worth retrying later (the database is down or a lock timed out). */
export function isTransientDbError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (err.name === 'KnexTimeoutError') return true;
  if (typeof code === 'string') {
    if (TRANSIENT_NODE_CODES.has(code) || TRANSIENT_SQLITE.test(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && transientSqlState(code)) return true;
  }
  // node-postgres reports a dropped connection without a code.
  return /Connection terminated|connection error|not queryable|Connection ended/i.test(err.message);
}
