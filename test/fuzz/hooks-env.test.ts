// Fuzzing the hook environment parser (src/hooks/env.ts, through snf-ganeti-hook's runHook): generated
// environments, mutations of the 41 captured Ganeti 3.0 hook environments, and EUI-64 addresses
// against a reference built on the WHATWG URL parser. The contract checked: every problem is a
// HookEnvError whose message starts with the variable at fault; the hook exits 0 or reports that
// error (never an unexpected exception); the captured environments, with their variables in any
// order and unrelated variables added or changed, still give exactly the golden outcome.

import t from 'tap';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Eui64Error, eui64 } from '../../src/hooks/eui64.js';
import { HookEnvError, buildNetStatus, checkTarget, hookAction, parseNics, type HookEnv } from '../../src/hooks/env.js';
import { PROGRAM, runHook } from '../../src/hooks/hook.js';
import { shuffle, prng } from '../fixtures/dispatcher/stream.js';
import { GOLDEN_DIR, listFixtures, loadFixtureEnv } from '../hooks/fixtures.js';
import { anyText, fuzz } from './fuzz.js';

const NODE = 'node1.example.test';
const fixtures = listFixtures().map((f) => ({ ...f, env: loadFixtureEnv(f.name) }));
const NAMESPACES = ['GANETI_INSTANCE_', 'GANETI_POST_INSTANCE_'] as const;
const NIC_FIELDS = ['MAC', 'IP', 'NETWORK_NAME', 'NETWORK', 'LINK', 'BRIDGE', 'MODE', 'NAME', 'UUID', 'NETWORK_SUBNET6', 'VLAN', 'NETWORK_TAGS', 'X', '_'];

/** What the hook does with `env`: skip with a reason, queue a message (and log warnings), or fail. */
async function hookOutcome(env: HookEnv, nowMs: number): Promise<unknown> {
  const lines: string[] = [];
  const out = await runHook({
    env,
    now: () => nowMs,
    hostname: () => NODE,
    readFile: () => undefined,
    log: (line) => lines.push(line),
    putSync: () => 'entry-1',
  });
  if (out.kind === 'skipped') return { action: 'skip', reason: out.reason };
  if (out.kind === 'queued') return { action: 'net-status', message: out.message, warnings: lines.map((l) => l.replace(`${PROGRAM}: warning: `, '')) };
  return { action: 'error', error: out.error, lines };
}

// ---- generated environments ---------------------------------------------------------------------

const variableName = fc.oneof(
  fc.constantFrom(
    'GANETI_HOOKS_PATH',
    'GANETI_HOOKS_PHASE',
    'GANETI_MASTER',
    'GANETI_CLUSTER',
    'GANETI_INSTANCE_NAME',
    'GANETI_POST_INSTANCE_NAME',
    'SNF_GTOOLS_HOOK_ALL_INSTANCES',
    ...NAMESPACES.flatMap((ns) => [`${ns}NIC_COUNT`, `${ns}TAGS`]),
  ),
  fc
    .record({ ns: fc.constantFrom(...NAMESPACES), index: fc.oneof(fc.nat({ max: 4 }), fc.constantFrom('00', '01', '99999999999999999999', '')), field: fc.constantFrom(...NIC_FIELDS) })
    .map(({ ns, index, field }) => `${ns}NIC${index}_${field}`),
  fc.string({ unit: fc.constantFrom('G', 'A', 'N', 'E', 'T', 'I', '_', 'N', 'C', '0', '1', 'P', 'O', 'S'), maxLength: 24 }),
  fc.string({ maxLength: 12 }),
);

const mac = fc
  .tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.boolean())
  .map(([b, upper]) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':')[upper ? 'toUpperCase' : 'toLowerCase']());

const variableValue = fc.oneof(
  fc.constantFrom('', ' ', 'post', 'pre', 'instance-add', 'instance-start', 'instance-reboot', 'instance-modify', 'instance-stop'),
  fc.constantFrom(NODE, 'NODE1.example.test.', 'node1', 'node2.example.test', 'snf-1', 'snf-', 'web1', '-', 'snf-1 snf-2'),
  fc.constantFrom('0', '1', '2', '3', '9999', '10000', '-1', '01', ' 1', '1e3', 'yes'),
  mac,
  fc.constantFrom('aa:00:00:11:22', 'zz:00:00:11:22:33', 'aa-00-00-11-22-33', 'aa:00:00:11:22:33:44'),
  fc.constantFrom('2001:db8::/64', '::/64', '::ffff:1.2.3.4/64', '2001:db8::/48', '2001:db8::', '10.0.0.0/24', '/64', '2001:db8:::/64'),
  fc.constantFrom('synnefo:network:0:protected', 'synnefo:network:nic0:limited synnefo:network:0:x', 'synnefo:network::', 'synnefo:network:99999999999999999999:x'),
  anyText,
);

