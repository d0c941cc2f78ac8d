// Hostile input, end to end through real processes: hook environments full of shell metacharacters,
// `../` paths, SQL, newlines and very long values run through the compiled snf-ganeti-hook as Ganeti
// runs it; what it queues, plus eventd-shaped messages with hostile names and fields, goes through a
// real broker to a real snf-dispatcher on SQLite and on PostgreSQL. Nothing is executed (no canary
// file ever appears), nothing is written outside the outbox, every value is stored verbatim as data or
// the message is rejected with a reason, and the database's tables are all still there.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Knex } from 'knex';
import type { OutgoingMessage } from '../../src/common/message.js';
import { openDatabase } from '../../src/dispatcher/db.js';
import { servers } from '../../src/dispatcher/views.js';
import { buildHook } from '../hooks/build.js';
import { loadFixtureEnv } from '../hooks/fixtures.js';
import { DB_KINDS, openScratch, scratchBroker, scratchDatabase, scratchDir, waitFor, type Broker, type DbKind } from '../fixtures/dispatcher/helpers.js';
import { isolatedEnv, spawnDaemon } from '../fixtures/dispatcher/spawn.js';
import type { StreamMessage } from '../fixtures/dispatcher/stream.js';

const hook = buildHook();
/** Outbox entries are named by the outbox, never by input: `<ms>-<pid>-<seq>.msgs`. */
const ENTRY_NAME = /^\d{13}-\d+-\d+\.msgs$/;
const SQL = "'); DROP TABLE virtual_machines;--";

/** Every file under `dir` (relative paths), so that a write anywhere in the sandbox shows. */
function tree(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => statSync(join(dir, p)).isFile())
    .sort();
}

/** The payloads that would run a command if any reached a shell; each touches its own canary file. */
function shellPayloads(canaryDir: string): string[] {
  const canary = (n: number) => join(canaryDir, `canary-${n}`);
  return [`$(touch ${canary(1)})`, `\`touch ${canary(2)}\``, `; touch ${canary(3)};`, `| touch ${canary(4)}`, `&& touch ${canary(5)}`, `\ntouch ${canary(6)}\n`];
}

interface HookCase {
  name: string;
  /** Variables set over the instance-add post fixture. */
  vars: Record<string, string>;
}

function hookCases(prefix: string, canaryDir: string): HookCase[] {
  const shells = shellPayloads(canaryDir);
  const cases: HookCase[] = shells.map((p, i) => ({
    name: `instance name with shell payload ${i + 1}`,
    vars: { GANETI_INSTANCE_NAME: `${prefix}-${i + 1}${p}`, GANETI_POST_INSTANCE_NAME: `${prefix}-${i + 1}${p}` },
  }));
  cases.push(
    { name: 'instance name with ../ (a path, were it used as one)', vars: { GANETI_POST_INSTANCE_NAME: `${prefix}-../../../../escaped`, GANETI_INSTANCE_NAME: `${prefix}-../../../../escaped` } },
    { name: 'instance name with SQL', vars: { GANETI_POST_INSTANCE_NAME: `${prefix}-10${SQL}`, GANETI_INSTANCE_NAME: `${prefix}-10${SQL}` } },
    { name: 'instance name of 100 000 characters', vars: { GANETI_POST_INSTANCE_NAME: `${prefix}-${'x'.repeat(100_000)}`, GANETI_INSTANCE_NAME: `${prefix}-${'x'.repeat(100_000)}` } },
    {
      name: 'NIC fields with shell, paths and SQL',
      vars: {
        GANETI_POST_INSTANCE_NAME: `${prefix}-11`,
        GANETI_POST_INSTANCE_NIC0_NETWORK_NAME: `${prefix}-net-../../../etc/passwd'); DROP TABLE networks;--`,
        GANETI_POST_INSTANCE_NIC0_NAME: shells[0] ?? '',
        GANETI_POST_INSTANCE_NIC0_LINK: shells[1] ?? '',
        GANETI_POST_INSTANCE_NIC0_IP: `10.10.0.3${shells[2] ?? ''}`,
        GANETI_POST_INSTANCE_NIC0_UUID: `${shells[5] ?? ''}`,
        GANETI_CLUSTER: `cluster${SQL}`,
        GANETI_POST_INSTANCE_TAGS: `synnefo:network:0:${shells[3] ?? ''} synnefo:instance:1${SQL}`,
      },
    },
    { name: 'a MAC address with a payload (rejected)', vars: { GANETI_POST_INSTANCE_NAME: `${prefix}-12`, GANETI_POST_INSTANCE_NIC0_MAC: `aa:00:01:b1:67:50${shells[0] ?? ''}` } },
    { name: 'hooks path with ../ and a payload (not ours)', vars: { GANETI_HOOKS_PATH: `../../instance-add${shells[0] ?? ''}` } },
    { name: 'master name with a payload (not this node)', vars: { GANETI_MASTER: `node1${shells[1] ?? ''}` } },
  );
  return cases;
}

interface HookRun {
  code: number | null;
  stderr: string;
}

