// The end-to-end scenario: named steps, each an action on the real Ganeti cluster (gnt-* commands or
// the RAPI, as Synnefo's backend uses it) or on the project's programs, and what the dispatcher's
// database must show afterwards. Ganeti's own answers (job ids, MACs, the IPs its pool gave) are read
// back and become the expectation, so the comparison is "the dispatcher agrees with Ganeti".
//
// A live view can run the same list: `for (const step of SCENARIO) await runStep(ctx, step)`, or
// one by name with runNamedStep().

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworkView, ServerView } from '../../src/dispatcher/views.js';
import {
  BRIDGE,
  CLUSTER_NAME,
  NODE_NAME,
  OS_NAME,
  runStep,
  type Expectation,
  type GanetiInstance,
  type GanetiJob,
  type ScenarioContext,
  type Step,
  type StepResult,
} from './harness.js';
import type { DiagnosticView, DispatcherState } from './state.js';

const NET = 'snf-net-1';
const VM = 'snf-1';
/** The instance whose deployment fails. */
const VM_FAILED = 'snf-2';
const SUBNET = '10.10.0.0/24';
const GATEWAY = '10.10.0.1';
const SUBNET6 = '2001:db8:10::/64';
const MAC_PREFIX = 'aa:00:01';
const FIREWALL_TAG = 'synnefo:network:0:protected';
const VM_TAGS = ['synnefo:instance:1', FIREWALL_TAG];

// ---------------------------------------------------------------------------------------------
// Expectations

const server = (name: string, expected: Partial<Record<keyof ServerView, unknown>>): Expectation => ({
  what: `dispatcher server ${name}`,
  select: (s: DispatcherState) => s.servers.find((v) => v.name === name) ?? null,
  expected: { name, ...expected },
});

const network = (name: string, expected: Partial<Record<keyof NetworkView, unknown>>): Expectation => ({
  what: `dispatcher network ${name}`,
  select: (s: DispatcherState) => s.networks.find((n) => n.name === name) ?? null,
  expected: { name, ...expected },
});

const diagnostics = (vm: string, expected: Omit<DiagnosticView, 'vm'>[]): Expectation => ({
  what: `diagnostics of ${vm}`,
  select: (s: DispatcherState) => s.diagnostics.filter((d) => d.vm === vm).map(({ vm: _vm, ...d }) => d),
  expected,
});

const cluster = (expected: Record<string, unknown>): Expectation => ({
  what: `dispatcher backend ${CLUSTER_NAME}`,
  select: (s: DispatcherState) => s.backends.find((b) => b.cluster === CLUSTER_NAME) ?? null,
  expected: { cluster: CLUSTER_NAME, ...expected },
});

const job = (j: GanetiJob, opcode: string, status: string = j.status) => ({ id: j.id, opcode, status });

/**
 * The IPv6 address the hook derives for a NIC of the network (modified EUI-64 on 2001:db8:10::/64),
 * spelled out for this network's MAC prefix aa:00:01: `aa` with the universal/local bit flipped is
 * `a8`, and `ff:fe` sits between the 3rd and the 4th octet (RFC 4291 appendix A; RFC 5952 text).
 */
function eui64(mac: string): string {
  const [, , , b3, b4, b5] = mac.split(':');
  const group = (hex: string) => hex.replace(/^0+(?=.)/, '');
  return `2001:db8:10:0:a800:1ff:${group(`fe${b3}`)}:${group(`${b4}${b5}`)}`;
}

/** The NICs the dispatcher must show: Ganeti's, with the firewall profile of FIREWALL_TAG on NIC 0. */
function nicsOf(instance: GanetiInstance): unknown[] {
  return instance.nics.map((n, index) => ({
    index,
    mac: n.mac,
    ipv4: n.ip,
    ipv6: n.network === NET ? eui64(n.mac) : null,
    network: n.network,
    firewall: index === 0 ? 'ENABLED' : null,
  }));
}

/** The addresses of NET that the instances' NICs hold in Ganeti, as the dispatcher lists them. */
function inUse(ctx: ScenarioContext, ...names: string[]): string[] {
  return names
    .flatMap((name) => ctx.instances[name]?.nics ?? [])
    .filter((n) => n.network === NET && n.ip !== null)
    .map((n) => n.ip as string)
    .sort();
}

