// Hook environment → message, on every real Ganeti 3.0 hook environment (golden files, checked by hand
// against spec §3) and on variants built from them.

import t from 'tap';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import {
  HookEnvError,
  applyFirewallTags,
  buildNetStatus,
  checkTarget,
  hookAction,
  parseNics,
  sameHost,
  type HookEnv,
  type NetStatusNic,
} from '../../src/hooks/env.js';
import { GOLDEN_DIR, listFixtures, loadFixtureEnv } from './fixtures.js';

const NODE = 'node1.example.test';

/** What the hook does with an environment at time `t` (epoch seconds), as a JSON-able value. */
function outcome(env: HookEnv, t: number): unknown {
  const action = hookAction(env);
  if (action.action === 'skip') return action;
  const target = checkTarget(env, { nodeName: NODE, namePrefix: 'snf' });
  if (!target.ok) return { action: 'skip', reason: target.reason };
  const { message, warnings } = buildNetStatus(env, t * 1000);
  return { action: 'net-status', message, warnings };
}

t.test('every fixture environment gives its golden outcome', async (t) => {
  const fixtures = listFixtures();
  t.equal(fixtures.length, 41);
  const update = process.env['SNF_UPDATE_GOLDEN'] === '1';
  if (update) mkdirSync(GOLDEN_DIR, { recursive: true });
  let published = 0;
  for (const f of fixtures) {
    const got = outcome(loadFixtureEnv(f.name), f.t);
    const golden = `${GOLDEN_DIR}${f.name}.json`;
    if (update) writeFileSync(golden, JSON.stringify(got, null, 2) + '\n');
    t.ok(existsSync(golden), `${f.name}: golden file exists`);
    t.same(got, JSON.parse(readFileSync(golden, 'utf8')), f.name);
    const expectPublish = f.phase === 'post' && ['instance-add', 'instance-start', 'instance-reboot', 'instance-modify'].includes(f.hooksPath);
    t.equal((got as { action: string }).action, expectPublish ? 'net-status' : 'skip', `${f.name}: ${f.hooksPath} ${f.phase}`);
    if (expectPublish) published++;
  }
  t.equal(published, 8, 'add, start, 2 reboots and 4 modifies publish');
});

t.test('the instance-add post message, field by field (spec §3)', async (t) => {
  const { message, body, warnings } = buildNetStatus(loadFixtureEnv('07-instance-add-post'), 1795597948296.2387);
  t.same(warnings, []);
  t.equal(message.routingKey, 'ganeti.snf.event.net');
  t.equal(message.type, 'ganeti-net-status');
  t.equal(message.messageId, 'net:snf-1:instance-add:1795597948.296239');
  t.equal(message.timestampMs, 1795597948296.2387);
  t.same(body.event_time, [1795597948, 296239]);
  t.equal(body.instance, 'snf-1');
  t.equal(body.cluster, 'cluster1.example.test');
  t.same(body.nics, [
    {
      mac: 'aa:00:01:b1:67:50',
      ip: '10.10.0.3',
      network: 'snf-net-1',
      link: 'br-gnt',
      mode: 'bridged',
      name: 'nic0',
      uuid: '96b4a7fb-7fd6-42de-bda5-5858f3acb7dc',
      ipv6: '2001:db8:10:0:a800:1ff:feb1:6750',
    },
    // No IP (empty variable), no network, no name: those fields are left out.
    { mac: 'aa:00:00:11:22:33', link: 'br-gnt', mode: 'bridged', uuid: 'c18f78a2-a9db-4d30-a21b-9bc89b25f6a2' },
  ]);
  t.same(Object.keys(body.nics[0] as object), ['mac', 'ip', 'network', 'link', 'mode', 'name', 'uuid', 'ipv6']);
});

