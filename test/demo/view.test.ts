// The demo's rendering, pure: the live frame (what a terminal shows), the plain change lines (what a
// pipe gets), the summary, and the bytes that redraw a frame in place.

import t from 'tap';
import { frameBytes } from '../../scripts/demo/terminal.js';
import { bar, changeLines, MIN_WIDTH, renderFrame, renderSummary, type ViewState } from '../../scripts/demo/view.js';

const building: ViewState = {
  source: 'replay of a real Ganeti 3.0 run at 8x',
  elapsedMs: 3400,
  steps: { done: 60, total: 200, last: 'job 4 OP_INSTANCE_CREATE snf-1 running' },
  vms: [
    {
      name: 'snf-1',
      operstate: 'BUILD',
      deleted: false,
      buildpercentage: 18,
      job: { id: 4, opcode: 'OP_INSTANCE_CREATE', status: 'running', logmsg: ' - INFO: * creating instance disks...' },
      nics: [
        { index: 0, mac: 'aa:00:01:b1:67:50', ipv4: '10.10.0.3', ipv6: '2001:db8:10::a800:1ff:feb1:6750', network: 'snf-net-1', firewall: null },
        { index: 1, mac: 'aa:00:00:11:22:33', ipv4: null, ipv6: null, network: null, firewall: null },
      ],
    },
  ],
  networks: [
    {
      name: 'snf-net-1',
      operstate: 'ACTIVE',
      deleted: false,
      subnet: '10.10.0.0/24',
      backends: [{ cluster: 'cluster1.example.test', operstate: 'ACTIVE', job: { id: 3, opcode: 'OP_NETWORK_CONNECT', status: 'success' } }],
    },
  ],
  totals: { published: 17, confirmed: 16, applied: 15, ignored: 1, deadLettered: 0, retried: 0 },
};

t.test('bar: a fixed width, filled in proportion, clamped', async (t) => {
  t.equal(bar(0, 10), '[..........]');
  t.equal(bar(18, 10), '[##........]');
  t.equal(bar(100, 10), '[##########]');
  t.equal(bar(250, 4), '[####]');
  t.equal(bar(-5, 4), '[....]');
});

