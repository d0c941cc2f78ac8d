import t from 'tap';
import { parseJobFile } from '../../src/eventd/jobfile.js';
import { buildOpEvents, type BuildContext, type OpEvent, type PublishEvent } from '../../src/eventd/opmessages.js';
import { routingPrefix } from '../../src/common/topology.js';

// Synthetic jobs in Ganeti's own file shape, parsed by parseJobFile, for the cases the captured
// fixtures do not contain (multi-op, canceled, snapshot, heartbeat, instance tags, old statuses).

type Stamp = [number, number] | null;
interface OpSpec {
  input: Record<string, unknown>;
  status: string;
  result?: unknown;
  log?: [number, [number, number], string, unknown][];
  start?: Stamp;
  exec?: Stamp;
  end?: Stamp;
}

const RECEIVED: [number, number] = [1000, 1];
const JOB_END: [number, number] = [5000, 5];

function job(ops: OpSpec[], top: { id?: number | string; received?: Stamp; end?: Stamp } = {}) {
  const doc = {
    id: top.id ?? 77,
    ops: ops.map((op) => ({
      input: op.input,
      status: op.status,
      result: op.result ?? null,
      log: op.log ?? [],
      start_timestamp: op.start ?? null,
      exec_timestamp: op.exec ?? null,
      end_timestamp: op.end ?? null,
    })),
    received_timestamp: top.received === undefined ? RECEIVED : top.received,
    start_timestamp: null,
    end_timestamp: top.end === undefined ? null : top.end,
  };
  return parseJobFile(JSON.stringify(doc), 'synthetic');
}

const ctx: BuildContext = { cluster: 'gnt1.example.test', nowMs: 1_700_000_000_000, acceptsName: (n) => routingPrefix(n) === 'snf' };
const shutdown = { OP_ID: 'OP_INSTANCE_SHUTDOWN', instance_name: 'snf-42' };
const timed = { start: [2000, 2] as Stamp, exec: [3000, 3] as Stamp, end: [4000, 4] as Stamp };

function published(t: { fail: (m: string) => unknown }, event: OpEvent | undefined): PublishEvent {
  if (event?.kind !== 'publish') t.fail(`expected a publish entry, got ${JSON.stringify(event)}`);
  return event as PublishEvent;
}
const only = (ops: OpSpec[], top?: Parameters<typeof job>[1]) => buildOpEvents(job(ops, top), ctx)[0];

t.test('event_time per status (spec §2.2 table)', async (t) => {
  const expected: [string, [number, number], string][] = [
    ['queued', RECEIVED, 'queued'],
    ['waiting', [2000, 2], 'waiting'],
    ['waitlock', [2000, 2], 'waiting'],
    ['canceling', [2000, 2], 'canceling'],
    ['running', [3000, 3], 'running'],
    ['success', [4000, 4], 'success'],
    ['error', [4000, 4], 'error'],
    ['canceled', [4000, 4], 'canceled'],
  ];
  for (const [status, time, publishedAs] of expected) {
    const e = published(t, only([{ input: shutdown, status, ...timed }], { end: JOB_END }));
    t.same(e.message.body.event_time, time, `${status}: event_time`);
    t.equal(e.message.body.status, publishedAs, `${status}: published status`);
  }
});

t.test('event_time fallbacks: job end, then job received; no timestamp at all is invalid', async (t) => {
  for (const status of ['waiting', 'canceling', 'running', 'success', 'error', 'canceled']) {
    const toEnd = published(t, only([{ input: shutdown, status }], { end: JOB_END }));
    t.same(toEnd.message.body.event_time, JOB_END, `${status} without op timestamp → job end_timestamp`);
    const toReceived = published(t, only([{ input: shutdown, status }]));
    t.same(toReceived.message.body.event_time, RECEIVED, `${status} without op or job end → job received_timestamp`);
  }
  t.same(published(t, only([{ input: shutdown, status: 'queued' }], { received: null, end: JOB_END })).message.body.event_time, JOB_END);
  t.match(only([{ input: shutdown, status: 'running' }], { received: null }), { kind: 'invalid', reason: /no timestamp/ });
});