/** A captured environment (or none) with a few values cut short, and variables set, changed or removed. */
const environment: fc.Arbitrary<Record<string, string>> = fc
  .record({
    base: fc.option(fc.nat({ max: fixtures.length - 1 }), { nil: undefined }),
    edits: fc.array(fc.tuple(variableName, fc.option(variableValue, { nil: undefined })), { maxLength: 8 }),
    dropNth: fc.array(fc.nat(), { maxLength: 3 }),
    cutNth: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 }),
  })
  .map(({ base, edits, dropNth, cutNth }) => {
    const env: Record<string, string> = base === undefined ? {} : { ...fixtures[base]?.env };
    const keys = Object.keys(env);
    for (const [n, cut] of cutNth) {
      const key = keys[n % Math.max(1, keys.length)];
      if (key !== undefined) env[key] = (env[key] ?? '').slice(0, cut % ((env[key] ?? '').length + 1));
    }
    for (const n of dropNth) if (keys.length > 0) delete env[keys[n % keys.length] as string];
    for (const [name, value] of edits) {
      if (value === undefined) delete env[name];
      else env[name] = value;
    }
    return env;
  });

/** Runs one entry point; a HookEnvError must start with a variable that explains it. */
function assertCleanFailure(env: Record<string, string>, run: () => unknown): void {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof HookEnvError, `only HookEnvError, got ${String(err)}`);
    assert.ok(err.variable.length > 0);
    assert.ok(err.message.startsWith(`${err.variable}: `), err.message);
    assert.ok(err.message.length > err.variable.length + 2, 'says what is wrong');
    // The culprit is a variable of this environment, or one that is missing, or a NIC's whole set.
    const named = err.variable in env || /: missing/.test(err.message) || /^GANETI_(POST_)?INSTANCE_NIC\d+_\*$/.test(err.variable);
    assert.ok(named, `${err.message} names a variable of the environment`);
  }
}

t.test('generated environments: a message, a skip, or a HookEnvError naming the variable', async (t) => {
  let failures = 0;
  await fuzz(
    t,
    fc.asyncProperty(environment, async (env) => {
      const filter = { nodeName: NODE, namePrefix: null };
      assertCleanFailure(env, () => hookAction(env));
      assertCleanFailure(env, () => checkTarget(env, filter));
      assertCleanFailure(env, () => parseNics(env));
      assertCleanFailure(env, () => {
        const { message, body } = buildNetStatus(env, 1_795_597_948_296.2388);
        assert.equal(message.body, body as unknown);
        assert.equal(typeof JSON.stringify(body), 'string');
        for (const nic of body.nics) assert.match(nic.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i);
      });
      const out = (await hookOutcome(env, 1_795_597_948_296)) as { action: string; error?: string };
      if (out.action === 'error') {
        failures++;
        assert.doesNotMatch(out.error ?? '', /^unexpected/, 'only expected failures');
      }
    }),
  );
  t.ok(failures > 0, `${failures} environments refused`);
});

// ---- the captured environments, rearranged ------------------------------------------------------

/** Variables the hook never reads: their presence, absence and values make no difference. */
function irrelevant(name: string): boolean {
  if (name.startsWith('SNF_GTOOLS_')) return false;
  if (['GANETI_HOOKS_PATH', 'GANETI_HOOKS_PHASE', 'GANETI_MASTER', 'GANETI_CLUSTER'].includes(name)) return false;
  for (const ns of NAMESPACES) {
    if (!name.startsWith(ns)) continue;
    const rest = name.slice(ns.length);
    if (['NAME', 'NIC_COUNT', 'TAGS'].includes(rest) || /^NIC\d/.test(rest)) return false;
  }
  return true;
}

/** NIC variables Ganeti sets that the hook does not read: their values (not their presence) are irrelevant. */
const UNREAD_NIC_FIELD = /^GANETI_(POST_)?INSTANCE_NIC\d+_(VLAN|NETWORK_GATEWAY6?|NETWORK_MAC_PREFIX|NETWORK_TAGS|NETWORK_UUID|NETWORK_SUBNET)$/;

const extraName = fc
  .tuple(fc.constantFrom('GANETI_OP_', 'GANETI_INSTANCE_BE_', 'GANETI_POST_INSTANCE_HV_', 'GANETI_NEW_', 'GANETI_', 'LC_', 'X', 'PATH'), fc.string({ unit: fc.constantFrom('A', 'b', '_', '1', 'Z'), maxLength: 10 }))
  .map(([p, s]) => p + s)
  .filter(irrelevant);