t.test('hookAction: only the post phase of the four paths publishes', async (t) => {
  const base = { GANETI_HOOKS_PHASE: 'post' };
  for (const p of ['instance-add', 'instance-start', 'instance-reboot', 'instance-modify']) {
    t.same(hookAction({ ...base, GANETI_HOOKS_PATH: p }), { action: 'net-status' }, p);
    t.equal(hookAction({ GANETI_HOOKS_PATH: p, GANETI_HOOKS_PHASE: 'pre' }).action, 'skip', `${p} pre`);
  }
  for (const p of ['instance-stop', 'instance-remove', 'network-add', 'cluster-init', 'instance-rename', 'x']) {
    t.equal(hookAction({ ...base, GANETI_HOOKS_PATH: p }).action, 'skip', `${p} post`);
  }
  t.throws(() => hookAction({ GANETI_HOOKS_PHASE: 'post' }), { name: 'HookEnvError', message: /^GANETI_HOOKS_PATH: missing/ });
  t.throws(() => hookAction({ GANETI_HOOKS_PATH: 'instance-add' }), { message: /^GANETI_HOOKS_PHASE: missing/ });
});

t.test('master only, Synnefo names only', async (t) => {
  const env = loadFixtureEnv('11-instance-start-post');
  t.same(checkTarget(env, { nodeName: NODE, namePrefix: 'snf' }), { ok: true, instance: 'snf-1' });
  t.same(checkTarget(env, { nodeName: 'NODE1.example.test.', namePrefix: 'snf' }), { ok: true, instance: 'snf-1' });
  t.same(checkTarget(env, { nodeName: 'node1', namePrefix: 'snf' }), { ok: true, instance: 'snf-1' }, 'short host name');
  const other = checkTarget(env, { nodeName: 'node2.example.test', namePrefix: 'snf' });
  t.equal(other.ok, false);
  t.match(other, { reason: /not the master \(node1\.example\.test\)/ });
  t.equal(checkTarget(env, { nodeName: 'node1.other.test', namePrefix: 'snf' }).ok, false, 'same short name, other domain');
  t.equal(checkTarget(env, { nodeName: NODE, namePrefix: 'cyc' }).ok, false, 'other prefix');
  t.equal(checkTarget(env, { nodeName: NODE, namePrefix: 'sn' }).ok, false, 'prefix must end at a dash');
  const foreign = { ...env, GANETI_INSTANCE_NAME: 'web1', GANETI_POST_INSTANCE_NAME: 'web1' };
  t.equal(checkTarget(foreign, { nodeName: NODE, namePrefix: 'snf' }).ok, false);
  t.same(checkTarget(foreign, { nodeName: NODE, namePrefix: null }), { ok: true, instance: 'web1' }, 'accept all');
  t.equal(buildNetStatus(foreign, 0).message.routingKey, 'ganeti.web1.event.net');
  t.throws(() => checkTarget({ ...env, GANETI_MASTER: undefined }, { nodeName: NODE, namePrefix: 'snf' }), { message: /^GANETI_MASTER: missing/ });
  t.ok(sameHost('a.b', 'A.B.'));
  t.notOk(sameHost('', 'a'));
});

