// What the demo shows, pure: a state in, lines out. renderFrame() is the live view a terminal redraws
// in place; changeLines() is the same state as plain lines, one per change, for a pipe or a log; and
// renderSummary() is the closing report. No escape codes here: terminal.ts adds them.

import type { NetworkView, ServerView } from '../../src/dispatcher/views.js';
import type { Totals } from './totals.js';

export type VmView = Pick<ServerView, 'name' | 'operstate' | 'deleted' | 'buildpercentage' | 'job' | 'nics'>;
export type NetView = Pick<NetworkView, 'name' | 'operstate' | 'deleted' | 'subnet'> & {
  backends: { cluster: string | null; operstate: string; job: { id: number | null; opcode: string | null; status: string | null } }[];
};

export interface ViewState {
  /** What produces the work, e.g. "replay of a real Ganeti 3.0 run at 8x". */
  source: string;
  elapsedMs: number;
  /** The source's steps carried out so far, and the last one. */
  steps: { done: number; total: number; last: string };
  vms: VmView[];
  networks: NetView[];
  /** Undefined when the source's programs have no metrics endpoint to count from. */
  totals: Totals | undefined;
}

export const MIN_WIDTH = 80;

const cell = (v: string | number | null | undefined, width: number, align: 'left' | 'right' = 'left'): string => {
  const s = v === null || v === undefined || v === '' ? '-' : String(v);
  const cut = s.length > width ? s.slice(0, width) : s;
  return align === 'left' ? cut.padEnd(width) : cut.padStart(width);
};

