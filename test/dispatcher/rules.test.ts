// The pure update rules: each opcode × status, the backendtime rule, NICs, networks, reservations,
// progress and diagnostics, and the dispatcher cases of Synnefo's callbacks tests (spec §6).

import t from 'tap';
import { JOB_STATUSES, type DiagnosticMessage, type JobStatus, type NetworkStatusMessage, type NicReport, type OpStatusMessage } from '../../src/dispatcher/messages.js';
import {
  decideClusterStatus,
  decideCopyProgress,
  decideDiagnostic,
  decideHeartbeat,
  decideNetStatus,
  decideNetworkStatus,
  decideOpStatus,
  deriveNetworkState,
  diagnosticKey,
  diagnosticOf,
  networkNameIsOurs,
  presentTags,
  settleReservation,
  touchedAddresses,
  vmNameIsOurs,
  type BackendNetworkRow,
  type BackendRow,
  type NetworkRow,
  type NicRow,
  type VmRow,
  type VmState,
} from '../../src/dispatcher/rules.js';

const T = 1_795_597_950_000_000;

const vm = (over: Partial<VmRow> = {}, nics: NicRow[] = []): VmState => ({
  row: {
    id: 1,
    name: 'snf-1',
    backendId: null,
    operstate: 'BUILD',
    backendjobid: null,
    backendopcode: null,
    backendjobstatus: null,
    backendlogmsg: null,
    jobtime: 0,
    backendtime: 0,
    buildpercentage: 0,
    progresstime: 0,
    nicstime: 0,
    tags: {},
    deleted: false,
    ...over,
  },
  nics,
});

const op = (operation: string, status: JobStatus, over: Partial<OpStatusMessage> = {}): OpStatusMessage => ({
  type: 'ganeti-op-status',
  instance: 'snf-1',
  cluster: 'cluster1.example.test',
  operation,
  status,
  eventTime: T,
  jobId: 42,
  logmsg: null,
  tags: [],
  dryRun: false,
  nics: null,
  ...over,
});

const none = { backendId: null, networkIds: new Map<string, number>() };
const nets = { backendId: 7, networkIds: new Map([['snf-net-3', 3]]) };

/** Applies a decision to a state, as the store does. */
function apply(state: VmState, d: ReturnType<typeof decideOpStatus>): VmState {
  if (d.result !== 'applied') return state;
  return { row: { ...state.row, ...d.change.row }, nics: d.change.nics ?? state.nics };
}

t.test('names: ours are <prefix>-<id> and <prefix>-net-<id>', async (t) => {
  t.ok(vmNameIsOurs('snf-42', 'snf'));
  t.notOk(vmNameIsOurs('snf-bad', 'snf'), 'fixture job 19 names snf-bad');
  t.notOk(vmNameIsOurs('other-42', 'snf'));
  t.notOk(vmNameIsOurs('snf-net-3', 'snf'));
  t.ok(networkNameIsOurs('snf-net-3', 'snf'));
  t.notOk(networkNameIsOurs('snf-3', 'snf'));
  t.notOk(networkNameIsOurs('xnf-net-3', 'snf'));
});