t.test('a full ganeti-op-status message', async (t) => {
  const e = published(t, only([{ input: shutdown, status: 'success', result: null, log: [[7, [1, 0], 'message', 'first'], [9, [2, 0], 'message', 'last']], ...timed }], { id: '77' }));
  t.same(e, {
    opIndex: 0,
    kind: 'publish',
    transition: 'success:9',
    message: {
      messageId: 'gnt1.example.test:77:0:success:9',
      routingKey: 'ganeti.snf.event.op',
      type: 'ganeti-op-status',
      timestampMs: 1_700_000_000_000,
      body: {
        type: 'ganeti-op-status',
        instance: 'snf-42',
        operation: 'OP_INSTANCE_SHUTDOWN',
        tags: [],
        job_fields: {},
        event_time: [4000, 4],
        status: 'success',
        cluster: 'gnt1.example.test',
        logmsg: 'last',
        result: null,
        jobId: 77,
      },
    },
  });
  t.equal(typeof e.message.body.jobId, 'number', 'jobId is an int even when the file has a string');
});

t.test('routing prefix: the name up to the first dash, and only accepted names', async (t) => {
  const all: BuildContext = { ...ctx, acceptsName: () => true };
  const key = (input: Record<string, unknown>, c = all) => {
    const e = buildOpEvents(job([{ input, status: 'queued' }]), c)[0];
    return e?.kind === 'publish' ? e.message.routingKey : e?.kind;
  };
  t.equal(key({ OP_ID: 'OP_INSTANCE_REBOOT', instance_name: 'snf-42' }), 'ganeti.snf.event.op');
  t.equal(key({ OP_ID: 'OP_INSTANCE_REBOOT', instance_name: 'prod-web-1' }), 'ganeti.prod.event.op');
  t.equal(key({ OP_ID: 'OP_INSTANCE_REBOOT', instance_name: 'plain.example.com' }), 'ganeti.plain.example.com.event.op');
  t.equal(key({ OP_ID: 'OP_NETWORK_ADD', network_name: 'snf-net-7' }), 'ganeti.snf.event.network');
  t.equal(key({ OP_ID: 'OP_CLUSTER_SET_PARAMS' }), 'ganeti.event.cluster');
  t.equal(key({ OP_ID: 'OP_INSTANCE_REBOOT', instance_name: 'prod-web-1' }, ctx), 'ignored', 'not accepted: instance');
  t.equal(key({ OP_ID: 'OP_NETWORK_ADD', network_name: 'other-net-7' }, ctx), 'ignored', 'not accepted: network');
});

t.test('instance ops need exactly one instance', async (t) => {
  const kinds = (input: Record<string, unknown>) => only([{ input: { OP_ID: 'OP_INSTANCE_REBOOT', ...input }, status: 'queued' }]);
  t.match(published(t, kinds({ instances: ['snf-3'] })).message.body, { instance: 'snf-3' });
  t.match(kinds({ instances: [] }), { kind: 'ignored', reason: /exactly one instance/ });
  t.match(kinds({ instances: ['snf-3', 'snf-4'] }), { kind: 'ignored' });
  t.match(kinds({}), { kind: 'ignored' });
  t.match(kinds({ instance_name: '', instances: ['snf-5'] }), { kind: 'publish' }, 'empty instance_name falls back to instances');
  t.match(kinds({ instance_name: 42 }), { kind: 'invalid', reason: /instance_name/ });
  t.match(kinds({ instances: [null] }), { kind: 'invalid' });
});