/** What the recorded snf-image streams (fixtures/snf-image-deploy-*.jsonl) leave as diagnostics. */
const DEPLOY_OK_DIAGNOSTICS = [
  { source: 'image-info', level: 'DEBUG', message: 'Starting image copy...', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Image copy finished.', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Starting customization VM...', details: null },
  { source: 'image-helper-task-start', level: 'DEBUG', message: 'FixPartitionTable', details: null },
  { source: 'image-helper-task-end', level: 'DEBUG', message: 'FixPartitionTable', details: null },
  { source: 'image-helper', level: 'WARNING', message: 'No swap partition defined', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Customization VM exited normally.', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Checking customization status...', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Customization status is: SUCCESS', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Image customization finished successfully.', details: null },
];

const DEPLOY_FAIL_DIAGNOSTICS = [
  { source: 'image-info', level: 'DEBUG', message: 'Starting image copy...', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Image copy finished.', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Starting customization VM...', details: null },
  { source: 'image-helper-task-start', level: 'DEBUG', message: 'MountImage', details: null },
  { source: 'image-helper', level: 'ERROR', message: 'Image helper', details: 'mount: wrong fs type\nbad superblock\n' },
  { source: 'image-info', level: 'DEBUG', message: 'Customization VM exited normally.', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Checking customization status...', details: null },
  { source: 'image-info', level: 'DEBUG', message: 'Customization status is: ERROR: ...', details: null },
  { source: 'image-error', level: 'ERROR', message: 'Image customization failed.', details: null },
];

// ---------------------------------------------------------------------------------------------
// Actions

function mustBe(j: GanetiJob, status: string, what: string): GanetiJob {
  if (j.status !== status) throw new Error(`${what}: Ganeti job ${j.id} is ${j.status} (ops ${j.opstatus.join(', ')}), expected ${status}`);
  return j;
}

/** Runs a job and keeps it (and Ganeti's view of VM afterwards) under the step's name. */
async function record(ctx: ScenarioContext, key: string, j: Promise<GanetiJob>, status = 'success'): Promise<GanetiJob> {
  const done = mustBe(await j, status, key);
  ctx.jobs[key] = done;
  return done;
}

async function refresh(ctx: ScenarioContext, name: string): Promise<void> {
  ctx.instances[name] = await ctx.cluster.instance(name);
}

/** The dispatcher must not have seen `key`'s job yet (a program that should carry it is down). */
async function notYetSeen(ctx: ScenarioContext, key: string): Promise<void> {
  const state = await ctx.cluster.readState();
  const seen = state.servers.find((v) => v.name === VM)?.job.id;
  if (seen === ctx.jobs[key]?.id) throw new Error(`the dispatcher shows job ${seen} (${key}) although it should not have received it yet`);
}

// ---------------------------------------------------------------------------------------------

export const SCENARIO: Step[] = [
  {
    name: 'network-add',
    does: `gnt-network add ${NET} (${SUBNET}, IPv6 ${SUBNET6}, reserving 10.10.0.2)`,
    run: async (ctx) => {
      await record(ctx, 'network-add', ctx.cluster.job('gnt-network', 'add', `--network=${SUBNET}`, `--gateway=${GATEWAY}`, `--network6=${SUBNET6}`,
        '--gateway6=2001:db8:10::1', `--mac-prefix=${MAC_PREFIX}`, '--add-reserved-ips=10.10.0.2', '--tags=synnefo:network:1', NET));
    },
    expect: (ctx) => [
      network(NET, {
        operstate: 'PENDING',
        deleted: false,
        subnet: SUBNET,
        gateway: GATEWAY,
        backends: [{ cluster: CLUSTER_NAME, operstate: 'PENDING', job: job(ctx.jobs['network-add']!, 'OP_NETWORK_ADD') }],
        reserved: ['10.10.0.2'],
        inUse: [],
      }),
    ],
  },
  {
    name: 'network-connect',
    does: `RAPI PUT /2/networks/${NET}/connect: node group default, bridged on ${BRIDGE}`,
    run: async (ctx) => {
      const body = { group_name: 'default', network_mode: 'bridged', network_link: BRIDGE };
      await record(ctx, 'network-connect', ctx.cluster.rapiJob('PUT', `/2/networks/${NET}/connect`, body));
    },
    expect: (ctx) => [
      network(NET, { operstate: 'ACTIVE', backends: [{ cluster: CLUSTER_NAME, operstate: 'ACTIVE', job: job(ctx.jobs['network-connect']!, 'OP_NETWORK_CONNECT') }] }),
    ],
  },
  {
    name: 'network-reserve-ips',
    does: `gnt-network modify --add-reserved-ips=10.10.0.50,10.10.0.51 ${NET}`,
    run: async (ctx) => {
      await record(ctx, 'network-reserve-ips', ctx.cluster.job('gnt-network', 'modify', '--add-reserved-ips=10.10.0.50,10.10.0.51', NET));
    },
    expect: (ctx) => [
      network(NET, {
        operstate: 'ACTIVE',
        backends: [{ operstate: 'ACTIVE', job: job(ctx.jobs['network-reserve-ips']!, 'OP_NETWORK_SET_PARAMS') }],
        reserved: ['10.10.0.2', '10.10.0.50', '10.10.0.51'],
      }),
    ],
  },
  {
    name: 'network-release-ip',
    does: `gnt-network modify --remove-reserved-ips=10.10.0.51 ${NET}`,
    run: async (ctx) => {
      await record(ctx, 'network-release-ip', ctx.cluster.job('gnt-network', 'modify', '--remove-reserved-ips=10.10.0.51', NET));
    },
    expect: (ctx) => [
      network(NET, {
        backends: [{ operstate: 'ACTIVE', job: job(ctx.jobs['network-release-ip']!, 'OP_NETWORK_SET_PARAMS') }],
        reserved: ['10.10.0.2', '10.10.0.50'],
      }),
    ],
  },
  {
    name: 'instance-create',
    does: `RAPI POST /2/instances ${VM}: a NIC on ${NET} with an IP from its pool, a bridged one without IP, tags; the OS runs snf-progress-monitor`,
    run: async (ctx) => {
      await record(ctx, 'instance-create', ctx.cluster.rapiJob('POST', '/2/instances', {
        __version__: 1,
        mode: 'create',
        name: VM,
        disk_template: 'file',
        disks: [{ size: 1024 }],
        os: `${OS_NAME}+default`,
        pnode: NODE_NAME,
        nics: [{ network: NET, ip: 'pool', name: 'snf-nic-11' }, { mode: 'bridged', link: BRIDGE }],
        osparams: { img_id: 'debian-base', img_format: 'diskdump', img_passwd: 's3cret' },
        beparams: { minmem: 128, maxmem: 128, vcpus: 1 },
        hypervisor: 'fake',
        tags: VM_TAGS,
        name_check: false,
        ip_check: false,
        start: true,
        wait_for_sync: false,
      }));
      await refresh(ctx, VM);
      const tags = ctx.instances[VM]!.tags;
      if (tags.join() !== [...VM_TAGS].sort().join()) throw new Error(`Ganeti's tags of ${VM}: ${tags.join(', ')}`);
    },
    expect: (ctx) => [
      server(VM, {
        cluster: CLUSTER_NAME,
        operstate: 'STARTED',
        deleted: false,
        buildpercentage: 100,
        job: job(ctx.jobs['instance-create']!, 'OP_INSTANCE_CREATE'),
        tags: ctx.instances[VM]!.tags,
        nics: nicsOf(ctx.instances[VM]!),
      }),
      diagnostics(VM, DEPLOY_OK_DIAGNOSTICS),
      network(NET, { reserved: ['10.10.0.2', '10.10.0.50'], inUse: inUse(ctx, VM) }),
    ],
  },
  {
    name: 'instance-shutdown',
    does: `RAPI PUT /2/instances/${VM}/shutdown`,
    run: async (ctx) => {
      await record(ctx, 'instance-shutdown', ctx.cluster.rapiJob('PUT', `/2/instances/${VM}/shutdown`));
    },
    expect: (ctx) => [server(VM, { operstate: 'STOPPED', job: job(ctx.jobs['instance-shutdown']!, 'OP_INSTANCE_SHUTDOWN') })],
  },
  {
    name: 'instance-startup',
    does: `gnt-instance startup ${VM}`,
    run: async (ctx) => {
      await record(ctx, 'instance-startup', ctx.cluster.job('gnt-instance', 'startup', VM));
    },
    expect: (ctx) => [server(VM, { operstate: 'STARTED', job: job(ctx.jobs['instance-startup']!, 'OP_INSTANCE_STARTUP'), nics: nicsOf(ctx.instances[VM]!) })],
  },
  {
    name: 'instance-reboot',
    does: `RAPI POST /2/instances/${VM}/reboot?type=soft`,
    run: async (ctx) => {
      await record(ctx, 'instance-reboot', ctx.cluster.rapiJob('POST', `/2/instances/${VM}/reboot?type=soft`));
    },
    expect: (ctx) => [server(VM, { operstate: 'STARTED', job: job(ctx.jobs['instance-reboot']!, 'OP_INSTANCE_REBOOT') })],
  },
  {
    name: 'instance-add-nic',
    does: `gnt-instance modify --net add:network=${NET},ip=pool ${VM}`,
    run: async (ctx) => {
      await record(ctx, 'instance-add-nic', ctx.cluster.job('gnt-instance', 'modify', `--net=add:network=${NET},ip=pool,name=snf-nic-13`, VM));
      await refresh(ctx, VM);
      if (ctx.instances[VM]!.nics.length !== 3) throw new Error(`Ganeti shows ${ctx.instances[VM]!.nics.length} NICs on ${VM}, expected 3`);
    },
    expect: (ctx) => [
      server(VM, { operstate: 'STARTED', job: job(ctx.jobs['instance-add-nic']!, 'OP_INSTANCE_SET_PARAMS'), nics: nicsOf(ctx.instances[VM]!) }),
      network(NET, { inUse: inUse(ctx, VM) }),
    ],
  },
  {
    name: 'instance-change-ip',
    does: `gnt-instance modify --net 2:modify,ip=10.10.0.60 ${VM}`,
    run: async (ctx) => {
      await record(ctx, 'instance-change-ip', ctx.cluster.job('gnt-instance', 'modify', '--net=2:modify,ip=10.10.0.60', VM));
      await refresh(ctx, VM);
      if (ctx.instances[VM]!.nics[2]?.ip !== '10.10.0.60') throw new Error(`Ganeti did not change the IP: ${JSON.stringify(ctx.instances[VM]!.nics)}`);
    },
    expect: (ctx) => [
      server(VM, { job: job(ctx.jobs['instance-change-ip']!, 'OP_INSTANCE_SET_PARAMS'), nics: nicsOf(ctx.instances[VM]!) }),
      network(NET, { inUse: inUse(ctx, VM) }),
    ],
  },
  {
    name: 'instance-remove-nic',
    does: `gnt-instance modify --net 2:remove ${VM}`,
    run: async (ctx) => {
      await record(ctx, 'instance-remove-nic', ctx.cluster.job('gnt-instance', 'modify', '--net=2:remove', VM));
      await refresh(ctx, VM);
    },
    expect: (ctx) => [
      server(VM, { job: job(ctx.jobs['instance-remove-nic']!, 'OP_INSTANCE_SET_PARAMS'), nics: nicsOf(ctx.instances[VM]!) }),
      network(NET, { inUse: inUse(ctx, VM) }),
    ],
  },
  {
    name: 'instance-create-fails',
    does: `gnt-instance add ${VM_FAILED}: the image's customization fails, and so does the OS create script`,
    run: async (ctx) => {
      await record(
        ctx,
        'instance-create-fails',
        ctx.cluster.job('gnt-instance', 'add', '-t', 'file', '--disk=0:size=1G', '-o', `${OS_NAME}+default`, '-O', 'img_id=fail-image,img_format=diskdump',
          '-n', NODE_NAME, '--no-name-check', '--no-ip-check', `--net=0:network=${NET},ip=pool`, '-B', 'minmem=128,maxmem=128',
          '--tags=synnefo:instance:2', VM_FAILED),
        'error',
      );
    },
    expect: (ctx) => [
      server(VM_FAILED, {
        cluster: CLUSTER_NAME,
        operstate: 'ERROR',
        deleted: false,
        // the copy reached 100 % before the customization failed (the progress messages alone say so)
        buildpercentage: 100,
        job: job(ctx.jobs['instance-create-fails']!, 'OP_INSTANCE_CREATE', 'error'),
        tags: [],
        nics: [],
      }),
      diagnostics(VM_FAILED, DEPLOY_FAIL_DIAGNOSTICS),
      server(VM, { operstate: 'STARTED', job: job(ctx.jobs['instance-remove-nic']!, 'OP_INSTANCE_SET_PARAMS') }),
    ],
  },
  {
    name: 'multi-op-job-fails',
    does: `gnt-debug submit-job: shutdown ${VM} (succeeds), set an IP outside ${NET} (fails), startup (not run)`,
    run: async (ctx) => {
      const file = join(ctx.cluster.dir, 'multi-op-job.json');
      writeFileSync(
        file,
        JSON.stringify([
          { OP_ID: 'OP_INSTANCE_SHUTDOWN', instance_name: VM },
          { OP_ID: 'OP_INSTANCE_SET_PARAMS', instance_name: VM, nics: [['modify', 0, { ip: '10.99.0.5' }]] },
          { OP_ID: 'OP_INSTANCE_STARTUP', instance_name: VM },
        ]),
      );
      const out = await ctx.cluster.gnt('gnt-debug', 'submit-job', file);
      const id = /job (\d+)/i.exec(out);
      if (!id) throw new Error(`no job id in: ${out}`);
      const j = await record(ctx, 'multi-op-job-fails', ctx.cluster.waitJob(Number(id[1])), 'error');
      if (j.opstatus.join(',') !== 'success,error,error') throw new Error(`ops of job ${j.id}: ${j.opstatus.join(',')}`);
    },
    expect: (ctx) => [server(VM, { operstate: 'STOPPED', job: job(ctx.jobs['multi-op-job-fails']!, 'OP_INSTANCE_STARTUP', 'error') })],
  },
  {
    name: 'job-cancelled-while-queued',
    does: `with one job running at most, gnt-instance startup ${VM} waits in the queue behind a gnt-debug delay and is cancelled there`,
    run: async (ctx) => {
      const c = ctx.cluster;
      await c.gnt('gnt-cluster', 'modify', '--max-running-jobs=1');
      const delay = await c.submit('gnt-debug', 'delay', '4');
      const startup = await c.submit('gnt-instance', 'startup', VM);
      await c.gnt('gnt-job', 'cancel', '--force', String(startup));
      await record(ctx, 'job-cancelled-while-queued', c.waitJob(startup), 'canceled');
      mustBe(await c.waitJob(delay), 'success', 'the delay job');
      await record(ctx, 'cluster-modify', c.job('gnt-cluster', 'modify', '--max-running-jobs=20'));
    },
    expect: (ctx) => [
      server(VM, { operstate: 'STOPPED', job: job(ctx.jobs['job-cancelled-while-queued']!, 'OP_INSTANCE_STARTUP', 'canceled') }),
      cluster({ job: job(ctx.jobs['cluster-modify']!, 'OP_CLUSTER_SET_PARAMS'), masterNode: NODE_NAME }),
    ],
  },
  {
    name: 'eventd-killed',
    does: 'SIGKILL snf-ganeti-eventd',
    run: async (ctx) => {
      await ctx.cluster.killEventd();
    },
    expect: (ctx) => [server(VM, { operstate: 'STOPPED', job: job(ctx.jobs['job-cancelled-while-queued']!, 'OP_INSTANCE_STARTUP', 'canceled') })],
  },
  {
    name: 'startup-while-eventd-down',
    does: `gnt-instance startup ${VM} with eventd dead`,
    run: async (ctx) => {
      await record(ctx, 'startup-while-eventd-down', ctx.cluster.job('gnt-instance', 'startup', VM));
      await notYetSeen(ctx, 'startup-while-eventd-down');
    },
    // Nothing new: eventd publishes the job, and the hook's message waits in the outbox.
    expect: (ctx) => [server(VM, { operstate: 'STOPPED', job: job(ctx.jobs['job-cancelled-while-queued']!, 'OP_INSTANCE_STARTUP', 'canceled') })],
  },
  {
    name: 'add-nic-while-eventd-down',
    does: `gnt-instance modify --net add (bridged) ${VM} with eventd dead`,
    run: async (ctx) => {
      await record(ctx, 'add-nic-while-eventd-down', ctx.cluster.job('gnt-instance', 'modify', `--net=add:mode=bridged,link=${BRIDGE}`, VM));
      await refresh(ctx, VM);
      await notYetSeen(ctx, 'add-nic-while-eventd-down');
      if (ctx.cluster.outboxEntries().length === 0) throw new Error('the hook left nothing in the outbox while eventd was down');
    },
    expect: (ctx) => [server(VM, { operstate: 'STOPPED', nics: nicsOf({ ...ctx.instances[VM]!, nics: ctx.instances[VM]!.nics.slice(0, 2) }) })],
  },
  {
    name: 'eventd-restarted',
    does: 'start snf-ganeti-eventd again: it publishes both jobs and drains the outbox',
    run: async (ctx) => {
      await ctx.cluster.startEventd();
    },
    expect: (ctx) => [
      server(VM, { operstate: 'STARTED', job: job(ctx.jobs['add-nic-while-eventd-down']!, 'OP_INSTANCE_SET_PARAMS'), nics: nicsOf(ctx.instances[VM]!) }),
    ],
  },
  {
    name: 'broker-stopped',
    does: `stop RabbitMQ, gnt-instance modify --net 2:remove ${VM}, start RabbitMQ`,
    run: async (ctx) => {
      const c = ctx.cluster;
      await c.stopBroker();
      try {
        await record(ctx, 'broker-stopped', c.job('gnt-instance', 'modify', '--net=2:remove', VM));
        await refresh(ctx, VM);
        await notYetSeen(ctx, 'broker-stopped');
      } finally {
        await c.startBroker();
      }
    },
    expect: (ctx) => [server(VM, { operstate: 'STARTED', job: job(ctx.jobs['broker-stopped']!, 'OP_INSTANCE_SET_PARAMS'), nics: nicsOf(ctx.instances[VM]!) })],
  },
  {
    name: 'instance-remove',
    does: `gnt-instance remove ${VM} (and ${VM_FAILED} if Ganeti kept it)`,
    run: async (ctx) => {
      const c = ctx.cluster;
      const names = (await c.gnt('gnt-instance', 'list', '--no-headers', '-o', 'name')).split('\n').filter((n) => n !== '');
      for (const name of names) await record(ctx, `instance-remove ${name}`, c.job('gnt-instance', 'remove', '-f', name));
      ctx.instances = {};
    },
    expect: (ctx) => [
      server(VM, { operstate: 'DESTROYED', deleted: true, nics: [], job: job(ctx.jobs[`instance-remove ${VM}`]!, 'OP_INSTANCE_REMOVE') }),
      ctx.jobs[`instance-remove ${VM_FAILED}`]
        ? server(VM_FAILED, { operstate: 'DESTROYED', deleted: true, job: job(ctx.jobs[`instance-remove ${VM_FAILED}`]!, 'OP_INSTANCE_REMOVE') })
        : server(VM_FAILED, { operstate: 'ERROR' }),
      network(NET, { inUse: [] }),
    ],
  },
  {
    name: 'network-disconnect',
    does: `RAPI PUT /2/networks/${NET}/disconnect from node group default`,
    run: async (ctx) => {
      await record(ctx, 'network-disconnect', ctx.cluster.rapiJob('PUT', `/2/networks/${NET}/disconnect`, { group_name: 'default' }));
    },
    expect: (ctx) => [
      network(NET, { operstate: 'PENDING', backends: [{ operstate: 'PENDING', job: job(ctx.jobs['network-disconnect']!, 'OP_NETWORK_DISCONNECT') }] }),
    ],
  },
  {
    name: 'network-remove',
    does: `gnt-network remove ${NET}`,
    run: async (ctx) => {
      await record(ctx, 'network-remove', ctx.cluster.job('gnt-network', 'remove', NET));
    },
    expect: (ctx) => [
      network(NET, {
        operstate: 'DELETED',
        deleted: true,
        backends: [{ cluster: CLUSTER_NAME, operstate: 'DELETED', job: job(ctx.jobs['network-remove']!, 'OP_NETWORK_REMOVE') }],
      }),
      {
        what: 'every VM and network the dispatcher knows',
        select: (s) => ({ servers: s.servers.map((v) => v.name), networks: s.networks.map((n) => n.name) }),
        expected: { servers: [VM, VM_FAILED], networks: [NET] },
      },
    ],
  },
];

/** Runs the step called `name` (for a live view that goes step by step). */
export function runNamedStep(ctx: ScenarioContext, name: string, timeoutMs?: number): Promise<StepResult> {
  const step = SCENARIO.find((s) => s.name === name);
  if (!step) throw new Error(`no step ${JSON.stringify(name)}; steps: ${SCENARIO.map((s) => s.name).join(', ')}`);
  return runStep(ctx, step, timeoutMs);
}
