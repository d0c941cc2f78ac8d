// The database layer on both databases: the captured scenario gives the rows we expect, --strict,
// reservations, diagnostics, batching, and the same final state for redelivered and shuffled streams.

import knex from 'knex';
import t from 'tap';
import { settleBatch, type Delivery } from '../../src/dispatcher/consumer.js';
import { migrate, openDatabase } from '../../src/dispatcher/db.js';
import { decodeMessage, type DispatcherMessage } from '../../src/dispatcher/messages.js';
import { Store } from '../../src/dispatcher/store.js';
import { DB_KINDS, openScratch, scratchDir, scratchPostgres, snapshot } from '../fixtures/dispatcher/helpers.js';
import { goldenStream, prng, shuffle, syntheticStream, type StreamMessage } from '../fixtures/dispatcher/stream.js';

const decodeAll = (messages: readonly StreamMessage[]): DispatcherMessage[] =>
  messages.map((m) => {
    const d = decodeMessage(Buffer.from(JSON.stringify(m.body)));
    if (!d.ok) throw new Error(`${m.messageId}: ${d.reason}`);
    return d.message;
  });

async function applyInBatches(store: Store, messages: readonly DispatcherMessage[], size: number) {
  const results = [];
  for (let i = 0; i < messages.length; i += size) results.push(...(await store.applyBatch(messages.slice(i, i + size))));
  return results;
}

const golden = goldenStream();
const untilJob14 = golden.findIndex((m) => m.messageId.startsWith('cluster1.example.test:17:'));

