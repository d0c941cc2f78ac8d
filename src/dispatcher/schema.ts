// The dispatcher's tables, as knex migrations that run at start (one code path for SQLite and
// PostgreSQL). Times are integers of microseconds since the epoch, UTC (spec §6.8: Synnefo turned
// `event_time` into a naive local datetime); 0 means "never". Migrations live in code, not in files,
// so that the compiled program carries them.

import type { Knex } from 'knex';

const now = (k: Knex.CreateTableBuilder) => {
  k.bigInteger('created_at').notNullable();
  k.bigInteger('updated_at').notNullable();
};

const jobFields = (k: Knex.CreateTableBuilder) => {
  k.bigInteger('backendjobid').nullable();
  k.string('backendopcode', 64).nullable();
  k.string('backendjobstatus', 16).nullable();
  k.text('backendlogmsg').nullable();
  k.bigInteger('jobtime').notNullable().defaultTo(0);
};

const initial: Knex.Migration = {
  async up(db) {
    await db.schema.createTable('backends', (k) => {
      k.increments('id');
      k.string('clustername', 255).notNullable().unique();
      k.bigInteger('cluster_jobid').nullable();
      k.string('cluster_opcode', 64).nullable();
      k.string('cluster_jobstatus', 16).nullable();
      k.text('cluster_logmsg').nullable();
      k.bigInteger('cluster_time').notNullable().defaultTo(0);
      k.string('heartbeat_node', 255).nullable();
      k.string('heartbeat_role', 16).nullable();
      k.integer('heartbeat_outbox').nullable();
      k.bigInteger('heartbeat_time').notNullable().defaultTo(0);
      k.string('master_node', 255).nullable();
      k.bigInteger('master_time').notNullable().defaultTo(0);
      now(k);
    });
    await db.schema.createTable('networks', (k) => {
      k.increments('id');
      k.string('name', 255).notNullable().unique();
      k.string('operstate', 16).notNullable();
      k.string('subnet', 64).nullable();
      k.string('gateway', 64).nullable();
      k.boolean('deleted').notNullable().defaultTo(false);
      now(k);
    });
    await db.schema.createTable('backend_networks', (k) => {
      k.increments('id');
      k.integer('network_id').notNullable().references('networks.id');
      k.integer('backend_id').notNullable().references('backends.id');
      k.string('operstate', 16).notNullable();
      jobFields(k);
      k.bigInteger('backendtime').notNullable().defaultTo(0);
      now(k);
      k.unique(['network_id', 'backend_id']);
    });
    await db.schema.createTable('virtual_machines', (k) => {
      k.increments('id');
      k.string('name', 255).notNullable().unique();
      k.integer('backend_id').nullable().references('backends.id');
      k.string('operstate', 16).notNullable();
      jobFields(k);
      k.bigInteger('backendtime').notNullable().defaultTo(0);
      k.integer('buildpercentage').notNullable().defaultTo(0);
      k.bigInteger('progresstime').notNullable().defaultTo(0);
      k.bigInteger('nicstime').notNullable().defaultTo(0);
      k.text('tags').notNullable();
      k.boolean('deleted').notNullable().defaultTo(false);
      now(k);
    });
    await db.schema.createTable('nics', (k) => {
      k.increments('id');
      k.integer('vm_id').notNullable().references('virtual_machines.id');
      k.integer('nic_index').notNullable();
      k.string('name', 255).nullable();
      k.string('uuid', 64).nullable();
      k.string('mac', 32).notNullable();
      k.string('ipv4', 64).nullable();
      k.string('ipv6', 64).nullable();
      k.integer('network_id').nullable().references('networks.id');
      k.string('link', 255).nullable();
      k.string('mode', 32).nullable();
      k.string('firewall_profile', 16).nullable();
      now(k);
      k.unique(['vm_id', 'nic_index']);
      k.index(['network_id', 'ipv4']);
    });
    await db.schema.createTable('ip_reservations', (k) => {
      k.increments('id');
      k.integer('network_id').notNullable().references('networks.id');
      k.string('address', 64).notNullable();
      k.boolean('external').notNullable().defaultTo(false);
      k.bigInteger('external_time').notNullable().defaultTo(0);
      k.integer('vm_id').nullable().references('virtual_machines.id');
      k.integer('nic_index').nullable();
      now(k);
      k.unique(['network_id', 'address']);
    });
    await db.schema.createTable('vm_diagnostics', (k) => {
      k.increments('id');
      k.integer('vm_id').notNullable().references('virtual_machines.id');
      k.string('source', 64).notNullable();
      k.string('level', 16).notNullable();
      k.text('message').notNullable();
      k.text('details').nullable();
      k.bigInteger('source_date').notNullable();
      // sha256 of the VM and the diagnostic: a redelivered progress message is recorded once.
      k.string('dedupe_key', 64).notNullable().unique();
      k.bigInteger('created_at').notNullable();
      k.index(['vm_id']);
    });
  },
  // knex requires a way back; nothing in this program calls it.
  async down(db) {
    for (const table of ['vm_diagnostics', 'ip_reservations', 'nics', 'virtual_machines', 'backend_networks', 'networks', 'backends']) {
      await db.schema.dropTable(table);
    }
  },
};

const MIGRATIONS: Record<string, Knex.Migration> = { '0001-initial': initial };

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(MIGRATIONS).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => MIGRATIONS[name] as Knex.Migration,
};
