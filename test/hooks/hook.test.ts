// runHook with its I/O faked: what the hook decides, logs and hands to the outbox.

import t from 'tap';
import type { OutgoingMessage } from '../../src/common/message.js';
import { runHook, type HookIo } from '../../src/hooks/hook.js';
import { DEFAULT_OUTBOX_DIR, loadHookSettings, parseKeyValueFile } from '../../src/hooks/settings.js';
import { loadFixtureEnv } from './fixtures.js';

function io(env: Record<string, string | undefined>, files: Record<string, string> = {}) {
  const lines: string[] = [];
  const puts: { dir: string; messages: OutgoingMessage[] }[] = [];
  let settingsRead = 0;
  const hookIo: HookIo = {
    env,
    now: () => 1_800_000_000_123.456,
    hostname: () => 'node1.example.test',
    readFile: (p) => {
      settingsRead++;
      return files[p];
    },
    log: (l) => lines.push(l),
    putSync: (dir, messages) => {
      puts.push({ dir, messages });
      return 'entry-1';
    },
  };
  return { hookIo, lines, puts, settingsRead: () => settingsRead };
}

t.test('a post-phase instance hook on the master queues one message in the outbox', async (t) => {
  const f = io(loadFixtureEnv('07-instance-add-post'));
  const out = await runHook(f.hookIo);
  t.equal(out.code, 0);
  t.equal(out.kind, 'queued');
  t.equal(f.puts.length, 1);
  t.equal(f.puts[0]?.dir, DEFAULT_OUTBOX_DIR);
  t.equal(f.puts[0]?.messages.length, 1);
  t.match(f.puts[0]?.messages[0], { routingKey: 'ganeti.snf.event.net', type: 'ganeti-net-status', messageId: 'net:snf-1:instance-add:1800000000.123456' });
  t.same((f.puts[0]?.messages[0]?.body as { event_time: unknown }).event_time, [1800000000, 123456], 'the hook clock');
  t.same(f.lines, [], 'quiet on success');
});

t.test('no-op cases end before reading settings or touching the outbox', async (t) => {
  for (const name of ['06-instance-add-pre', '09-instance-stop-post', '33-instance-stop-post', '03-network-add-post', '41-instance-remove-post', '35-cluster-modify-post']) {
    const f = io(loadFixtureEnv(name));
    const out = await runHook(f.hookIo);
    t.equal(out.code, 0, name);
    t.equal(out.kind, 'skipped', name);
    t.equal(f.settingsRead(), 0, `${name}: settings not even read`);
    t.equal(f.puts.length, 0, name);
  }
});

t.test('not the master, or not a Synnefo instance: exit 0, nothing queued', async (t) => {
  const env = loadFixtureEnv('11-instance-start-post');
  let f = io({ ...env, GANETI_MASTER: 'node2.example.test' });
  t.match(await runHook(f.hookIo), { code: 0, kind: 'skipped', reason: /not the master/ });
  t.equal(f.puts.length, 0);

  f = io({ ...env, SNF_GTOOLS_NODE_NAME: 'node2.example.test' });
  t.match(await runHook(f.hookIo), { code: 0, kind: 'skipped' }, 'node name from the settings overrides the host name');

  const foreign = { ...env, GANETI_INSTANCE_NAME: 'web-1', GANETI_POST_INSTANCE_NAME: 'web-1' };
  f = io(foreign);
  t.match(await runHook(f.hookIo), { code: 0, kind: 'skipped', reason: /does not start with snf-/ });
  f = io({ ...foreign, SNF_GTOOLS_PREFIX: 'web' });
  t.match(await runHook(f.hookIo), { code: 0, kind: 'queued' }, 'configured prefix');
  f = io({ ...foreign, SNF_GTOOLS_SETTINGS_FILE: '/s' }, { '/s': 'SNF_GTOOLS_HOOK_ALL_INSTANCES=yes\n' });
  t.match(await runHook(f.hookIo), { code: 0, kind: 'queued' }, 'all instances, from the settings file');
});

