// Decoding what the producers really send (eventd's goldens, the hook's bodies from the captured hook
// environments, the progress monitor's §1.5 C form), and clear reasons for everything else.

import t from 'tap';
import { decodeMessage } from '../../src/dispatcher/messages.js';
import { goldenStream, progressMessages } from '../fixtures/dispatcher/stream.js';

const decode = (body: unknown) => decodeMessage(Buffer.from(JSON.stringify(body)));

t.test('every message of the captured scenario decodes', async (t) => {
  const stream = goldenStream();
  t.ok(stream.length > 100);
  for (const m of stream) {
    const d = decode(m.body);
    t.ok(d.ok, `${m.messageId}${d.ok ? '' : `: ${d.reason}`}`);
  }
});

t.test('eventd op-status (spec §2.3 example)', async (t) => {
  const body = {
    type: 'ganeti-op-status',
    instance: 'snf-42',
    operation: 'OP_INSTANCE_CREATE',
    tags: [],
    job_fields: { nics: [{ name: 'snf-nic-9', network: 'snf-net-3' }], disks: [{ size: 20480 }], hvparams: {}, beparams: { vcpus: 2, maxmem: 2048 } },
    instance_nics: [{ name: 'snf-nic-9', network: 'snf-net-3', ip: '192.0.2.10', mac: 'aa:00:00:00:00:01', mode: 'routed', link: 'snf_public', uuid: 'u', firewall: 'protected' }],
    instance_disks: [{ name: 'snf-vol-5', size: 20480, uuid: 'u' }],
    instance_hvparams: { boot_order: 'disk', cdrom_image_path: '' },
    event_time: [1500000041, 5123],
    status: 'success',
    cluster: 'gnt1.example.com',
    logmsg: '* starting instance...',
    result: ['node1.example.com'],
    jobId: 4242,
  };
  t.same(decode(body), {
    ok: true,
    message: {
      type: 'ganeti-op-status',
      instance: 'snf-42',
      cluster: 'gnt1.example.com',
      operation: 'OP_INSTANCE_CREATE',
      status: 'success',
      eventTime: 1500000041005123,
      jobId: 4242,
      logmsg: '* starting instance...',
      tags: [],
      dryRun: false,
      nics: [{ index: 0, mac: 'aa:00:00:00:00:01', ipv4: '192.0.2.10', ipv6: null, network: 'snf-net-3', link: 'snf_public', mode: 'routed', name: 'snf-nic-9', uuid: 'u', firewall: 'protected' }],
    },
  });
  t.match(decode({ ...body, jobId: '4242' }), { ok: true, message: { jobId: 4242 } }, 'a numeric string job id');
  t.match(decode({ ...body, operation: 'OP_TAGS_SET', tags: ['a'], job_fields: { dry_run: true } }), { ok: true, message: { dryRun: true, tags: ['a'] } }, 'tag op');
});

t.test('eventd heartbeats: periodic and tag answer', async (t) => {
  t.match(decode({ type: 'eventd-heartbeat', cluster: 'c1', node: 'n1', role: 'candidate', outbox: 3, event_time: [1795597950, 1] }), {
    ok: true,
    message: { cluster: 'c1', node: 'n1', role: 'candidate', outbox: 3, eventTime: 1795597950000001 },
  });
  t.match(
    decode({ type: 'eventd-heartbeat', cluster: 'c1', event_time: [1795597950, 1], operation: 'OP_TAGS_SET', status: 'waiting', logmsg: null, result: null, jobId: 5 }),
    { ok: true, message: { node: null, role: 'master', outbox: null } },
    'only the master answers a heartbeat tag job',
  );
});

t.test('the progress monitor form (spec §1.5 C)', async (t) => {
  for (const m of progressMessages('snf-42', 1500000000_000000, 'snf')) t.ok(decode(m.body).ok, String(m.body['type']));
  t.match(
    decode({ type: 'image-copy-progress', total: 2147483648, position: 402653184, progress: 18.75, timestamp: 1500000003.1, event_time: [1500000003, 112233], instance: 'snf-42' }),
    { ok: true, message: { progress: 18.75, eventTime: 1500000003112233, instance: 'snf-42' } },
  );
  t.match(decode({ subtype: 'error', stderr: 'mount: wrong fs type\nbad superblock\n', type: 'image-helper', event_time: [1, 0], instance: 'snf-42' }), {
    ok: true,
    message: { subtype: 'error', stderr: 'mount: wrong fs type\nbad superblock\n', messages: [] },
  });
});