for (const kind of DB_KINDS) {
  t.test(`${kind}: the captured scenario`, async (t) => {
    const db = await openScratch(t, kind);
    const store = new Store(db, { prefix: 'snf', strict: false });
    const results = await applyInBatches(store, decodeAll(golden.slice(0, untilJob14)), 25);
    t.notOk(results.some((r) => r.result === 'ignored' && r.reason !== 'stale'), 'nothing ignored but stale duplicates');
    const mid = await snapshot(db);
    t.match(mid['servers'], [
      {
        name: 'snf-1',
        cluster: 'cluster1.example.test',
        operstate: 'STARTED',
        buildpercentage: 100,
        job: { id: 12, opcode: 'OP_INSTANCE_SET_PARAMS', status: 'success' },
        tags: ['synnefo:instance:1'],
        nics: [
          { index: 0, mac: 'aa:00:01:b1:67:50', ipv4: '10.10.0.3', ipv6: '2001:db8:10:0:a800:1ff:feb1:6750', network: 'snf-net-1' },
          { index: 1, mac: 'aa:00:00:11:22:33', ipv4: '192.0.2.55', network: null },
        ],
      },
    ]);
    t.equal((mid['servers'] as unknown[]).length, 1, 'snf-bad (job 19) is not ours: no row');
    t.match(mid['networks'], [
      {
        name: 'snf-net-1',
        operstate: 'ACTIVE',
        subnet: '10.10.0.0/24',
        gateway: '10.10.0.1',
        backends: [{ cluster: 'cluster1.example.test', operstate: 'ACTIVE', job: { id: 14, status: 'success' } }],
        reserved: ['10.10.0.2', '10.10.0.50'],
        inUse: ['10.10.0.3'],
      },
    ]);
    t.equal((mid['diagnostics'] as unknown[]).length, 10, 'stream A: 12 objects, 2 of them copy progress');
    t.match(mid['backends'], [{ clustername: 'cluster1.example.test', clusterJobid: null }], 'no cluster job yet');

    await applyInBatches(store, decodeAll(golden.slice(untilJob14)), 25);
    const end = await snapshot(db);
    t.match(end['servers'], [
      { name: 'snf-1', operstate: 'DESTROYED', deleted: true, nics: [] },
      { name: 'snf-2', operstate: 'DESTROYED', deleted: true, job: { id: 28, opcode: 'OP_INSTANCE_REMOVE' } },
    ]);
    t.match(end['networks'], [{ name: 'snf-net-1', operstate: 'DELETED', deleted: true, backends: [{ operstate: 'DELETED' }], reserved: [], inUse: [] }]);
    t.same(end['reservations'], [], 'removed VMs and the deleted network released every address');
    t.match(end['backends'], [{ clusterJobid: 26, clusterOpcode: 'OP_CLUSTER_SET_PARAMS', clusterJobstatus: 'success' }]);

    t.test('redelivered: everything ignored, nothing changes', async (t) => {
      const again = await applyInBatches(store, decodeAll(golden), 40);
      t.ok(again.every((r) => r.result === 'ignored'), 'all ignored');
      t.same(await snapshot(db), end);
    });

    t.test('shuffled and duplicated, in other batches: the same rows', async (t) => {
      const db2 = await openScratch(t, kind);
      const random = prng(7);
      const shuffled = shuffle([...golden, ...golden.filter(() => random() < 0.3)], random);
      await applyInBatches(new Store(db2, { prefix: 'snf', strict: false }), decodeAll(shuffled), 13);
      t.same(await snapshot(db2), end);
    });
  });

  t.test(`${kind}: --strict ignores what Cyclades does not know`, async (t) => {
    const db = await openScratch(t, kind);
    const store = new Store(db, { prefix: 'snf', strict: true });
    const decoded = decodeAll(golden.slice(0, untilJob14));
    const results = await store.applyBatch(decoded);
    t.ok(results.every((r) => r.result === 'ignored' && (r.reason === 'unknown' || r.reason === 'not-ours')), 'all ignored');
    t.same(await db.knex('virtual_machines').select(), []);
    t.same(await db.knex('networks').select(), []);
    // Cyclades created the VM, the network and the backend: now the same messages apply.
    const now = Date.now() * 1000;
    await db.knex('backends').insert({ clustername: 'cluster1.example.test', created_at: now, updated_at: now });
    await db.knex('networks').insert({ name: 'snf-net-1', operstate: 'PENDING', created_at: now, updated_at: now });
    await db.knex('virtual_machines').insert({ name: 'snf-1', operstate: 'BUILD', tags: '{}', created_at: now, updated_at: now });
    await store.applyBatch(decoded);
    t.match((await snapshot(db))['servers'], [{ name: 'snf-1', operstate: 'STARTED', nics: [{ network: 'snf-net-1' }, {}] }]);
    t.match((await snapshot(db))['networks'], [{ name: 'snf-net-1', operstate: 'ACTIVE', backends: [{ operstate: 'ACTIVE' }] }], 'the backend network is created, as Synnefo did');
  });

  t.test(`${kind}: NIC changes keep the reservations true`, async (t) => {
    const db = await openScratch(t, kind);
    const store = new Store(db, { prefix: 'snf', strict: false });
    const T = 1_800_000_000;
    const net = (instance: string, s: number, nics: object[]) => ({ type: 'ganeti-net-status', instance, event_time: [s, 0], nics });
    const nic = (ip: string, network = 'snf-net-1') => ({ mac: 'aa:00:00:00:00:01', ip, network, firewall: 'protected' });
    const setParams = (s: number, add: string[], remove: string[]) => ({
      type: 'ganeti-network-status',
      network: 'snf-net-1',
      cluster: 'c1',
      operation: 'OP_NETWORK_SET_PARAMS',
      status: 'success',
      event_time: [s, 0],
      jobId: s,
      job_fields: { add_reserved_ips: add, remove_reserved_ips: remove },
    });
    const apply = (...bodies: object[]) => store.applyBatch(decodeAll(bodies.map((body, i) => ({ routingKey: '', messageId: `${i}`, type: '', body: body as Record<string, unknown> }))));
    const reservations = async () =>
      ((await snapshot(db))['reservations'] as { address: string; vm: string | null; external: boolean }[]).filter((r) => r.external || r.vm !== null).map((r) => `${r.address}:${r.vm ?? 'external'}`);

    await apply(net('snf-1', T, [nic('10.0.0.5')]), net('snf-2', T, [nic('10.0.0.6')]), setParams(T, ['10.0.0.50'], []));
    t.same(await reservations(), ['10.0.0.5:snf-1', '10.0.0.50:external', '10.0.0.6:snf-2']);
    await apply(net('snf-1', T + 1, [nic('10.0.0.7')]));
    t.same(await reservations(), ['10.0.0.50:external', '10.0.0.6:snf-2', '10.0.0.7:snf-1'], 'a changed IP releases the old address');
    // Two VMs swap addresses in one batch.
    await apply(net('snf-1', T + 2, [nic('10.0.0.6')]), net('snf-2', T + 2, [nic('10.0.0.7')]));
    t.same(await reservations(), ['10.0.0.50:external', '10.0.0.6:snf-1', '10.0.0.7:snf-2']);
    await apply(setParams(T + 3, [], ['10.0.0.50']), setParams(T + 1, ['10.0.0.50'], []));
    t.same(await reservations(), ['10.0.0.6:snf-1', '10.0.0.7:snf-2'], 'removal honoured; an older add delivered late stays removed');
    await apply({ type: 'ganeti-op-status', instance: 'snf-2', operation: 'OP_INSTANCE_REMOVE', status: 'success', event_time: [T + 4, 0], jobId: 9, cluster: 'c1' });
    t.same(await reservations(), ['10.0.0.6:snf-1'], 'REMOVE releases the NICs\' addresses');
    t.same(await db.knex('nics').whereIn('vm_id', db.knex('virtual_machines').select('id').where('name', 'snf-2')).select(), [], 'and removes the NICs');
  });

  t.test(`${kind}: diagnostics are recorded once`, async (t) => {
    const db = await openScratch(t, kind);
    const store = new Store(db, { prefix: 'snf', strict: false });
    const info = { type: 'image-info', messages: ['Starting image copy...'], instance: 'snf-5', event_time: [1, 2] };
    const r = await store.applyBatch(decodeAll([info, info, { ...info, event_time: [1, 3] }].map((body) => ({ routingKey: '', messageId: '', type: '', body }))));
    t.same(r, [{ result: 'applied' }, { result: 'ignored', reason: 'duplicate' }, { result: 'applied' }]);
    t.same(await store.applyBatch(decodeAll([{ routingKey: '', messageId: '', type: '', body: info }])), [{ result: 'ignored', reason: 'duplicate' }]);
    t.equal((await db.knex('vm_diagnostics').select()).length, 2, 'a redelivered diagnostic is not recorded twice');
  });

  t.test(`${kind}: a synthetic cloud, ordered vs shuffled, duplicated and re-batched`, async (t) => {
    const { messages, fates } = syntheticStream({ prefix: 'snf', cluster: 'cluster9.example.test', vms: 60, seed: 3 });
    const ordered = await openScratch(t, kind);
    await applyInBatches(new Store(ordered, { prefix: 'snf', strict: false }), decodeAll(messages), 100);
    const expected = await snapshot(ordered);
    const servers = expected['servers'] as { name: string; operstate: string; deleted: boolean; nics: unknown[]; buildpercentage: number }[];
    for (const fate of fates) {
      const vm = servers.find((s) => s.name === fate.name);
      const want = fate.fate === 'started' ? { operstate: 'STARTED', deleted: false, buildpercentage: 100 } : fate.fate === 'removed' ? { operstate: 'DESTROYED', deleted: true } : { operstate: 'ERROR', deleted: false };
      t.match(vm, want, `${fate.name} ${fate.fate}`);
      t.equal(vm?.nics.length, fate.nics, `${fate.name} has ${fate.nics} NICs`);
    }
    t.match(expected['backends'], [{ masterNode: 'node1.example.test', heartbeatNode: 'node2.example.test', heartbeatRole: 'candidate' }]);
    const random = prng(11);
    const mixed = shuffle([...messages, ...messages.filter(() => random() < 0.2)], random);
    const other = await openScratch(t, kind);
    await applyInBatches(new Store(other, { prefix: 'snf', strict: false }), decodeAll(mixed), 37);
    t.same(await snapshot(other), expected, 'the same final state');
  });
}

