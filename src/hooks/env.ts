// Ganeti hook environment → `ganeti-net-status` message (spec §3), as pure functions.
//
// Ganeti runs hooks with only `GANETI_*`, `PATH` and `PWD` set. Instance hooks carry the instance's
// NICs as `GANETI_INSTANCE_NIC<i>_<FIELD>` and, in the post phase, the same variables computed after
// the op as `GANETI_POST_INSTANCE_…`. Nothing here reads the process environment, the clock or the
// disk: the caller passes them in, so the tests run the real fixture environments through it.

import { boundedMessageId, splitTime, type OutgoingMessage, type SplitTime } from '../common/message.js';
import { routingKeyForName } from '../common/topology.js';
import { Eui64Error, eui64, isMac } from './eui64.js';

export type HookEnv = Readonly<Record<string, string | undefined>>;

export const NET_STATUS_TYPE = 'ganeti-net-status';

/** Hooks paths whose post phase publishes the instance's NICs (Synnefo's hook did the same four). */
export const NET_STATUS_PATHS: readonly string[] = ['instance-add', 'instance-start', 'instance-reboot', 'instance-modify'];

/** A hook environment the hook cannot turn into a message; `variable` names the culprit. */
export class HookEnvError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'HookEnvError';
  }
}

export type HookAction = { action: 'net-status' } | { action: 'skip'; reason: string };

function required(env: HookEnv, name: string): string {
  const value = env[name];
  if (value === undefined) throw new HookEnvError(name, 'missing (is this run by Ganeti as a hook?)');
  if (value === '') throw new HookEnvError(name, 'empty');
  return value;
}

/**
 * What this hook invocation is for, from the hooks path and phase alone (no settings, no I/O), so the
 * no-op cases (every pre phase, `instance-stop`, any other path) end before anything else is done.
 */
export function hookAction(env: HookEnv): HookAction {
  const path = required(env, 'GANETI_HOOKS_PATH');
  const phase = required(env, 'GANETI_HOOKS_PHASE');
  if (phase !== 'post') return { action: 'skip', reason: `${path} ${phase}: only post phases publish` };
  if (!NET_STATUS_PATHS.includes(path)) return { action: 'skip', reason: `${path} post: nothing to publish` };
  return { action: 'net-status' };
}

/** The instance name as it is after the op (post phase), else before it. */
export function instanceName(env: HookEnv): string {
  const post = env['GANETI_POST_INSTANCE_NAME'];
  if (env['GANETI_HOOKS_PHASE'] === 'post' && post !== undefined && post !== '') return post;
  return required(env, 'GANETI_INSTANCE_NAME');
}

/** Host names compared as DNS names: case-insensitive, trailing dot ignored; a short name matches its FQDN. */
export function sameHost(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().toLowerCase().replace(/\.$/, '');
  const x = norm(a);
  const y = norm(b);
  if (x === '' || y === '') return false;
  if (x === y) return true;
  if (x.includes('.') && y.includes('.')) return false;
  return x.split('.')[0] === y.split('.')[0];
}

export interface TargetFilter {
  /** This node's name (its FQDN unless configured), compared with `GANETI_MASTER`. */
  nodeName: string;
  /** Instance names must start with `<namePrefix>-`; null accepts every instance. */
  namePrefix: string | null;
}

export type TargetCheck = { ok: true; instance: string } | { ok: false; reason: string };

/** Whether this node and this instance are ones the hook publishes for (master only, Synnefo names only). */
export function checkTarget(env: HookEnv, filter: TargetFilter): TargetCheck {
  const master = required(env, 'GANETI_MASTER');
  if (!sameHost(master, filter.nodeName)) {
    return { ok: false, reason: `this node (${filter.nodeName}) is not the master (${master})` };
  }
  const instance = instanceName(env);
  if (filter.namePrefix !== null && !instance.startsWith(`${filter.namePrefix}-`)) {
    return { ok: false, reason: `instance ${instance} does not start with ${filter.namePrefix}-` };
  }
  return { ok: true, instance };
}