t.test('VM: each opcode × status', async (t) => {
  const opcodes = ['OP_INSTANCE_CREATE', 'OP_INSTANCE_STARTUP', 'OP_INSTANCE_REBOOT', 'OP_INSTANCE_SHUTDOWN', 'OP_INSTANCE_REMOVE', 'OP_INSTANCE_SET_PARAMS', 'OP_INSTANCE_MIGRATE'];
  const onSuccess: Record<string, string> = {
    OP_INSTANCE_CREATE: 'STARTED',
    OP_INSTANCE_STARTUP: 'STARTED',
    OP_INSTANCE_REBOOT: 'STARTED',
    OP_INSTANCE_SHUTDOWN: 'STOPPED',
    OP_INSTANCE_REMOVE: 'DESTROYED',
  };
  for (const operation of opcodes) {
    for (const status of JOB_STATUSES) {
      const d = decideOpStatus(op(operation, status), vm({ operstate: 'STOPPED' }), none);
      t.equal(d.result, 'applied', `${operation} ${status}: the job fields change`);
      const after = apply(vm({ operstate: 'STOPPED' }), d).row;
      t.match(after, { backendjobid: 42, backendopcode: operation, backendjobstatus: status, jobtime: T }, `${operation} ${status}: job fields`);
      let state = 'STOPPED';
      if (status === 'success' && onSuccess[operation]) state = onSuccess[operation];
      if (operation === 'OP_INSTANCE_CREATE' && (status === 'error' || status === 'canceled')) state = 'ERROR';
      t.equal(after.operstate, state, `${operation} ${status}: operstate`);
      const advances = status === 'success' && onSuccess[operation] !== undefined;
      t.equal(after.backendtime, advances ? T : 0, `${operation} ${status}: backendtime ${advances ? 'advances' : 'stays'}`);
      t.equal(after.deleted, operation === 'OP_INSTANCE_REMOVE' && status === 'success', `${operation} ${status}: deleted`);
    }
  }
});

t.test('backendtime: only a strictly newer event sets the state', async (t) => {
  const started = vm({ operstate: 'STARTED', backendtime: T, jobtime: T, backendjobid: 41, backendopcode: 'OP_INSTANCE_STARTUP', backendjobstatus: 'success' });
  for (const [label, eventTime, expected] of [
    ['older', T - 1, 'STARTED'],
    ['equal', T, 'STARTED'],
    ['newer', T + 1, 'STOPPED'],
  ] as const) {
    const d = decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'success', { eventTime }), started, none);
    t.equal(apply(started, d).row.operstate, expected, label);
  }
  t.same(decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'success', { eventTime: T - 1, jobId: 40 }), started, none), { result: 'ignored', reason: 'stale' }, 'an older message is ignored as stale');
  const redelivered = op('OP_INSTANCE_STARTUP', 'success', { jobId: 41 });
  t.same(decideOpStatus(redelivered, started, none), { result: 'ignored', reason: 'stale' }, 'a redelivered message changes nothing');
});

t.test('backendtime: microsecond precision, no local time (spec §6.8)', async (t) => {
  const s = vm({ operstate: 'STARTED', backendtime: 1_795_597_950_123_456 });
  t.equal(apply(s, decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'success', { eventTime: 1_795_597_950_123_457 }), s, none)).row.operstate, 'STOPPED', '1 µs newer applies');
  t.equal(apply(s, decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'success', { eventTime: 1_795_597_950_123_456 }), s, none)).row.operstate, 'STARTED', 'the same µs does not');
});

t.test('job fields: own clock, so an old running never hides a newer error (spec §6.9)', async (t) => {
  let s = vm({ operstate: 'STARTED', backendtime: T });
  s = apply(s, decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'error', { eventTime: T + 20, jobId: 43 }), s, none));
  t.match(s.row, { backendjobstatus: 'error', backendjobid: 43, operstate: 'STARTED' }, 'a failed SHUTDOWN leaves the VM started');
  const late = decideOpStatus(op('OP_INSTANCE_SHUTDOWN', 'running', { eventTime: T + 10, jobId: 43 }), s, none);
  t.same(late, { result: 'ignored', reason: 'stale' }, 'the late running is ignored');
  // eventd sends one message per log line, all with the op's exec timestamp: ties apply in order.
  let r = vm();
  r = apply(r, decideOpStatus(op('OP_INSTANCE_CREATE', 'running', { logmsg: '* creating instance disks...' }), r, none));
  r = apply(r, decideOpStatus(op('OP_INSTANCE_CREATE', 'running', { logmsg: '* starting instance...' }), r, none));
  t.equal(r.row.backendlogmsg, '* starting instance...', 'the newest log line of a running op is shown');
  const queuedAfterRunning = decideOpStatus(op('OP_INSTANCE_CREATE', 'queued'), r, none);
  t.same(queuedAfterRunning, { result: 'ignored', reason: 'stale' }, 'same time, lower status: ignored');
});