t.test('job_fields of create, set-params and other instance ops', async (t) => {
  const create = { OP_ID: 'OP_INSTANCE_CREATE', instance_name: 'snf-9', nics: [{ network: 'snf-net-1' }], disks: [{ size: 1 }], beparams: { vcpus: 2 }, tags: ['a'], osparams: { img_id: 'x' } };
  const ok = published(t, only([{ input: create, status: 'success', ...timed }]));
  t.same(ok.message.body.job_fields, { nics: [{ network: 'snf-net-1' }], disks: [{ size: 1 }], hvparams: null, beparams: { vcpus: 2 } }, 'absent hvparams is null');
  t.same(ok.message.body.tags, ['a']);
  for (const status of ['queued', 'running']) {
    t.match(published(t, only([{ input: create, status, ...timed }])).message.body.job_fields, { nics: [{ network: 'snf-net-1' }] }, status);
  }
  const failed = published(t, only([{ input: create, status: 'error', result: ['OpPrereqError', ['bad ip', 'resource_not_unique']], ...timed }]));
  t.same(failed.message.body.job_fields, create, 'a failed create carries the whole input, for resubmission');
  const setParams = published(t, only([{ input: { OP_ID: 'OP_INSTANCE_SET_PARAMS', instance_name: 'snf-9', hvparams: { boot_order: 'cdrom' } }, status: 'error', ...timed }]));
  t.same(setParams.message.body.job_fields, { nics: null, disks: null, hvparams: { boot_order: 'cdrom' }, beparams: null }, 'set-params keeps its fields on error');
  t.same(published(t, only([{ input: shutdown, status: 'success', ...timed }])).message.body.job_fields, {});
});

t.test('snapshot: snapshot_info from a gnt:user reason', async (t) => {
  const input = {
    OP_ID: 'OP_INSTANCE_SNAPSHOT',
    instance_name: 'snf-9',
    disks: [[0, { snapshot_name: 'snf-snap-1' }]],
    reason: [['gnt:user', '{"snapshot_id": 12}', 1], ['gnt:library:rlib2:instances_name_snapshot', '', 2]],
  };
  const parsed = job([{ input, status: 'success', ...timed }]);
  const e = published(t, buildOpEvents(parsed, ctx)[0]);
  t.same(e.message.body.job_fields, { disks: [[0, { snapshot_name: 'snf-snap-1', snapshot_info: '{"snapshot_id": 12}' }]] });
  t.equal(e.warning, undefined);
  t.same(parsed.ops[0]?.input.disks, [[0, { snapshot_name: 'snf-snap-1' }]], 'the parsed job is not modified');

  const noUser = published(t, only([{ input: { ...input, reason: [['gnt:client:gnt-instance', 'snapshot', 1]] }, status: 'success', ...timed }]));
  t.same(noUser.message.body.job_fields, { disks: [[0, { snapshot_name: 'snf-snap-1' }]] }, 'malformed reason: still published');
  t.match(noUser.warning, /gnt:user/);
  const noDisks = published(t, only([{ input: { ...input, disks: [] }, status: 'success', ...timed }]));
  t.match(noDisks.warning, /disks\[0\]\[1\]/);
});

t.test('network messages', async (t) => {
  const e = published(t, only([{ input: { OP_ID: 'OP_NETWORK_ADD', network_name: 'snf-net-3', network: '10.0.0.0/24', gateway: '10.0.0.1', add_reserved_ips: ['10.0.0.2'] }, status: 'success', ...timed }]));
  t.same(e.message.body, {
    type: 'ganeti-network-status',
    network: 'snf-net-3',
    operation: 'OP_NETWORK_ADD',
    job_fields: { subnet: '10.0.0.0/24', gateway: '10.0.0.1', add_reserved_ips: ['10.0.0.2'], remove_reserved_ips: null, group_name: null },
    event_time: [4000, 4],
    status: 'success',
    cluster: 'gnt1.example.test',
    logmsg: null,
    result: null,
    jobId: 77,
  });
  t.match(only([{ input: { OP_ID: 'OP_NETWORK_QUERY' }, status: 'queued' }]), { kind: 'ignored', reason: /network_name/ });
  t.match(only([{ input: { OP_ID: 'OP_NETWORK_ADD', network_name: ['x'] }, status: 'queued' }]), { kind: 'invalid' });
});