/** `[#####.....]` for a percentage, `inner` characters inside the brackets. */
export function bar(percent: number, inner: number): string {
  const p = Math.max(0, Math.min(100, percent));
  const full = Math.round((p / 100) * inner);
  return `[${'#'.repeat(full)}${'.'.repeat(inner - full)}]`;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

const fit = (line: string, width: number): string => (line.length > width ? line.slice(0, width) : line).replace(/\s+$/, '');

/** `line` + `extra` when that fits in `width`, else `line` alone: an optional column is whole or absent. */
const withOptional = (line: string, extra: string, width: number): string => (line.length + extra.length <= width ? line + extra : line);

export function totalsLine(t: Totals | undefined): string {
  if (!t) return 'no totals: eventd and the dispatcher run without a metrics endpoint';
  const retried = t.retried > 0 ? `  retried ${t.retried}` : '';
  return `published ${t.published}  confirmed ${t.confirmed}  applied ${t.applied}  unchanged ${t.ignored}  dead-lettered ${t.deadLettered}${retried}`;
}

const jobCells = (job: { id: number | null; opcode: string | null; status: string | null }): string =>
  `${cell(job.id, 3, 'right')} ${cell(job.opcode, 23)} ${cell(job.status, 8)}`;

function nicLine(n: VmView['nics'][number], width: number): string {
  const line = `    nic${n.index}  ${cell(n.mac, 17)}  ${cell(n.ipv4 ?? n.ipv6, 15)}  ${cell(n.network, 12)}`;
  return n.ipv4 && n.ipv6 ? withOptional(line, `  ${n.ipv6}`, width) : line;
}

/** The live view: a header, the VMs with their NICs, the networks, the totals; each line at most `width`. */
export function renderFrame(state: ViewState, width = MIN_WIDTH): string[] {
  const w = Math.max(MIN_WIDTH, width);
  const lines: string[] = [];
  const title = `snf-cyclades-gtools demo: ${state.source}`;
  const clock = seconds(state.elapsedMs);
  lines.push(title.length + clock.length + 1 > w ? title : title + clock.padStart(w - title.length));
  const { done, total, last } = state.steps;
  const pct = total === 0 ? 0 : (done / total) * 100;
  lines.push(`${bar(pct, 20)} ${String(done).padStart(String(total).length)}/${total}  ${last}`);
  lines.push('');
  lines.push(`${cell('VM', 10)} ${cell('STATE', 10)} ${cell('JOB', 3, 'right')} ${cell('OPERATION', 23)} ${cell('STATUS', 8)} BUILD`);
  if (state.vms.length === 0) lines.push('(none yet)');
  for (const vm of state.vms) {
    const build = `${bar(vm.buildpercentage, 10)} ${String(vm.buildpercentage).padStart(3)}%`;
    const line = `${cell(vm.name, 10)} ${cell(vm.operstate, 10)} ${jobCells(vm.job)} ${build}`;
    lines.push(vm.job.logmsg ? withOptional(line, `  ${vm.job.logmsg.replace(/\s+/g, ' ').trim()}`, w) : line);
    for (const n of vm.nics) lines.push(nicLine(n, w));
  }
  lines.push('');
  lines.push(`${cell('NETWORK', 10)} ${cell('STATE', 10)} ${cell('JOB', 3, 'right')} ${cell('OPERATION', 23)} ${cell('STATUS', 8)} SUBNET`);
  if (state.networks.length === 0) lines.push('(none yet)');
  for (const n of state.networks) {
    // The job fields live on the network's row per cluster; the newest job of any cluster is shown.
    const newest = [...n.backends].sort((a, b) => (b.job.id ?? -1) - (a.job.id ?? -1))[0];
    const job = newest?.job ?? { id: null, opcode: null, status: null };
    lines.push(`${cell(n.name, 10)} ${cell(n.operstate, 10)} ${jobCells(job)} ${n.subnet ?? '-'}`);
    for (const b of n.backends) lines.push(`    on ${b.cluster ?? '?'}: ${b.operstate}`);
  }
  lines.push('');
  lines.push(totalsLine(state.totals));
  return lines.map((l) => fit(l, w));
}

const nicsText = (nics: VmView['nics']): string =>
  nics.length === 0 ? 'none' : nics.map((n) => `nic${n.index} ${n.mac} ${n.ipv4 ?? n.ipv6 ?? '-'} ${n.network ?? '-'}`).join(', ');

const jobText = (job: { id: number | null; opcode: string | null; status: string | null }): string =>
  job.id === null ? 'no job' : `job ${job.id} ${job.opcode ?? '?'} ${job.status ?? '?'}`;

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What changed from `prev` to `next`, one line each (prefixed with the elapsed time), in a stable order. */
export function changeLines(prev: ViewState | undefined, next: ViewState): string[] {
  const out: string[] = [];
  const at = seconds(next.elapsedMs).padStart(8);
  const say = (text: string) => out.push(`${at}  ${text}`);
  const before = new Map((prev?.vms ?? []).map((v) => [v.name, v]));
  for (const vm of next.vms) {
    const old = before.get(vm.name);
    if (!old) say(`vm ${vm.name}: new, ${vm.operstate}, ${jobText(vm.job)}`);
    else {
      if (old.operstate !== vm.operstate) say(`vm ${vm.name}: ${old.operstate} -> ${vm.operstate}`);
      if (!same(old.job, vm.job)) say(`vm ${vm.name}: ${jobText(vm.job)}${vm.job.logmsg ? `: ${vm.job.logmsg.replace(/\s+/g, ' ').trim()}` : ''}`);
    }
    if ((old?.buildpercentage ?? 0) !== vm.buildpercentage) say(`vm ${vm.name}: build ${vm.buildpercentage}%`);
    if (old ? !same(old.nics, vm.nics) : vm.nics.length > 0) say(`vm ${vm.name}: nics ${nicsText(vm.nics)}`);
  }
  const netsBefore = new Map((prev?.networks ?? []).map((n) => [n.name, n]));
  for (const n of next.networks) {
    const old = netsBefore.get(n.name);
    if (!old) say(`network ${n.name}: new, ${n.operstate}${n.subnet ? `, ${n.subnet}` : ''}`);
    else if (old.operstate !== n.operstate) say(`network ${n.name}: ${old.operstate} -> ${n.operstate}`);
    const oldBackends = new Map((old?.backends ?? []).map((b) => [b.cluster, b]));
    for (const b of n.backends) {
      const ob = oldBackends.get(b.cluster);
      if (!ob || ob.operstate !== b.operstate || !same(ob.job, b.job)) say(`network ${n.name} on ${b.cluster ?? '?'}: ${b.operstate}, ${jobText(b.job)}`);
    }
  }
  if (!prev || !same(prev.totals, next.totals)) say(totalsLine(next.totals));
  return out;
}

export interface SummaryInput {
  state: ViewState;
  /** Whether every confirmed message was consumed before the end (undefined: no totals to tell). */
  settled: boolean | undefined;
  /** What went wrong along the way (a hook that failed, a step the database did not agree with). */
  problems: string[];
  /** Set when the run was cut short (Ctrl-C, a failure), with why. */
  interrupted?: string;
  /** Where the state lives: lines such as `database: var/demo/dispatcher.sqlite`. */
  where: string[];
}

function settledLines(t: Totals | undefined, settled: boolean | undefined): string[] {
  if (!t || settled === undefined) return [];
  if (settled) return ['          every confirmed message was consumed by the dispatcher'];
  const unconsumed = t.confirmed - t.applied - t.ignored - t.deadLettered;
  return [`          NOT settled: ${unconsumed} confirmed messages not consumed, ${t.published - t.confirmed} published messages not confirmed`];
}

/** The closing report: where every VM and network ended, the totals, the time, where to look next. */
export function renderSummary(s: SummaryInput): string[] {
  const { state } = s;
  const vmState = (v: VmView) => `${v.name} ${v.operstate}${v.deleted && v.operstate !== 'DESTROYED' ? ' (deleted)' : ''}`;
  const netState = (n: NetView) => `${n.name} ${n.operstate}${n.deleted && n.operstate !== 'DELETED' ? ' (deleted)' : ''}`;
  const lines = [
    s.interrupted
      ? `demo stopped after ${seconds(state.elapsedMs)} (${s.interrupted}): ${state.steps.done} of ${state.steps.total} steps of the ${state.source}`
      : `demo finished in ${seconds(state.elapsedMs)}: ${state.steps.done} of ${state.steps.total} steps of the ${state.source}`,
    `VMs:      ${state.vms.length === 0 ? 'none' : state.vms.map(vmState).join(', ')}`,
    `networks: ${state.networks.length === 0 ? 'none' : state.networks.map(netState).join(', ')}`,
    `totals:   ${totalsLine(state.totals)}`,
    ...settledLines(state.totals, s.settled),
    ...s.problems.map((p, i) => `${i === 0 ? 'problems:' : '         '} ${p}`),
    ...s.where.map((w, i) => `${i === 0 ? 'state:   ' : '         '} ${w}`),
  ];
  return lines;
}