t.test('settleBatch: a permanent database error dead-letters only its message (postgres)', async (t) => {
  const db = await openScratch(t, 'postgres');
  const store = new Store(db, { prefix: 'snf', strict: false });
  const d = (body: object, id: string): Delivery => ({ queue: 'snf-events-op', messageId: id, content: Buffer.from(JSON.stringify(body)) });
  const good = { type: 'ganeti-op-status', instance: 'snf-1', operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [1, 0], jobId: 1, cluster: 'c1' };
  // Ours by name, but longer than the name column: PostgreSQL refuses it.
  const tooLong = { ...good, instance: `snf-${'9'.repeat(300)}` };
  const outcomes = await settleBatch(store, [d(good, 'a'), d(tooLong, 'b'), d({ ...good, instance: 'snf-2' }, 'c'), d({ no: 'type' }, 'd')]);
  t.match(outcomes, [
    { kind: 'ack', result: 'applied' },
    { kind: 'dead-letter', reason: /the database refused the change: .*too long/ },
    { kind: 'ack', result: 'applied' },
    { kind: 'dead-letter', reason: /field "type"/ },
  ]);
  t.same((await db.knex('virtual_machines').orderBy('name').select('name', 'operstate')).map((r) => `${r.name} ${r.operstate}`), ['snf-1 STARTED', 'snf-2 STARTED']);
});