t.test('cluster messages: only OP_CLUSTER_SET_PARAMS, on the shared key', async (t) => {
  const e = published(t, only([{ input: { OP_ID: 'OP_CLUSTER_SET_PARAMS', max_running_jobs: 1 }, status: 'running', ...timed }]));
  t.equal(e.message.routingKey, 'ganeti.event.cluster');
  t.same(Object.keys(e.message.body), ['type', 'operation', 'event_time', 'status', 'cluster', 'logmsg', 'result', 'jobId']);
  for (const opId of ['OP_CLUSTER_POST_INIT', 'OP_CLUSTER_DESTROY', 'OP_CLUSTER_VERIFY']) {
    t.match(only([{ input: { OP_ID: opId }, status: 'success', ...timed }]), { kind: 'ignored' }, opId);
  }
});

t.test('ops we do not report are ignored', async (t) => {
  for (const opId of ['OP_TEST_DELAY', 'OP_NODE_ADD', 'OP_GROUP_ADD', 'OP_OS_DIAGNOSE', 'OP_BACKUP_EXPORT', 'OPX', 'OP_']) {
    t.match(only([{ input: { OP_ID: opId, instance_name: 'snf-1' }, status: 'success', ...timed }]), { kind: 'ignored', reason: /not reported/ }, opId);
  }
});

t.test('heartbeat: dry-run cluster tag snf:eventd:heartbeat… while waiting', async (t) => {
  const hb = { OP_ID: 'OP_TAGS_SET', kind: 'cluster', name: '', tags: ['snf:eventd:heartbeat:disp1:4242'], dry_run: true };
  const e = published(t, only([{ input: hb, status: 'waiting', ...timed }]));
  t.equal(e.message.routingKey, 'eventd.heartbeat');
  t.equal(e.message.type, 'eventd-heartbeat');
  t.same(e.message.body, {
    type: 'eventd-heartbeat',
    cluster: 'gnt1.example.test',
    event_time: [2000, 2],
    operation: 'OP_TAGS_SET',
    status: 'waiting',
    logmsg: null,
    result: null,
    jobId: 77,
  });
  t.match(only([{ input: hb, status: 'waitlock', ...timed }]), { kind: 'publish' }, 'older Ganeti: waitlock');
  const not: [string, Record<string, unknown>, string][] = [
    ['running', hb, 'running'],
    ['not dry-run', { ...hb, dry_run: false }, 'waiting'],
    ['dry_run null', { ...hb, dry_run: null }, 'waiting'],
    ['other tag', { ...hb, tags: ['snf:other'] }, 'waiting'],
    ['no tags', { ...hb, tags: [] }, 'waiting'],
    ['OP_TAGS_DEL', { ...hb, OP_ID: 'OP_TAGS_DEL' }, 'waiting'],
    ['node tag', { ...hb, kind: 'node', name: 'node1' }, 'waiting'],
  ];
  for (const [name, input, status] of not) t.match(only([{ input, status, ...timed }]), { kind: 'ignored' }, name);
});

t.test('instance tag ops: reported when finalized, canceled included', async (t) => {
  const tag = { OP_ID: 'OP_TAGS_SET', kind: 'instance', name: 'snf-42', tags: ['synnefo:network:snf-nic-1:protected'], dry_run: false };
  for (const status of ['success', 'error', 'canceled']) {
    const e = published(t, only([{ input: tag, status, ...timed }]));
    t.equal(e.message.routingKey, 'ganeti.snf.event.op', status);
    t.same(e.message.body, {
      type: 'ganeti-op-status',
      instance: 'snf-42',
      operation: 'OP_TAGS_SET',
      tags: ['synnefo:network:snf-nic-1:protected'],
      job_fields: { dry_run: false },
      event_time: [4000, 4],
      status,
      cluster: 'gnt1.example.test',
      logmsg: null,
      result: null,
      jobId: 77,
    });
  }
  t.match(published(t, only([{ input: { ...tag, OP_ID: 'OP_TAGS_DEL' }, status: 'success', ...timed }])).message.body, { operation: 'OP_TAGS_DEL' });
  for (const status of ['queued', 'waiting', 'running']) t.match(only([{ input: tag, status, ...timed }]), { kind: 'ignored' }, status);
  t.match(only([{ input: { ...tag, name: 'other-1' }, status: 'success', ...timed }]), { kind: 'ignored', reason: /not ours/ });
  t.match(only([{ input: { ...tag, name: null }, status: 'success', ...timed }]), { kind: 'invalid' });
});