t.test('CREATE error or canceled → ERROR, unless the VM already reached a state', async (t) => {
  for (const status of ['error', 'canceled'] as const) {
    const s = apply(vm(), decideOpStatus(op('OP_INSTANCE_CREATE', status), vm(), none));
    t.equal(s.row.operstate, 'ERROR', `fresh VM, CREATE ${status}`);
    t.equal(s.row.backendtime, 0, 'backendtime stays, so an older success could still apply');
  }
  // Fixture job 19: a second create of an existing name fails; the existing VM is fine.
  const started = vm({ operstate: 'STARTED', backendtime: T });
  t.equal(apply(started, decideOpStatus(op('OP_INSTANCE_CREATE', 'error', { eventTime: T + 5 }), started, none)).row.operstate, 'STARTED');
  // Either order of a success and a later failed duplicate create ends STARTED.
  const success = op('OP_INSTANCE_CREATE', 'success', { jobId: 1 });
  const dupError = op('OP_INSTANCE_CREATE', 'error', { eventTime: T + 5, jobId: 2 });
  let a = vm();
  a = apply(a, decideOpStatus(success, a, none));
  a = apply(a, decideOpStatus(dupError, a, none));
  let b = vm();
  b = apply(b, decideOpStatus(dupError, b, none));
  b = apply(b, decideOpStatus(success, b, none));
  t.equal(a.row.operstate, 'STARTED');
  t.same(b.row, a.row, 'the same row in both orders');
});

t.test('REMOVE: deleted, NICs gone; errors change nothing; remove from ERROR', async (t) => {
  const nic: NicRow = { nicIndex: 0, name: 'snf-nic-9', uuid: null, mac: 'aa:00:00:00:00:01', ipv4: '192.0.2.10', ipv6: null, networkId: 3, link: null, mode: 'routed', firewallProfile: null };
  const s = vm({ operstate: 'STARTED', backendtime: T - 10 }, [nic]);
  const d = decideOpStatus(op('OP_INSTANCE_REMOVE', 'success'), s, none);
  t.match(d, { result: 'applied', change: { row: { deleted: true, operstate: 'DESTROYED', backendtime: T }, nics: [] } });
  const gone = apply(s, d);
  t.same(decideOpStatus(op('OP_INSTANCE_STARTUP', 'success', { eventTime: T + 10 }), gone, none), { result: 'ignored', reason: 'deleted' });
  t.same(decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T + 10, cluster: null, nics: [] }, gone, none), { result: 'ignored', reason: 'deleted' });
  const err = apply(s, decideOpStatus(op('OP_INSTANCE_REMOVE', 'error'), s, none));
  t.match(err.row, { operstate: 'STARTED', deleted: false, backendjobstatus: 'error' }, 'remove error: the VM stays');
  t.equal(err.nics.length, 1);
  const failed = vm({ operstate: 'ERROR' });
  t.match(apply(failed, decideOpStatus(op('OP_INSTANCE_REMOVE', 'success'), failed, none)).row, { operstate: 'DESTROYED', deleted: true }, 'remove from ERROR');
});