t.test('the live frame: header, VM with bar and NICs, network, totals; 80 columns', async (t) => {
  const lines = renderFrame(building, 80);
  for (const l of lines) t.ok(l.length <= 80, `fits 80 columns: ${JSON.stringify(l)}`);
  t.match(lines[0], /^snf-cyclades-gtools demo: replay of a real Ganeti 3\.0 run at 8x +3\.4 s$/);
  t.equal(lines[0]!.length, 80, 'the clock is right-aligned');
  t.match(lines[1], /^\[######\.+\]  60\/200  job 4 OP_INSTANCE_CREATE snf-1 running$/);
  const vm = lines.find((l) => l.startsWith('snf-1 '));
  t.ok(vm, 'a line for the VM');
  t.match(vm, /^snf-1 +BUILD +4 OP_INSTANCE_CREATE +running +\[##\.{8}\]  18%/);
  t.ok(lines.includes('    nic0  aa:00:01:b1:67:50  10.10.0.3        snf-net-1'), 'a NIC: MAC, IPv4, network (no IPv6 when it does not fit)');
  t.ok(lines.some((l) => /^ {4}nic1 +aa:00:00:11:22:33 +- +-$/.test(l)), 'a NIC without IP or network shows dashes');
  t.ok(lines.some((l) => /^snf-net-1 +ACTIVE +3 OP_NETWORK_CONNECT +success +10\.10\.0\.0\/24$/.test(l)));
  t.ok(lines.includes('    on cluster1.example.test: ACTIVE'), 'the network on each cluster');
  t.notOk(lines.some((l) => l.includes('INFO')), 'no log message cut short at 80 columns');
  t.equal(lines[lines.length - 1], 'published 17  confirmed 16  applied 15  unchanged 1  dead-lettered 0');
  t.notOk(lines.some((l) => l.includes('\x1b')), 'no escape codes in the frame itself');
});

t.test('a wider terminal shows more (the log message, the IPv6 address); a narrower one gets 80', async (t) => {
  const wide = renderFrame(building, 160);
  t.ok(wide.some((l) => l.endsWith('18%  - INFO: * creating instance disks...')), 'the job log message');
  t.ok(wide.some((l) => l.endsWith('snf-net-1     2001:db8:10::a800:1ff:feb1:6750')), 'the IPv6 address');
  for (const l of renderFrame(building, 40)) t.ok(l.length <= MIN_WIDTH);
});

t.test('an empty state says so instead of showing nothing', async (t) => {
  const lines = renderFrame({ ...building, vms: [], networks: [], totals: { published: 0, confirmed: 0, applied: 0, ignored: 0, deadLettered: 0, retried: 0 }, steps: { done: 0, total: 0, last: 'starting' } });
  t.equal(lines.filter((l) => l === '(none yet)').length, 2);
  t.match(lines[1], /^\[\.{20}\] 0\/0  starting$/);
});

t.test('plain lines: everything once at first, then only what changed', async (t) => {
  const first = changeLines(undefined, building);
  t.same(first, [
    '   3.4 s  vm snf-1: new, BUILD, job 4 OP_INSTANCE_CREATE running',
    '   3.4 s  vm snf-1: build 18%',
    '   3.4 s  vm snf-1: nics nic0 aa:00:01:b1:67:50 10.10.0.3 snf-net-1, nic1 aa:00:00:11:22:33 - -',
    '   3.4 s  network snf-net-1: new, ACTIVE, 10.10.0.0/24',
    '   3.4 s  network snf-net-1 on cluster1.example.test: ACTIVE, job 3 OP_NETWORK_CONNECT success',
    '   3.4 s  published 17  confirmed 16  applied 15  unchanged 1  dead-lettered 0',
  ]);
  t.same(changeLines(building, { ...building, elapsedMs: 3600, steps: { done: 61, total: 200, last: 'x' } }), [], 'the clock and the steps alone are no change');

  const vm = building.vms[0]!;
  const started: ViewState = {
    ...building,
    elapsedMs: 4000,
    vms: [{ ...vm, operstate: 'STARTED', buildpercentage: 100, job: { ...vm.job, status: 'success', logmsg: null }, nics: vm.nics.slice(0, 1) }],
    totals: { ...building.totals!, confirmed: 17, applied: 16 },
  };
  t.same(changeLines(building, started), [
    '   4.0 s  vm snf-1: BUILD -> STARTED',
    '   4.0 s  vm snf-1: job 4 OP_INSTANCE_CREATE success',
    '   4.0 s  vm snf-1: build 100%',
    '   4.0 s  vm snf-1: nics nic0 aa:00:01:b1:67:50 10.10.0.3 snf-net-1',
    '   4.0 s  published 17  confirmed 17  applied 16  unchanged 1  dead-lettered 0',
  ]);
  for (const l of [...first, ...changeLines(building, started)]) t.notOk(l.includes('\x1b'), 'no escape codes');
});

t.test('the summary: final states, totals, whether it settled, where the state lives', async (t) => {
  const end: ViewState = {
    ...building,
    elapsedMs: 31_000,
    steps: { done: 200, total: 200, last: 'replay done' },
    vms: [{ ...building.vms[0]!, operstate: 'DESTROYED', deleted: true, nics: [] }],
    networks: [{ ...building.networks[0]!, operstate: 'DELETED', deleted: true }],
    totals: { published: 117, confirmed: 117, applied: 111, ignored: 6, deadLettered: 0, retried: 0 },
  };
  t.same(renderSummary({ state: end, settled: true, problems: [], where: ['database var/demo/dispatcher.sqlite', 'logs var/demo/logs/'] }), [
    'demo finished in 31.0 s: 200 of 200 steps of the replay of a real Ganeti 3.0 run at 8x',
    'VMs:      snf-1 DESTROYED',
    'networks: snf-net-1 DELETED',
    'totals:   published 117  confirmed 117  applied 111  unchanged 6  dead-lettered 0',
    '          every confirmed message was consumed by the dispatcher',
    'state:    database var/demo/dispatcher.sqlite',
    '          logs var/demo/logs/',
  ]);
  const cut = renderSummary({ state: building, settled: false, problems: [], interrupted: 'interrupted', where: [] });
  t.equal(cut[0], 'demo stopped after 3.4 s (interrupted): 60 of 200 steps of the replay of a real Ganeti 3.0 run at 8x');
  t.equal(cut[4], '          NOT settled: 0 confirmed messages not consumed, 1 published messages not confirmed');

  const real = renderSummary({ state: { ...end, totals: undefined }, settled: undefined, problems: ['step broker-stopped: the database did not agree'], where: [] });
  t.same(real.slice(3), ['totals:   no totals: eventd and the dispatcher run without a metrics endpoint', 'problems: step broker-stopped: the database did not agree']);
});

t.test('without totals the frame and the plain lines say so once', async (t) => {
  const none = { ...building, totals: undefined };
  t.equal(renderFrame(none).at(-1), 'no totals: eventd and the dispatcher run without a metrics endpoint');
  t.equal(changeLines(undefined, none).at(-1), '   3.4 s  no totals: eventd and the dispatcher run without a metrics endpoint');
  t.same(changeLines(none, { ...none, elapsedMs: 5000 }), []);
});

t.test('frameBytes redraws in place: cursor home, each line cleared to its end, the rest cleared', async (t) => {
  t.equal(frameBytes(['a', 'bc']), '\x1b[Ha\x1b[K\nbc\x1b[K\n\x1b[J');
});