/** The compiled hook with exactly `env` (Ganeti clears the environment), in `cwd`. */
function runHook(env: Record<string, string>, cwd: string): Promise<HookRun> {
  const child = spawn(process.execPath, [hook], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

/** eventd-shaped op-status messages (job 4's CREATE success) with hostile names and fields. */
function hostileOpStatus(prefix: string, canaryDir: string): StreamMessage[] {
  const shells = shellPayloads(canaryDir);
  const base = (instance: string, n: number, extra: Record<string, unknown> = {}): StreamMessage => ({
    routingKey: `ganeti.${prefix}.event.op`,
    messageId: `hostile:${n}`,
    type: 'ganeti-op-status',
    body: {
      type: 'ganeti-op-status',
      instance,
      operation: 'OP_INSTANCE_CREATE',
      tags: ['synnefo:instance:1'],
      job_fields: {},
      event_time: [1795597948, 305972 + n],
      status: 'success',
      cluster: 'cluster1.example.test',
      logmsg: '* starting instance...',
      result: ['node1.example.test'],
      jobId: 4,
      ...extra,
    },
  });
  return [
    base(`${prefix}-20${SQL}`, 1),
    base(`${prefix}-21`, 2, { logmsg: `${SQL}${shells[0]}`, cluster: `c${SQL}` }),
    base(`${prefix}-22`, 3, { operation: `OP_INSTANCE_CREATE${SQL}` }),
    base(`${prefix}-23`, 4, { tags: [`synnefo:instance:1${SQL}`, shells[1]] }),
    base(`${prefix}-../../../../tmp/escaped${shells[2]}`, 5),
  ];
}

async function tableNames(knex: Knex, kind: DbKind): Promise<string[]> {
  const rows =
    kind === 'sqlite'
      ? await knex('sqlite_master').where({ type: 'table' }).select('name')
      : await knex('pg_tables').where({ schemaname: 'public' }).select({ name: 'tablename' });
  return rows.map((r: { name: string }) => r.name).sort();
}

async function dispatchAll(t: Test, kind: DbKind, broker: Broker, messages: readonly StreamMessage[], canaryDir: string) {
  for (const m of messages) broker.publish(m);
  await broker.channel.waitForConfirms();
  const dbUrl = await scratchDatabase(t, kind);
  const env = isolatedEnv(t);
  const dispatcher = spawnDaemon(t, ['--db-url', dbUrl, '--prefix', broker.topology.prefix, '--exchange', broker.topology.exchange, '--log-level', 'debug'], env);
  const settled = () => dispatcher.lines.filter((l) => ['message applied', 'message ignored', 'message dead-lettered'].includes(String(l.msg)));
  await waitFor(() => settled().length >= messages.length, 90_000, `the dispatcher settling ${messages.length} messages (${kind})`).catch((err: Error) => {
    throw new Error(`${err.message}\n${dispatcher.lines.slice(-10).map((l) => JSON.stringify(l).slice(0, 400)).join('\n')}`);
  });
  dispatcher.child.kill('SIGTERM');
  await dispatcher.exited;
  t.equal(settled().length, messages.length, `${kind}: every message settled exactly once`);
  for (const l of settled().filter((l) => l.msg === 'message dead-lettered')) t.match(l, { reason: /\S/ }, `${kind}: a rejected message has its reason in the log (${String(l.reason).slice(0, 100)})`);
  t.same(readdirSync(canaryDir), [], `${kind}: no canary file: nothing was executed`);
  const db = openDatabase(dbUrl);
  t.teardown(() => db.knex.destroy());
  return { db, lines: dispatcher.lines };
}

t.test('hostile hook environments, then the dispatcher on what the hook queued', async (t) => {
  const sandbox = scratchDir(t);
  const canaryDir = join(sandbox, 'canaries');
  mkdirSync(canaryDir);
  const outbox = join(sandbox, 'spool', 'outbox');
  // The broker's prefix, so that the hook's names are the dispatcher's.
  const broker = await scratchBroker(t);
  const prefix = broker.topology.prefix;
  const settings = join(sandbox, 'settings');
  writeFileSync(settings, `SNF_GTOOLS_OUTBOX_DIR=${outbox}\nSNF_GTOOLS_NODE_NAME=node1.example.test\nSNF_GTOOLS_PREFIX=${prefix}\n`, { mode: 0o600 });
  const before = tree(sandbox);

  const queued: OutgoingMessage[] = [];
  for (const c of hookCases(prefix, canaryDir)) {
    const env: Record<string, string> = { ...loadFixtureEnv('07-instance-add-post'), ...c.vars, SNF_GTOOLS_SETTINGS_FILE: settings };
    const entriesBefore = existsSync(outbox) ? readdirSync(outbox) : [];
    const r = await runHook(env, sandbox);
    const added = (existsSync(outbox) ? readdirSync(outbox) : []).filter((n) => !entriesBefore.includes(n));
    if (r.code === 0) {
      t.equal(r.stderr, '', `${c.name}: nothing to complain about`);
      for (const name of added) {
        t.match(name, ENTRY_NAME, `${c.name}: the entry's name is the outbox's own`);
        const messages = readFileSync(join(outbox, name), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as OutgoingMessage);
        const expected = env['GANETI_POST_INSTANCE_NAME'];
        t.equal(messages[0]?.body['instance'], expected, `${c.name}: the name is carried verbatim, as data`);
        queued.push(...messages);
      }
    } else {
      t.equal(r.code, 1, `${c.name}: refused`);
      t.match(r.stderr, /^snf-ganeti-hook: error: GANETI_[A-Z0-9_]+: .*; nothing was sent\n$/, `${c.name}: a clear error naming the variable`);
      t.same(added, [], `${c.name}: nothing queued`);
    }
  }
  t.same(readdirSync(canaryDir), [], 'no canary file: the hook executed nothing');
  const outboxRel = relative(sandbox, outbox);
  t.same(tree(sandbox).filter((p) => !p.startsWith(`${outboxRel}/`)), before, 'nothing written outside the outbox');
  t.notOk(existsSync(join(sandbox, '..', '..', '..', '..', 'escaped')) || existsSync('/escaped'), 'no file made from a ../ name');
  t.ok(queued.length >= 9, `the hook queued the hostile-but-valid cases (${queued.length})`);

  // AMQP carries a message id of at most 255 bytes; the hook builds its id from the instance name, so
  // the 100 000-character name must still give one that fits (boundedMessageId).
  const publishable = queued.filter((m) => Buffer.byteLength(m.messageId) <= 255);
  t.equal(publishable.length, queued.length, 'every message the hook queues has a message id AMQP can carry (<= 255 bytes)');
  const stream: StreamMessage[] = [...publishable.map((m) => ({ routingKey: m.routingKey, messageId: m.messageId, type: m.type, body: m.body })), ...hostileOpStatus(prefix, canaryDir)];
  for (const kind of DB_KINDS) {
    await t.test(kind, async (t) => {
      const kindBroker = kind === 'sqlite' ? broker : await scratchBroker(t);
      const rename = (v: unknown): unknown => (typeof v === 'string' && v.startsWith(`${prefix}-`) ? `${kindBroker.topology.prefix}-${v.slice(prefix.length + 1)}` : v);
      const messages = stream.map((m) => ({ ...m, routingKey: m.routingKey.replace(`ganeti.${prefix}.`, `ganeti.${kindBroker.topology.prefix}.`), body: { ...m.body, instance: rename(m.body['instance']) } }));
      const { db, lines } = await dispatchAll(t, kind, kindBroker, messages, canaryDir);
      const fresh = await openScratch(t, kind);
      t.same(await tableNames(db.knex, kind), await tableNames(fresh.knex, kind), `${kind}: every table is still there`);
      const p = kindBroker.topology.prefix;
      const outcome = (id: string) => lines.find((l) => l.messageId === id && typeof l.msg === 'string' && l.msg.startsWith('message '));
      const byName = new Map((await servers(db)).map((v) => [v.name, v]));
      // Names that are not `<prefix>-<digits>` are not the cloud's VMs: ignored, whatever they hold.
      for (const m of messages.filter((m) => typeof m.body['instance'] === 'string' && !/^\d+$/.test(String(m.body['instance']).slice(p.length + 1)))) {
        t.match(outcome(m.messageId), { msg: 'message ignored', reason: 'name without our prefix' }, `${kind}: ${JSON.stringify(String(m.body['instance']).slice(0, 50))} ignored as not ours`);
        t.notOk(byName.has(String(m.body['instance'])), `${kind}: no row for it`);
      }
      // Hostile values in the fields of our VMs' messages are stored as they came, as data.
      const payload = shellPayloads(canaryDir);
      t.equal(byName.get(`${p}-21`)?.job.logmsg, `${SQL}${payload[0]}`, `${kind}: a hostile log message, verbatim`);
      t.equal(byName.get(`${p}-21`)?.cluster, `c${SQL}`, `${kind}: a hostile cluster name, verbatim`);
      t.equal(byName.get(`${p}-22`)?.job.opcode, `OP_INSTANCE_CREATE${SQL}`, `${kind}: a hostile opcode, verbatim`);
      t.same([...(byName.get(`${p}-23`)?.tags ?? [])].sort(), [`synnefo:instance:1${SQL}`, payload[1]].sort(), `${kind}: hostile tags, verbatim`);
      const nic = byName.get(`${p}-11`)?.nics[0];
      t.match(nic, { ipv4: `10.10.0.3${payload[2]}` }, `${kind}: a hostile NIC address from the hook, verbatim`);
      t.ok((await db.knex('nics').where({ name: payload[0], link: payload[1] }).first()) !== undefined, `${kind}: hostile NIC name and link from the hook, verbatim`);
      t.equal(byName.get(`${p}-11`)?.cluster, `cluster${SQL}`, `${kind}: the hook's hostile GANETI_CLUSTER, verbatim`);
    });
  }
});