t.test('tags: per-tag clocks; only successful, non-dry-run ops count', async (t) => {
  let s = vm({ operstate: 'STARTED', backendtime: T });
  s = apply(s, decideOpStatus(op('OP_TAGS_SET', 'success', { tags: ['a', 'b'], eventTime: T + 1 }), s, none));
  t.same(presentTags(s.row.tags), ['a', 'b']);
  t.equal(s.row.backendtime, T, 'a tag op sets no state, so backendtime stays');
  s = apply(s, decideOpStatus(op('OP_TAGS_DEL', 'success', { tags: ['a'], eventTime: T + 2 }), s, none));
  t.same(presentTags(s.row.tags), ['b']);
  s = apply(s, decideOpStatus(op('OP_TAGS_SET', 'error', { tags: ['c'], eventTime: T + 3 }), s, none));
  s = apply(s, decideOpStatus(op('OP_TAGS_SET', 'success', { tags: ['d'], dryRun: true, eventTime: T + 4 }), s, none));
  t.same(presentTags(s.row.tags), ['b'], 'error and dry run leave the tags');
  s = apply(s, decideOpStatus(op('OP_TAGS_DEL', 'error', { tags: ['b'], eventTime: T + 5 }), s, none));
  t.same(presentTags(s.row.tags), ['b'], 'a failed delete keeps the tag');
  // A set delivered after a newer delete of the same tag does not resurrect it.
  s = apply(s, decideOpStatus(op('OP_TAGS_SET', 'success', { tags: ['a'], eventTime: T + 1, jobId: 1 }), s, none));
  t.same(presentTags(s.row.tags), ['b']);
  // An older STARTUP success arriving after a newer tag op still sets the state.
  let u = vm({ operstate: 'STOPPED', backendtime: T - 5 });
  u = apply(u, decideOpStatus(op('OP_TAGS_SET', 'success', { tags: ['x'], eventTime: T + 1 }), u, none));
  u = apply(u, decideOpStatus(op('OP_INSTANCE_STARTUP', 'success', { eventTime: T }), u, none));
  t.equal(u.row.operstate, 'STARTED');
  const created = apply(vm(), decideOpStatus(op('OP_INSTANCE_CREATE', 'success', { tags: ['synnefo:instance:1'] }), vm(), none));
  t.same(presentTags(created.row.tags), ['synnefo:instance:1'], 'CREATE success: the tags of the create');
});

const report = (over: Partial<NicReport> = {}): NicReport => ({
  index: 0,
  mac: 'aa:00:00:00:00:01',
  ipv4: '192.0.2.10',
  ipv6: '2001:db8::a800:ff:fe00:1',
  network: 'snf-net-3',
  link: 'snf_public',
  mode: 'routed',
  name: 'snf-nic-9',
  uuid: 'u-1',
  firewall: null,
  ...over,
});

t.test('NICs: the message NICs replace the VM NICs; firewall profiles; networks by name', async (t) => {
  const s = vm({ operstate: 'STARTED' });
  const d = decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T, cluster: 'c', nics: [report({ index: 1, firewall: 'limited' }), report({ index: 0, firewall: 'protected', network: 'snf-net-404' })] }, s, nets);
  t.equal(d.result, 'applied');
  if (d.result !== 'applied') return;
  t.same(d.change.nics?.map((n) => [n.nicIndex, n.networkId, n.firewallProfile]), [
    [0, null, 'ENABLED'],
    [1, 3, 'PROTECTED'],
  ]);
  t.match(d.change.row, { nicstime: T, backendId: 7 }, 'the VM adopts its cluster');
  const profiles = (fw: string | null) => {
    const r = decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T, cluster: null, nics: [report({ firewall: fw })] }, s, nets);
    return r.result === 'applied' ? r.change.nics?.[0]?.firewallProfile : undefined;
  };
  t.equal(profiles('protected'), 'ENABLED');
  t.equal(profiles('unprotected'), 'DISABLED');
  t.equal(profiles('limited'), 'PROTECTED');
  t.equal(profiles('bogus'), null, 'an unknown tag value gives no profile, as in Synnefo');
  t.equal(profiles(null), null);
  const withNics = apply(s, d);
  t.same(decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T, cluster: null, nics: [] }, withNics, nets), { result: 'ignored', reason: 'stale' }, 'same event time: ignored');
  const emptied = decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T + 1, cluster: null, nics: [] }, withNics, nets);
  t.match(emptied, { result: 'applied', change: { nics: [] } }, 'no NICs: all removed');
  // Changed IP: the old and the new address are both touched, so the store releases the old one.
  const before = withNics.nics;
  const changed = apply(withNics, decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T + 2, cluster: null, nics: [report({ index: 1, ipv4: '192.0.2.99' })] }, withNics, nets));
  t.same(touchedAddresses(before, changed.nics), [
    { networkId: 3, address: '192.0.2.10' },
    { networkId: 3, address: '192.0.2.99' },
  ]);
});