t.test('hook NICs: index from the position, empty values are absent', async (t) => {
  const d = decode({
    type: 'ganeti-net-status',
    instance: 'snf-1',
    event_time: [1795597948, 296000],
    nics: [{ mac: 'aa:00:01:b1:67:50', ip: '10.10.0.3', network: 'snf-net-1' }, { mac: 'aa:00:00:11:22:33', ip: '', link: 'br-gnt' }],
  });
  t.match(d, { ok: true, message: { cluster: null, nics: [{ index: 0, ipv4: '10.10.0.3' }, { index: 1, ipv4: null, network: null, link: 'br-gnt' }] } });
  t.match(decode({ type: 'ganeti-net-status', instance: 'snf-1', event_time: [1, 0], nics: [{ index: 2, mac: 'm' }] }), { ok: true, message: { nics: [{ index: 2 }] } }, 'eventd config fallback sends index');
});

t.test('poison: every reason names what is wrong', async (t) => {
  const op = { type: 'ganeti-op-status', instance: 'snf-1', operation: 'OP_INSTANCE_STARTUP', status: 'success', event_time: [1, 2], jobId: 1, cluster: 'c' };
  const cases: [string, unknown, RegExp][] = [
    ['not JSON', 'not json', /body is not JSON/],
    ['a JSON array', [], /not a JSON object/],
    ['{}', {}, /field "type": unknown message type, got nothing/],
    ['unknown type', { ...op, type: 'ganeti-create-progress' }, /field "type": unknown message type, got "ganeti-create-progress"/],
    ['missing instance', { ...op, instance: undefined }, /field "instance": expected a non-empty string, got nothing/],
    ['mistyped instance', { ...op, instance: 42 }, /field "instance": expected a non-empty string, got 42/],
    ['unknown status', { ...op, status: 'waitlock' }, /field "status": expected one of queued, .*got "waitlock"/],
    ['missing event_time', { ...op, event_time: undefined }, /field "event_time": expected \[seconds, microseconds\]/],
    ['float seconds', { ...op, event_time: [1.5, 0] }, /field "event_time": seconds must be a non-negative integer/],
    ['microseconds out of range', { ...op, event_time: [1, 1000000] }, /microseconds must be an integer in 0\.\.999999/],
    ['bad jobId', { ...op, jobId: 'x' }, /field "jobId": expected a non-negative integer, got "x"/],
    ['bad tags', { ...op, tags: 'a' }, /field "tags": expected a list of strings/],
    ['bad dry_run', { ...op, job_fields: { dry_run: 'yes' } }, /field "job_fields.dry_run": expected a boolean/],
    ['bad nic', { type: 'ganeti-net-status', instance: 'snf-1', event_time: [1, 0], nics: [{ ip: '1.2.3.4' }] }, /field "nics\[0\]\.mac": expected a non-empty string/],
    ['duplicate nic index', { type: 'ganeti-net-status', instance: 'snf-1', event_time: [1, 0], nics: [{ mac: 'a' }, { mac: 'b', index: 0 }] }, /field "nics\[1\]\.index": duplicate NIC index/],
    ['nics not a list', { type: 'ganeti-net-status', instance: 'snf-1', event_time: [1, 0], nics: {} }, /field "nics": expected a list of NICs/],
    ['negative progress', { type: 'image-copy-progress', instance: 'snf-1', event_time: [1, 0], progress: -1 }, /field "progress": must not be negative, got -1/],
    ['non-numeric progress', { type: 'image-copy-progress', instance: 'snf-1', event_time: [1, 0], progress: 'a' }, /field "progress": expected a number, got "a"/],
    ['unknown helper subtype', { type: 'image-helper', subtype: 'dance', instance: 'snf-1', event_time: [1, 0] }, /field "subtype": expected one of task-start/],
    ['task without name', { type: 'image-helper', subtype: 'task-start', instance: 'snf-1', event_time: [1, 0] }, /field "task"/],
    ['network without cluster', { type: 'ganeti-network-status', network: 'snf-net-1', operation: 'OP_NETWORK_ADD', status: 'success', event_time: [1, 0], jobId: 2 }, /field "cluster"/],
    ['reserved ips not a list', { type: 'ganeti-network-status', network: 'snf-net-1', cluster: 'c', operation: 'OP_NETWORK_SET_PARAMS', status: 'success', event_time: [1, 0], jobId: 2, job_fields: { add_reserved_ips: '10.0.0.1' } }, /field "job_fields.add_reserved_ips": expected a list of strings/],
    ['heartbeat without cluster', { type: 'eventd-heartbeat', cluster: null, node: 'n', role: 'master', outbox: 0, event_time: [1, 0] }, /field "cluster"/],
    ['heartbeat bad role', { type: 'eventd-heartbeat', cluster: 'c', node: 'n', role: 'boss', outbox: 0, event_time: [1, 0] }, /field "role"/],
  ];
  for (const [label, body, reason] of cases) {
    const d = typeof body === 'string' ? decodeMessage(Buffer.from(body)) : decode(body);
    t.equal(d.ok, false, label);
    if (!d.ok) t.match(d.reason, reason, label);
  }
  // Well-formed JSON around a byte that is not UTF-8: refused, not stored as a replacement character.
  const [before, after] = JSON.stringify(op).split('snf-1');
  const binary = decodeMessage(Buffer.concat([Buffer.from(`${before}snf-`), Buffer.from([0xff]), Buffer.from(`1${after}`)]));
  t.same(binary, { ok: false, reason: 'body is not valid UTF-8 (binary data?)' }, 'invalid UTF-8 inside a string');
  // Progress 0 is valid (Synnefo's tests: 0, -1, 'a').
  t.ok(decode({ type: 'image-copy-progress', instance: 'snf-1', event_time: [1, 0], progress: 0 }).ok);
});