t.test('every captured environment, reordered, with unrelated variables added or changed, gives its golden outcome', async (t) => {
  const golden = fixtures.map((f) => JSON.parse(readFileSync(`${GOLDEN_DIR}${f.name}.json`, 'utf8')) as unknown);
  const arb = fc.record({
    i: fc.nat({ max: fixtures.length - 1 }),
    order: fc.integer(),
    added: fc.array(fc.tuple(extraName, anyText), { maxLength: 6 }),
    changed: fc.array(fc.tuple(fc.nat(), anyText), { maxLength: 6 }),
  });
  await fuzz(
    t,
    fc.asyncProperty(arb, async ({ i, order, added, changed }) => {
      const f = fixtures[i] as (typeof fixtures)[number];
      const changeable = Object.keys(f.env).filter((k) => irrelevant(k) || UNREAD_NIC_FIELD.test(k));
      const vars: Record<string, string> = { ...f.env };
      for (const [n, value] of changed) if (changeable.length > 0) vars[changeable[n % changeable.length] as string] = value;
      for (const [name, value] of added) if (!(name in f.env)) vars[name] = value;
      const env = Object.fromEntries(shuffle(Object.entries(vars), prng(order)));
      assert.deepEqual(await hookOutcome(env, f.t * 1000), golden[i]);
    }),
  );
});

// ---- EUI-64 against a reference -----------------------------------------------------------------

/** The 8 groups of an IPv6 address as the WHATWG URL parser reads it, or undefined if it refuses it. */
function whatwgGroups(address: string): number[] | undefined {
  let host: string;
  try {
    host = new URL(`http://[${address}]/`).hostname;
  } catch {
    return undefined;
  }
  // The URL serialiser writes hex groups with at most one `::`, never a dotted quad.
  const [left = '', right] = host.slice(1, -1).split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  if (right === undefined) return groups(left);
  const l = groups(left);
  const r = groups(right);
  return [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
}

/** RFC 4291 appendix A, written out: the /64 of the prefix, then the MAC with ff:fe inside and the U/L bit flipped. */
function referenceEui64(macText: string, prefix: string): string | undefined {
  const [address, length, ...rest] = prefix.split('/');
  if (address === undefined || length !== '64' || rest.length > 0) return undefined;
  const net = whatwgGroups(address);
  if (net === undefined) return undefined;
  const b = macText.split(':').map((h) => parseInt(h, 16));
  const iid = [(((b[0] ?? 0) ^ 0x02) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | 0xff, (0xfe << 8) | (b[3] ?? 0), ((b[4] ?? 0) << 8) | (b[5] ?? 0)];
  // Formatting is the URL serialiser's too (RFC 5952: lower case, longest zero run as `::`).
  return new URL(`http://[${[...net.slice(0, 4), ...iid].map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

/** IPv6 text in the spellings people and Ganeti use: full, compressed, padded, upper case, dotted tail. */
const ipv6Text = fc
  .record({
    groups: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
    compressAt: fc.nat({ max: 8 }),
    compressLen: fc.nat({ max: 8 }),
    pad: fc.boolean(),
    upper: fc.boolean(),
    dotted: fc.boolean(),
  })
  .map(({ groups, compressAt, compressLen, pad, upper, dotted }) => {
    const hex = (g: number) => (pad ? g.toString(16).padStart(4, '0') : g.toString(16));
    let parts = groups.map(hex);
    if (dotted) parts = [...parts.slice(0, 6), `${(groups[6] ?? 0) >> 8}.${(groups[6] ?? 0) & 255}.${(groups[7] ?? 0) >> 8}.${(groups[7] ?? 0) & 255}`];
    let text = parts.join(':');
    const end = Math.min(parts.length, compressAt + compressLen);
    if (compressLen > 0 && compressAt < parts.length) text = `${parts.slice(0, compressAt).join(':')}::${parts.slice(end).join(':')}`;
    return upper ? text.toUpperCase() : text;
  });

const prefixText = fc.oneof(
  { weight: 4, arbitrary: ipv6Text.map((a) => `${a}/64`) },
  { weight: 1, arbitrary: fc.tuple(ipv6Text, fc.constantFrom('48', '128', '064', '', '64 ', '6x')).map(([a, l]) => `${a}/${l}`) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('0', '1', 'a', 'F', 'g', ':', ':', '.', '/', '6', '4', '2', '5'), maxLength: 46 }) },
);

t.test('EUI-64 addresses equal a reference built on the WHATWG URL parser', async (t) => {
  let computed = 0;
  await fuzz(
    t,
    fc.property(mac, prefixText, (m, prefix) => {
      const want = referenceEui64(m, prefix);
      let got: string | undefined;
      try {
        got = eui64(m, prefix);
      } catch (err) {
        assert.ok(err instanceof Eui64Error, `only Eui64Error, got ${String(err)}`);
        assert.ok(err.message.includes(JSON.stringify(prefix)), err.message);
      }
      assert.equal(got, want, `${m} in ${prefix}`);
      if (got !== undefined) computed++;
    }),
  );
  t.ok(computed > 0, `${computed} addresses computed`);
});