t.test('instance_nics of a finalized op update the NICs by the same rule', async (t) => {
  const s = vm();
  const running = decideOpStatus(op('OP_INSTANCE_CREATE', 'running', { nics: [report()] }), s, nets);
  t.notOk(running.result === 'applied' && running.change.nics, 'not while running');
  const done = decideOpStatus(op('OP_INSTANCE_CREATE', 'success', { nics: [report()] }), s, nets);
  t.match(done, { result: 'applied', change: { nics: [{ nicIndex: 0, networkId: 3, ipv4: '192.0.2.10' }], row: { nicstime: T } } });
  const after = apply(s, done);
  const olderHook = decideNetStatus({ type: 'ganeti-net-status', instance: 'snf-1', eventTime: T - 1, cluster: null, nics: [] }, after, nets);
  t.same(olderHook, { result: 'ignored', reason: 'stale' });
});

t.test('progress: clamped percentage, own clock, only while building (spec §6.8, §6.9)', async (t) => {
  const cp = (progress: number, eventTime = T) => ({ type: 'image-copy-progress' as const, instance: 'snf-1', eventTime, progress });
  for (const [p, pct] of [
    [0, 0],
    [18.75, 18],
    [99.99, 99],
    [100, 100],
    [150.3, 100],
  ] as const) {
    const d = decideCopyProgress(cp(p), vm({ buildpercentage: 5 }));
    t.match(d, { result: 'applied', change: { row: { buildpercentage: pct, progresstime: T } } }, `${p} → ${pct}`);
  }
  const built = vm({ buildpercentage: 50, progresstime: T });
  t.same(decideCopyProgress(cp(40, T - 1), built), { result: 'ignored', reason: 'stale' }, 'older progress');
  t.same(decideCopyProgress(cp(40, T), built), { result: 'ignored', reason: 'stale' }, 'equal time');
  t.same(decideCopyProgress(cp(10, T + 1), vm({ operstate: 'STARTED' })), { result: 'ignored', reason: 'not-building' }, 'after CREATE success');
  t.same(decideCopyProgress(cp(10), vm({ deleted: true })), { result: 'ignored', reason: 'deleted' });
  const d = decideCopyProgress(cp(50, T + 10_000_000), vm());
  t.notOk(d.result === 'applied' && 'backendtime' in d.change.row, 'progress never touches backendtime');
  // The monitor's clock runs 10 s ahead of the master's: CREATE success still applies.
  let s = apply(vm(), d);
  s = apply(s, decideOpStatus(op('OP_INSTANCE_CREATE', 'success'), s, none));
  t.match(s.row, { operstate: 'STARTED', buildpercentage: 100 }, 'CREATE success sets 100 %');
  // Delivered the other way round the result is the same.
  let r = apply(vm(), decideOpStatus(op('OP_INSTANCE_CREATE', 'success'), vm(), none));
  r = apply(r, decideCopyProgress(cp(50, T + 10_000_000), r));
  t.same({ ...r.row, progresstime: 0 }, { ...s.row, progresstime: 0 });
});