t.test('found by fuzzing: a very deep value is refused with a reason, not a stack overflow', async (t) => {
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  const top = decodeMessage(Buffer.from(deep));
  t.match(top, { ok: false, reason: /^body is not a JSON object: a deeply nested array$/ });
  const inType = decodeMessage(Buffer.from(`{"type":${deep}}`));
  t.match(inType, { ok: false, reason: /^field "type": unknown message type, got a deeply nested array$/ });
});

t.test('found by fuzzing: an event_time whose microseconds exceed 2^53 is refused (they could not compare exactly)', async (t) => {
  const net = { type: 'ganeti-net-status', instance: 'snf-1', nics: [] };
  t.match(decode({ ...net, event_time: [9007199254, 740991] }), { ok: true, message: { eventTime: Number.MAX_SAFE_INTEGER } });
  t.match(decode({ ...net, event_time: [9007199254, 740992] }), { ok: false, reason: /^field "event_time": must be at most 2\^53 - 1 microseconds, got \[9007199254,740992\]$/ });
  t.match(decode({ ...net, event_time: [Number.MAX_SAFE_INTEGER, 0] }), { ok: false, reason: /^field "event_time": must be at most 2\^53/ });
});

t.test('found by fuzzing: a log entry that is not a Feedback line (remote-import) does not dead-letter the op status', async (t) => {
  const op = { type: 'ganeti-op-status', instance: 'snf-1', operation: 'OP_INSTANCE_CREATE', status: 'running', event_time: [1, 2], jobId: 1, cluster: 'c' };
  const remoteImport = { x509_ca: 'abc', disks: [['192.0.2.1', 1234, 'magic']] };
  t.match(decode({ ...op, logmsg: remoteImport }), { ok: true, message: { logmsg: JSON.stringify(remoteImport) } }, 'kept as its JSON text');
  t.match(decode({ ...op, logmsg: 5 }), { ok: true, message: { logmsg: '5' } });
  t.match(decode({ ...op, logmsg: '' }), { ok: true, message: { logmsg: null } });
  const deep = decodeMessage(Buffer.from(JSON.stringify(op).replace('}', `,"logmsg":${'['.repeat(20_000)}${']'.repeat(20_000)}}`)));
  t.match(deep, { ok: false, reason: /^field "logmsg": expected a string or a JSON value of sane depth, got a deeply nested array$/ });
});