/** A post-phase environment whose pre-op and post-op values differ. */
function withPost(env: Record<string, string>, changes: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = { ...env };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

const dropVars = (env: Record<string, string>, re: RegExp): Record<string, string | undefined> =>
  Object.fromEntries(Object.keys(env).filter((k) => re.test(k)).map((k) => [k, undefined]));

t.test('post phase: the GANETI_POST_* state wins over the pre-op one', async (t) => {
  const env = loadFixtureEnv('17-instance-modify-post'); // 3 NICs before and after
  // The op removed NIC 2 and changed NIC 1's IP: only the POST variables say so.
  const after = withPost(env, {
    ...dropVars(env, /^GANETI_POST_INSTANCE_NIC2_/),
    GANETI_POST_INSTANCE_NIC_COUNT: '2',
    GANETI_POST_INSTANCE_NIC1_IP: '192.0.2.55',
    GANETI_POST_INSTANCE_TAGS: 'synnefo:network:1:protected',
  });
  const { body } = buildNetStatus(after, 0);
  t.equal(body.nics.length, 2, 'the removed NIC is not resurrected from the pre-op variables');
  t.equal(body.nics[1]?.ip, '192.0.2.55');
  t.equal(body.nics[1]?.firewall, 'protected', 'post-op tags');
  // The same variables in the pre phase are ignored there: the pre-op ones are used.
  const pre = { ...after, GANETI_HOOKS_PHASE: 'pre' };
  const preNics = parseNics(pre);
  t.equal(preNics.length, 3);
  t.equal(preNics[1]?.ip, undefined);
  // A post phase without POST NIC variables falls back to the pre-op ones.
  const noPost = withPost(env, dropVars(env, /^GANETI_POST_/));
  t.equal(parseNics(noPost).length, 3);
  // An instance renamed by the op is published under its new name.
  t.equal(buildNetStatus(withPost(env, { GANETI_POST_INSTANCE_NAME: 'snf-99' }), 0).body.instance, 'snf-99');
});

t.test('firewall tags by NIC index and by NIC name', async (t) => {
  const env = loadFixtureEnv('17-instance-modify-post'); // NIC names nic0, (none), nic2
  const tagged = (tags: string) => buildNetStatus({ ...env, GANETI_POST_INSTANCE_TAGS: tags }, 0);
  let r = tagged('synnefo:instance:1 synnefo:network:0:protected synnefo:network:nic2:limited synnefo:network:1:unprotected');
  t.same(r.body.nics.map((n) => n.firewall), ['protected', 'unprotected', 'limited']);
  t.same(r.warnings, []);
  r = tagged('synnefo:network:nic0:limited');
  t.same(r.body.nics.map((n) => n.firewall), ['limited', undefined, undefined]);
  t.notOk('firewall' in (r.body.nics[1] as object), 'no firewall field without a tag');

  r = tagged('synnefo:network:7:protected synnefo:network:nic9:limited synnefo:network:0 synnefo:network:0:a:b synnefo:network::x');
  t.same(r.body.nics.map((n) => n.firewall), [undefined, undefined, undefined]);
  t.equal(r.warnings.length, 5, 'each bad tag is a warning, not an error');
  t.match(r.warnings[0], /GANETI_POST_INSTANCE_TAGS: /);

  r = tagged('synnefo:network:0:unprotected synnefo:network:nic0:protected');
  t.equal(r.body.nics[0]?.firewall, 'unprotected', 'conflicting tags: the first in sorted order wins');
  t.equal(r.warnings.length, 1);

  const nics: NetStatusNic[] = [{ mac: 'aa:00:00:00:00:01', name: '5' }];
  applyFirewallTags(nics, 'synnefo:network:0:protected', 'T');
  t.equal(nics[0]?.firewall, 'protected', 'a number is an index, as Ganeti reads NIC identifiers');
  t.same(applyFirewallTags(nics, undefined, 'T'), []);
});

t.test('NETWORK_NAME (Ganeti >= 2.7) or NETWORK (before), LINK or BRIDGE', async (t) => {
  const env = loadFixtureEnv('13-instance-reboot-post');
  const old = withPost(env, {
    ...dropVars(env, /^GANETI_(POST_)?INSTANCE_NIC0_(NETWORK_NAME|LINK)$/),
    GANETI_POST_INSTANCE_NIC0_NETWORK: 'snf-net-legacy',
  });
  const nic0 = parseNics(old)[0];
  t.equal(nic0?.network, 'snf-net-legacy');
  t.equal(nic0?.link, 'br-gnt', 'BRIDGE when there is no LINK');
});

t.test('inconsistent NIC variables are errors naming the variable', async (t) => {
  const env = loadFixtureEnv('07-instance-add-post');
  const bad = (changes: Record<string, string | undefined>, variable: string, message: RegExp, what: string) => {
    let err: unknown;
    try {
      buildNetStatus(withPost(env, changes), 0);
    } catch (e) {
      err = e;
    }
    t.type(err, HookEnvError, what);
    t.equal((err as HookEnvError).variable, variable, `${what}: variable`);
    t.match((err as Error).message, message, `${what}: message`);
  };
  bad({ GANETI_POST_INSTANCE_NIC_COUNT: '3' }, 'GANETI_POST_INSTANCE_NIC2_*', /no variables for NIC 2 of 3/, 'count larger than the NICs');
  bad({ GANETI_POST_INSTANCE_NIC_COUNT: '1' }, 'GANETI_POST_INSTANCE_NIC1_BRIDGE', /NIC index 1, but GANETI_POST_INSTANCE_NIC_COUNT=1/, 'count smaller than the NICs');
  bad({ ...dropVars(env, /^GANETI_POST_INSTANCE_NIC0_/), GANETI_POST_INSTANCE_NIC_COUNT: '2', GANETI_POST_INSTANCE_NIC2_MAC: 'aa:00:00:00:00:02' }, 'GANETI_POST_INSTANCE_NIC2_MAC', /NIC index 2/, 'gap');
  bad(dropVars(env, /^GANETI_POST_INSTANCE_NIC0_/), 'GANETI_POST_INSTANCE_NIC0_*', /no variables for NIC 0/, 'gap at 0');
  bad({ GANETI_POST_INSTANCE_NIC_COUNT: 'two' }, 'GANETI_POST_INSTANCE_NIC_COUNT', /not a NIC count/, 'count not a number');
  bad({ ...dropVars(env, /NIC_COUNT$/) }, 'GANETI_INSTANCE_NIC_COUNT', /missing/, 'no count at all');
  bad({ GANETI_POST_INSTANCE_NIC1_MAC: 'aa:00:00:11:22' }, 'GANETI_POST_INSTANCE_NIC1_MAC', /not a MAC address/, 'short MAC');
  bad({ GANETI_POST_INSTANCE_NIC1_MAC: 'zz:00:00:11:22:33' }, 'GANETI_POST_INSTANCE_NIC1_MAC', /not a MAC address/, 'non-hex MAC');
  bad({ GANETI_POST_INSTANCE_NIC1_MAC: '' }, 'GANETI_POST_INSTANCE_NIC1_MAC', /empty/, 'empty MAC');
  bad({ GANETI_POST_INSTANCE_NIC1_MAC: undefined }, 'GANETI_POST_INSTANCE_NIC1_MAC', /missing/, 'no MAC');
  bad({ GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '2001:db8:10::/48' }, 'GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6', /not an IPv6 \/64 prefix \(prefix length 48/, '/48');
  bad({ GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '10.10.0.0/24' }, 'GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6', /not an IPv6 \/64 prefix/, 'IPv4 subnet');
  bad({ GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '2001:db8:10::' }, 'GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6', /no prefix length/, 'no length');
  bad({ GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '2001:db8:::/64' }, 'GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6', /not an IPv6 address/, 'bad address');
  bad({ GANETI_INSTANCE_NAME: undefined, GANETI_POST_INSTANCE_NAME: undefined }, 'GANETI_INSTANCE_NAME', /missing/, 'no name');
  // An empty SUBNET6 (a network without IPv6) is no error: there is just no ipv6 field.
  t.notOk('ipv6' in (buildNetStatus(withPost(env, { GANETI_POST_INSTANCE_NIC0_NETWORK_SUBNET6: '' }), 0).body.nics[0] as object));
});

t.test('NIC_COUNT=0 gives an empty list', async (t) => {
  const env = loadFixtureEnv('07-instance-add-post');
  const none = withPost(env, { ...dropVars(env, /^GANETI_(POST_)?INSTANCE_NIC\d/), GANETI_POST_INSTANCE_NIC_COUNT: '0' });
  t.same(buildNetStatus(none, 0).body.nics, []);
});