t.test('diagnostics: sources, levels and messages of spec §5.6', async (t) => {
  const diag = (over: Partial<DiagnosticMessage>): DiagnosticMessage => ({ type: 'image-info', instance: 'snf-1', eventTime: T, subtype: null, task: null, messages: [], stderr: null, ...over });
  const cases: [Partial<DiagnosticMessage>, string, string, string][] = [
    [{ type: 'image-info', messages: ['Starting image copy...'] }, 'image-info', 'DEBUG', 'Starting image copy...'],
    [{ type: 'image-error', messages: ['Image customization failed.'] }, 'image-error', 'ERROR', 'Image customization failed.'],
    [{ type: 'image-warning', messages: ['a', 'b'] }, 'image-warning', 'WARNING', 'a b'],
    [{ type: 'image-helper', subtype: 'task-start', task: 'FixPartitionTable' }, 'image-helper-task-start', 'DEBUG', 'FixPartitionTable'],
    [{ type: 'image-helper', subtype: 'task-end', task: 'FixPartitionTable' }, 'image-helper-task-end', 'DEBUG', 'FixPartitionTable'],
    [{ type: 'image-helper', subtype: 'warning', messages: [' No swap partition defined'] }, 'image-helper', 'WARNING', 'No swap partition defined'],
    [{ type: 'image-helper', subtype: 'error', stderr: 'mount: wrong fs type\n' }, 'image-helper', 'ERROR', 'Image helper'],
    [{ type: 'image-helper', subtype: 'info', messages: ['hi'] }, 'image-helper', 'INFO', 'hi'],
    [{ type: 'image-error', messages: [] }, 'image-error', 'ERROR', 'Image error'],
  ];
  for (const [over, source, level, message] of cases) {
    t.match(diagnosticOf(diag(over)), { source, level, message, sourceDate: T }, `${over.type} ${over.subtype ?? ''}`);
  }
  t.equal(diagnosticOf(diag({ type: 'image-helper', subtype: 'error', stderr: 'x\ny' })).details, 'x\ny', 'stderr goes to details');
  const d = diagnosticOf(diag({ messages: ['m'] }));
  t.equal(diagnosticKey(1, d), diagnosticKey(1, { ...d }), 'the same diagnostic has the same key');
  t.not(diagnosticKey(1, d), diagnosticKey(2, d), 'per VM');
  t.same(decideDiagnostic(diag({}), vm({ deleted: true })), { result: 'ignored', reason: 'deleted' });
  t.equal(decideDiagnostic(diag({ eventTime: T - 1 }), vm({ deleted: true, backendtime: T })).result, 'applied', 'history from before the removal is kept');
  t.equal(decideDiagnostic(diag({}), vm({ operstate: 'STARTED' })).result, 'applied', 'late diagnostics are still recorded');
});

const network = (over: Partial<NetworkRow> = {}): NetworkRow => ({ id: 3, name: 'snf-net-3', operstate: 'ACTIVE', subnet: null, gateway: null, deleted: false, ...over });
const bn = (over: Partial<BackendNetworkRow> = {}): BackendNetworkRow => ({
  id: 1,
  networkId: 3,
  backendId: 7,
  operstate: 'PENDING',
  backendjobid: null,
  backendopcode: null,
  backendjobstatus: null,
  backendlogmsg: null,
  jobtime: 0,
  backendtime: 0,
  ...over,
});
const netMsg = (operation: string, status: JobStatus, over: Partial<NetworkStatusMessage> = {}): NetworkStatusMessage => ({
  type: 'ganeti-network-status',
  network: 'snf-net-3',
  cluster: 'cluster1.example.test',
  operation,
  status,
  eventTime: T,
  jobId: 9,
  logmsg: null,
  subnet: null,
  gateway: null,
  addReservedIps: [],
  removeReservedIps: [],
  ...over,
});