t.test('settleBatch: a locked SQLite database means retry, and nothing is half applied', async (t) => {
  const path = `${scratchDir(t)}/locked.sqlite`;
  const db = openDatabase(path, { lockTimeoutMs: 200 });
  await migrate(db);
  t.teardown(() => db.knex.destroy());
  const store = new Store(db, { prefix: 'snf', strict: false });
  // Another connection holds the write lock, as an operator's sqlite3 shell in a transaction would.
  const other = knex({ client: 'better-sqlite3', connection: { filename: path }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  await other.raw('BEGIN EXCLUSIVE');
  const body = { type: 'ganeti-op-status', instance: 'snf-1', operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [1, 0], jobId: 1, cluster: 'c1' };
  const delivery: Delivery = { queue: 'q', messageId: 'm', content: Buffer.from(JSON.stringify(body)) };
  const outcomes = await settleBatch(store, [delivery, delivery]);
  t.match(outcomes, [
    { kind: 'retry', reason: /SQLITE_BUSY|locked/ },
    { kind: 'retry', reason: /SQLITE_BUSY|locked/ },
  ]);
  await other.raw('ROLLBACK');
  await other.destroy();
  t.same(await db.knex('virtual_machines').select(), []);
  t.match(await settleBatch(store, [delivery]), [{ kind: 'ack', result: 'applied' }], 'applied once the lock is gone');
});

t.test('migrate: dispatchers starting together on a new PostgreSQL database all get the schema', async (t) => {
  // knex creates its bookkeeping tables with "exists? create": without care, two first starts at
  // once both create, and the loser fails on PostgreSQL's "already exists".
  for (let round = 0; round < 5; round++) {
    const url = await scratchPostgres(t);
    const dbs = Array.from({ length: 4 }, () => openDatabase(url));
    t.teardown(() => Promise.all(dbs.map((db) => db.knex.destroy())));
    const results = await Promise.allSettled(dbs.map((db) => migrate(db)));
    t.same(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], `round ${round}: every migrate succeeded`);
    t.ok(await dbs[0]!.knex.schema.hasTable('virtual_machines'), `round ${round}: the schema is there`);
  }
});

t.test('migrate: a migration lock left by a dispatcher that died while migrating does not block the next start', async (t) => {
  const url = await scratchPostgres(t);
  const db = openDatabase(url);
  t.teardown(() => db.knex.destroy());
  await migrate(db);
  // What knex leaves behind when its process dies between taking its lock and releasing it.
  await db.knex('dispatcher_migrations_lock').update({ is_locked: 1 });
  await migrate(db);
  t.same(await db.knex('dispatcher_migrations_lock').pluck('is_locked'), [0], 'the stale lock is cleared and released');
});