export interface NetStatusNic {
  mac: string;
  ip?: string;
  network?: string;
  link?: string;
  mode?: string;
  name?: string;
  uuid?: string;
  ipv6?: string;
  firewall?: string;
}

export interface NetStatusBody {
  type: typeof NET_STATUS_TYPE;
  instance: string;
  nics: NetStatusNic[];
  event_time: SplitTime;
  /** New optional field (Synnefo's hook sent none): the Ganeti cluster, from `GANETI_CLUSTER`. */
  cluster?: string;
}

export interface NetStatus {
  message: OutgoingMessage;
  body: NetStatusBody;
  /** Things worth a line in Ganeti's hook log that do not stop the message (malformed firewall tags). */
  warnings: string[];
}

const NIC_VAR = /^NIC(0|[1-9][0-9]*)_([A-Z0-9_]+)$/;

/**
 * The namespace the NIC list and the tags are read from. In the post phase the state after the op
 * wins: when Ganeti gave a post-op NIC list, the whole list comes from `GANETI_POST_INSTANCE_` (never
 * mixed with pre-op variables, which could resurrect a removed NIC); the tags likewise.
 */
function namespaces(env: HookEnv): { nics: string; tags: string } {
  const post = env['GANETI_HOOKS_PHASE'] === 'post';
  const has = (k: string) => env[k] !== undefined;
  return {
    nics: post && has('GANETI_POST_INSTANCE_NIC_COUNT') ? 'GANETI_POST_INSTANCE_' : 'GANETI_INSTANCE_',
    tags: post && has('GANETI_POST_INSTANCE_TAGS') ? 'GANETI_POST_INSTANCE_TAGS' : 'GANETI_INSTANCE_TAGS',
  };
}

/** The NICs of the instance in index order, validated; throws HookEnvError on any inconsistency. */
export function parseNics(env: HookEnv): NetStatusNic[] {
  const ns = namespaces(env).nics;
  const countVar = `${ns}NIC_COUNT`;
  const countText = required(env, countVar);
  if (!/^(0|[1-9][0-9]{0,3})$/.test(countText)) throw new HookEnvError(countVar, `${JSON.stringify(countText)} is not a NIC count`);
  const count = Number(countText);

  const fields: Map<string, string>[] = Array.from({ length: count }, () => new Map());
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || !key.startsWith(ns)) continue;
    const m = NIC_VAR.exec(key.slice(ns.length));
    if (!m) continue;
    const index = Number(m[1]);
    if (index >= count) throw new HookEnvError(key, `NIC index ${index}, but ${countVar}=${count}`);
    fields[index]?.set(m[2] ?? '', value);
  }

  return fields.map((f, index) => {
    const v = (name: string) => `${ns}NIC${index}_${name}`;
    if (f.size === 0) throw new HookEnvError(`${ns}NIC${index}_*`, `no variables for NIC ${index} of ${count} (${countVar}=${count})`);
    const get = (name: string): string | undefined => {
      const x = f.get(name);
      return x === undefined || x === '' ? undefined : x;
    };
    const mac = get('MAC');
    if (mac === undefined) throw new HookEnvError(v('MAC'), f.has('MAC') ? 'empty' : 'missing');
    if (!isMac(mac)) throw new HookEnvError(v('MAC'), `${JSON.stringify(mac)} is not a MAC address`);

    const nic: NetStatusNic = { mac };
    const ip = get('IP');
    if (ip !== undefined) nic.ip = ip;
    // NETWORK_NAME since Ganeti 2.7; NETWORK before.
    const network = get('NETWORK_NAME') ?? get('NETWORK');
    if (network !== undefined) nic.network = network;
    const link = get('LINK') ?? get('BRIDGE');
    if (link !== undefined) nic.link = link;
    const mode = get('MODE');
    if (mode !== undefined) nic.mode = mode;
    const name = get('NAME');
    if (name !== undefined) nic.name = name;
    const uuid = get('UUID');
    if (uuid !== undefined) nic.uuid = uuid;
    const subnet6 = get('NETWORK_SUBNET6');
    if (subnet6 !== undefined) {
      try {
        nic.ipv6 = eui64(mac, subnet6);
      } catch (err) {
        if (err instanceof Eui64Error) throw new HookEnvError(v('NETWORK_SUBNET6'), err.message);
        throw err;
      }
    }
    return nic;
  });
}