t.test('backend networks: each opcode × status', async (t) => {
  const onSuccess: Record<string, string> = { OP_NETWORK_ADD: 'PENDING', OP_NETWORK_CONNECT: 'ACTIVE', OP_NETWORK_DISCONNECT: 'PENDING', OP_NETWORK_REMOVE: 'DELETED' };
  for (const operation of ['OP_NETWORK_ADD', 'OP_NETWORK_CONNECT', 'OP_NETWORK_DISCONNECT', 'OP_NETWORK_REMOVE', 'OP_NETWORK_SET_PARAMS', 'OP_NETWORK_QUERY_DATA']) {
    for (const status of JOB_STATUSES) {
      const start = bn({ operstate: 'ACTIVE' });
      const d = decideNetworkStatus(netMsg(operation, status), network(), start, 0);
      t.equal(d.result, 'applied', `${operation} ${status}`);
      if (d.result !== 'applied') continue;
      const after = { ...start, ...d.change.backendNetwork };
      let state = 'ACTIVE';
      if (status === 'success' && onSuccess[operation]) state = onSuccess[operation];
      if (operation === 'OP_NETWORK_ADD' && (status === 'error' || status === 'canceled')) state = 'ERROR';
      t.equal(after.operstate, state, `${operation} ${status}: operstate`);
      t.match(after, { backendjobid: 9, backendopcode: operation, backendjobstatus: status }, 'job fields (not Synnefo\'s `opcode` typo)');
    }
  }
  const connected = bn({ operstate: 'ACTIVE', backendtime: T, jobtime: T, backendjobid: 3, backendopcode: 'OP_NETWORK_CONNECT', backendjobstatus: 'success' });
  const dupAdd = decideNetworkStatus(netMsg('OP_NETWORK_ADD', 'error', { eventTime: T + 5 }), network(), connected, 0);
  t.match(dupAdd, { result: 'applied', change: { backendNetwork: { backendjobstatus: 'error' } } });
  t.notOk(dupAdd.result === 'applied' && 'operstate' in dupAdd.change.backendNetwork, 'fixture job 18: a duplicate ADD fails, the network stays');
  t.same(decideNetworkStatus(netMsg('OP_NETWORK_CONNECT', 'success'), network({ deleted: true }), bn(), T - 1), { result: 'ignored', reason: 'deleted' }, 'newer than the deletion');
  const history = decideNetworkStatus(netMsg('OP_NETWORK_ADD', 'success', { eventTime: T - 5, subnet: '10.0.0.0/24', addReservedIps: ['10.0.0.9'] }), network({ deleted: true, operstate: 'DELETED' }), bn({ operstate: 'DELETED', backendtime: T - 1, jobtime: T - 1, backendjobstatus: 'success' }), T - 1);
  t.match(history, { result: 'applied', change: { network: { subnet: '10.0.0.0/24' }, backendNetwork: {}, reservations: [] } }, 'older history still fills in, but no state and no pool');
  t.same(decideNetworkStatus(netMsg('OP_NETWORK_DISCONNECT', 'success', { eventTime: T - 1, jobId: 1 }), network(), connected, 0), { result: 'ignored', reason: 'stale' }, 'older event');
  const added = decideNetworkStatus(netMsg('OP_NETWORK_ADD', 'success', { subnet: '10.10.0.0/24', gateway: '10.10.0.1' }), network(), bn(), 0);
  t.match(added, { result: 'applied', change: { network: { subnet: '10.10.0.0/24', gateway: '10.10.0.1' } } });
});

t.test('reserved IPs: on success only, removals honoured, per-address clock', async (t) => {
  const ips = { addReservedIps: ['10.0.0.50', '10.0.0.51'], removeReservedIps: ['10.0.0.9'] };
  for (const status of JOB_STATUSES) {
    const d = decideNetworkStatus(netMsg('OP_NETWORK_SET_PARAMS', status, ips), network(), bn(), 0);
    const reservations = d.result === 'applied' ? d.change.reservations : [];
    t.same(reservations.length, status === 'success' ? 3 : 0, `SET_PARAMS ${status}`);
  }
  const d = decideNetworkStatus(netMsg('OP_NETWORK_SET_PARAMS', 'success', ips), network(), bn(), 0);
  t.match(d, {
    result: 'applied',
    change: {
      reservations: [
        { address: '10.0.0.50', reserved: true, time: T },
        { address: '10.0.0.51', reserved: true, time: T },
        { address: '10.0.0.9', reserved: false, time: T },
      ],
    },
  });
  const key = { networkId: 3, address: '10.0.0.50' };
  const add = { address: '10.0.0.50', reserved: true, time: T };
  const remove = { address: '10.0.0.50', reserved: false, time: T + 1 };
  const afterAdd = settleReservation(key, undefined, add, undefined);
  t.match(afterAdd, { external: true, externalTime: T, vmId: null });
  const afterRemove = settleReservation(key, afterAdd ?? undefined, remove, undefined);
  t.match(afterRemove, { external: false, externalTime: T + 1 }, 'a removal keeps its time');
  t.match(settleReservation(key, afterRemove ?? undefined, add, undefined), { external: false }, 'an older add delivered late stays removed');
  t.equal(settleReservation(key, undefined, undefined, undefined), null, 'nothing to keep');
  t.match(settleReservation(key, undefined, undefined, { vmId: 5, nicIndex: 1 }), { external: false, vmId: 5, nicIndex: 1 }, 'held by a NIC');
  t.match(settleReservation(key, { ...key, external: false, externalTime: 0, vmId: 5, nicIndex: 1 }, undefined, undefined), null, 'released when no NIC holds it');
});