t.test('multi-op job: success, then error, then "Preceding opcode failed"', async (t) => {
  const parsed = job(
    [
      { input: shutdown, status: 'success', ...timed },
      { input: { OP_ID: 'OP_INSTANCE_STARTUP', instance_name: 'snf-42' }, status: 'error', result: ['OpExecError', ['Could not start instance']], log: [[1, [4100, 0], 'message', 'starting']], start: [4001, 0], exec: [4002, 0], end: [4200, 0] },
      { input: { OP_ID: 'OP_INSTANCE_REBOOT', instance_name: 'snf-42' }, status: 'error', result: ['OpExecError', ['Preceding opcode failed']] },
    ],
    { end: JOB_END },
  );
  const events = buildOpEvents(parsed, ctx).map((e) => published(t, e));
  t.same(events.map((e) => e.message.messageId), ['gnt1.example.test:77:0:success:0', 'gnt1.example.test:77:1:error:1', 'gnt1.example.test:77:2:error:0']);
  t.same(events.map((e) => e.message.body.event_time), [[4000, 4], [4200, 0], JOB_END], 'the op that never ran gets the job end');
  t.same(events[2]?.message.body.result, ['OpExecError', ['Preceding opcode failed']]);
  t.equal(events[2]?.message.body.logmsg, null);
});

t.test('a job canceled while queued', async (t) => {
  const queued = published(t, only([{ input: shutdown, status: 'queued' }]));
  const canceled = published(t, only([{ input: shutdown, status: 'canceled', end: [1500, 9] }], { end: [1500, 10] }));
  t.equal(queued.message.messageId, 'gnt1.example.test:77:0:queued:0');
  t.equal(canceled.message.messageId, 'gnt1.example.test:77:0:canceled:0');
  t.equal(canceled.message.body.status, 'canceled');
  t.same(canceled.message.body.event_time, [1500, 9]);
});

t.test('unknown status: that op is invalid, the other ops are still built', async (t) => {
  const events = buildOpEvents(
    job([
      { input: shutdown, status: 'success', ...timed },
      { input: shutdown, status: 'exploded', ...timed },
      { input: { OP_ID: 'OP_INSTANCE_STARTUP', instance_name: 'snf-42' }, status: 'running', ...timed },
    ]),
    ctx,
  );
  t.same(events.map((e) => e.kind), ['publish', 'invalid', 'publish']);
  t.match(events[1], { opIndex: 1, reason: /unknown op status "exploded"/ });
  t.match(only([{ input: shutdown, status: 'cancelled' }]), { kind: 'invalid' }, 'the misspelling is not a status');
});

t.test('message ids and bodies are deterministic; only timestampMs follows the clock', async (t) => {
  const parsed = job([{ input: shutdown, status: 'running', log: [[3, [1, 0], 'message', 'x']], ...timed }]);
  const a = buildOpEvents(parsed, ctx);
  const b = buildOpEvents(parsed, { ...ctx, nowMs: ctx.nowMs + 60_000 });
  t.same(a, buildOpEvents(parsed, ctx));
  const [ea, eb] = [published(t, a[0]), published(t, b[0])];
  t.equal(ea.message.messageId, eb.message.messageId);
  t.same(ea.message.body, eb.message.body);
  t.equal(eb.message.timestampMs - ea.message.timestampMs, 60_000);
  t.equal(ea.message.messageId, 'gnt1.example.test:77:0:running:3');
});

t.test('logmsg is the message of the last log entry, whatever its type', async (t) => {
  const e = published(t, only([{ input: shutdown, status: 'running', log: [[1, [1, 0], 'message', 'a'], [2, [1, 0], 'remote-import', { x: 1 }]], ...timed }]));
  t.same(e.message.body.logmsg, { x: 1 });
  t.equal(e.transition, 'running:2');
});