const FIREWALL_TAG = 'synnefo:network:';

/**
 * Applies the instance tags `synnefo:network:<NIC index or NIC name>:<profile>` to the NICs (a number
 * is an index, as Ganeti itself reads NIC identifiers; anything else is a NIC name). Malformed or
 * dangling tags are reported as warnings, never fatal: Synnefo only logged them too.
 */
export function applyFirewallTags(nics: NetStatusNic[], tagsText: string | undefined, tagsVar: string): string[] {
  const warnings: string[] = [];
  if (!tagsText) return warnings;
  // Ganeti joins a set with spaces, so the order carries no meaning; sorting makes conflicts deterministic.
  const tags = tagsText.split(/\s+/).filter((t) => t.startsWith(FIREWALL_TAG)).sort();
  const setBy = new Map<NetStatusNic, string>();
  for (const tag of tags) {
    const parts = tag.split(':');
    const ref = parts[2] ?? '';
    const profile = parts[3] ?? '';
    if (parts.length !== 4 || ref === '' || profile === '') {
      warnings.push(`${tagsVar}: malformed firewall tag ${JSON.stringify(tag)} (expected synnefo:network:<nic>:<profile>)`);
      continue;
    }
    const nic = /^[0-9]+$/.test(ref) ? nics[Number(ref)] : nics.find((n) => n.name === ref);
    if (!nic) {
      warnings.push(`${tagsVar}: firewall tag ${JSON.stringify(tag)} names no NIC of this instance`);
      continue;
    }
    const earlier = setBy.get(nic);
    if (earlier !== undefined) {
      warnings.push(`${tagsVar}: firewall tag ${JSON.stringify(tag)} conflicts with ${JSON.stringify(earlier)}, which is kept`);
      continue;
    }
    nic.firewall = profile;
    setBy.set(nic, tag);
  }
  return warnings;
}

function eventTimeText([s, us]: SplitTime): string {
  return `${s}.${String(us).padStart(6, '0')}`;
}

/**
 * The `ganeti-net-status` message for a post-phase instance hook. `nowMs` is the hook's clock
 * (`event_time`); everything else comes from `env`. Throws HookEnvError, so nothing half-built is sent.
 */
export function buildNetStatus(env: HookEnv, nowMs: number): NetStatus {
  const instance = instanceName(env);
  const hooksPath = required(env, 'GANETI_HOOKS_PATH');
  const nics = parseNics(env);
  const tagsVar = namespaces(env).tags;
  const warnings = applyFirewallTags(nics, env[tagsVar], tagsVar);
  const eventTime = splitTime(nowMs);
  const body: NetStatusBody = { type: NET_STATUS_TYPE, instance, nics, event_time: eventTime };
  const cluster = env['GANETI_CLUSTER'];
  if (cluster) body.cluster = cluster;
  // Hook environments carry no job id, so the hooks path and the hook's clock identify the run.
  const message: OutgoingMessage = {
    messageId: boundedMessageId(`net:${instance}:${hooksPath}:${eventTimeText(eventTime)}`),
    routingKey: routingKeyForName('net', instance),
    type: NET_STATUS_TYPE,
    timestampMs: nowMs,
    body: body as unknown as Record<string, unknown>,
  };
  return { message, body, warnings };
}