t.test('network state from its backend networks', async (t) => {
  t.same(deriveNetworkState([]), { operstate: 'ACTIVE', deleted: false });
  t.same(deriveNetworkState(['DELETED']), { operstate: 'DELETED', deleted: true });
  t.same(deriveNetworkState(['DELETED', 'DELETED']), { operstate: 'DELETED', deleted: true });
  t.same(deriveNetworkState(['DELETED', 'ACTIVE']), { operstate: 'ACTIVE', deleted: false });
  t.same(deriveNetworkState(['PENDING', 'ACTIVE']), { operstate: 'ACTIVE', deleted: false });
  t.same(deriveNetworkState(['PENDING', 'ERROR']), { operstate: 'ERROR', deleted: false });
  t.same(deriveNetworkState(['PENDING', 'DELETED']), { operstate: 'PENDING', deleted: false });
});

const backend = (over: Partial<BackendRow> = {}): BackendRow => ({
  id: 7,
  clustername: 'cluster1.example.test',
  clusterJobid: null,
  clusterOpcode: null,
  clusterJobstatus: null,
  clusterLogmsg: null,
  clusterTime: 0,
  heartbeatNode: null,
  heartbeatRole: null,
  heartbeatOutbox: null,
  heartbeatTime: 0,
  masterNode: null,
  masterTime: 0,
  ...over,
});

t.test('cluster status and heartbeats on the backend row', async (t) => {
  const cs = (status: JobStatus, eventTime: number) => ({ type: 'ganeti-cluster-status' as const, cluster: 'cluster1.example.test', operation: 'OP_CLUSTER_SET_PARAMS', status, eventTime, jobId: 23, logmsg: null });
  t.match(decideClusterStatus(cs('success', T), backend()), { result: 'applied', change: { clusterJobstatus: 'success', clusterTime: T, clusterJobid: 23 } });
  t.same(decideClusterStatus(cs('running', T - 5), backend({ clusterJobid: 23, clusterJobstatus: 'success', clusterTime: T })), { result: 'ignored', reason: 'stale' });
  const hb = (role: 'master' | 'candidate', node: string, eventTime: number) => ({ type: 'eventd-heartbeat' as const, cluster: 'cluster1.example.test', node, role, outbox: 2, eventTime });
  let b = backend();
  const master = decideHeartbeat(hb('master', 'node1', T), b);
  t.match(master, { result: 'applied', change: { heartbeatNode: 'node1', heartbeatRole: 'master', heartbeatOutbox: 2, heartbeatTime: T, masterNode: 'node1', masterTime: T } });
  if (master.result === 'applied') b = { ...b, ...master.change };
  const cand = decideHeartbeat(hb('candidate', 'node2', T + 7), b);
  t.same(cand, { result: 'applied', change: { heartbeatNode: 'node2', heartbeatRole: 'candidate', heartbeatOutbox: 2, heartbeatTime: T + 7 } }, 'a candidate is the newest heartbeat but not the master');
  t.same(decideHeartbeat(hb('master', 'node1', T - 1), b), { result: 'ignored', reason: 'stale' });
});