t.test('a malformed environment: a clear error, exit 1, nothing queued', async (t) => {
  const f = io({ ...loadFixtureEnv('07-instance-add-post'), GANETI_POST_INSTANCE_NIC1_MAC: 'not-a-mac' });
  const out = await runHook(f.hookIo);
  t.equal(out.code, 1);
  t.equal(f.puts.length, 0);
  t.equal(f.lines.length, 1);
  t.match(f.lines[0], /^snf-ganeti-hook: error: GANETI_POST_INSTANCE_NIC1_MAC: "not-a-mac" is not a MAC address; nothing was sent$/);

  const g = io({ GANETI_HOOKS_PHASE: 'post' });
  t.match(await runHook(g.hookIo), { code: 1, error: /GANETI_HOOKS_PATH: missing/ });
});

t.test('warnings (bad firewall tags) are logged, the message still goes', async (t) => {
  const f = io({ ...loadFixtureEnv('07-instance-add-post'), GANETI_POST_INSTANCE_TAGS: 'synnefo:network:9:protected' });
  t.match(await runHook(f.hookIo), { code: 0, kind: 'queued' });
  t.match(f.lines, [/^snf-ganeti-hook: warning: GANETI_POST_INSTANCE_TAGS: firewall tag "synnefo:network:9:protected" names no NIC/]);
});

t.test('an outbox that cannot be written: exit 1 with the reason', async (t) => {
  const f = io(loadFixtureEnv('07-instance-add-post'));
  f.hookIo.putSync = () => {
    throw new Error('EACCES: permission denied');
  };
  const out = await runHook(f.hookIo);
  t.equal(out.code, 1);
  t.match(f.lines[0], /cannot store the ganeti-net-status message of snf-1 in the outbox .*EACCES/);
});

t.test('settings: file, environment over file, defaults, errors', async (t) => {
  const file = [
    '# comment',
    'SNF_GTOOLS_OUTBOX_DIR="/srv/outbox"',
    "export SNF_GTOOLS_PREFIX='cyc'",
    'SNF_GTOOLS_HOOK_ALL_INSTANCES=off',
    'SNF_GTOOLS_NODE_NAME=n1.example',
    'SNF_GTOOLS_AMQP_URL=amqp://u:p@h/',
    '',
  ].join('\n');
  const read = (p: string) => (p === '/etc/default/snf-cyclades-gtools' ? file : undefined);
  t.same(loadHookSettings({}, read), {
    settingsFile: '/etc/default/snf-cyclades-gtools',
    outboxDir: '/srv/outbox',
    prefix: 'cyc',
    allInstances: false,
    nodeName: 'n1.example',
  });
  t.match(loadHookSettings({ SNF_GTOOLS_PREFIX: 'snf', SNF_GTOOLS_HOOK_ALL_INSTANCES: '1' }, read), { prefix: 'snf', allInstances: true, outboxDir: '/srv/outbox' });
  t.same(loadHookSettings({}, () => undefined), {
    settingsFile: '/etc/default/snf-cyclades-gtools',
    outboxDir: '/var/spool/snf-cyclades-gtools/outbox',
    prefix: 'snf',
    allInstances: false,
    nodeName: undefined,
  });
  t.throws(() => loadHookSettings({ SNF_GTOOLS_SETTINGS_FILE: '/nope' }, () => undefined), /settings file \/nope does not exist/);
  t.throws(() => loadHookSettings({ SNF_GTOOLS_HOOK_ALL_INSTANCES: 'maybe' }, () => undefined), /SNF_GTOOLS_HOOK_ALL_INSTANCES \(environment SNF_GTOOLS_HOOK_ALL_INSTANCES\): "maybe" is not a boolean/);
  t.throws(() => loadHookSettings({ SNF_GTOOLS_OUTBOX_DIR: 'rel/dir' }, () => undefined), /not an absolute path/);
  t.throws(() => loadHookSettings({ SNF_GTOOLS_PREFIX: 'a-b' }, () => undefined), /not a routing prefix/);
  t.throws(() => parseKeyValueFile('A=1\nwhat\n', '/f'), /\/f:2: expected KEY=value/);
});
