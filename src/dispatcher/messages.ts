// Decoding of the bodies the dispatcher consumes (spec §2.3 eventd, §3 the hook, §1.5 C the progress
// monitor). Pure: bytes in, a typed message or the reason it is unusable out. A reason names the field
// and what was wrong with it, because it is all an operator sees of a message in the `-dl` queue.

export const JOB_STATUSES = ['queued', 'waiting', 'canceling', 'running', 'canceled', 'success', 'error'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const FINALIZED: ReadonlySet<JobStatus> = new Set(['canceled', 'success', 'error']);

/** Microseconds since the epoch (UTC): `event_time` `[s, us]` as one integer, compared exactly (spec §6.8). */
export type Micros = number;

export interface JobReport {
  operation: string;
  status: JobStatus;
  eventTime: Micros;
  jobId: number;
  logmsg: string | null;
}

/** One NIC as Ganeti reports it (the hook's `nics`, eventd's `instance_nics`). */
export interface NicReport {
  index: number;
  mac: string;
  ipv4: string | null;
  ipv6: string | null;
  /** The Ganeti network name (`snf-net-3`); off the master eventd may send a UUID here (spec §2.4). */
  network: string | null;
  link: string | null;
  mode: string | null;
  name: string | null;
  uuid: string | null;
  /** The value of the `synnefo:network:<nic>:<value>` tag, not yet mapped to a profile. */
  firewall: string | null;
}

export interface OpStatusMessage extends JobReport {
  type: 'ganeti-op-status';
  instance: string;
  cluster: string | null;
  tags: string[];
  /** `job_fields.dry_run` of tag ops: a dry run changed nothing in Ganeti. */
  dryRun: boolean;
  /** eventd's `instance_nics` (finalized CREATE/STARTUP/SET_PARAMS…), when present. */
  nics: NicReport[] | null;
}

export interface NetStatusMessage {
  type: 'ganeti-net-status';
  instance: string;
  eventTime: Micros;
  cluster: string | null;
  nics: NicReport[];
}

export interface NetworkStatusMessage extends JobReport {
  type: 'ganeti-network-status';
  network: string;
  cluster: string;
  subnet: string | null;
  gateway: string | null;
  addReservedIps: string[];
  removeReservedIps: string[];
}

export interface CopyProgressMessage {
  type: 'image-copy-progress';
  instance: string;
  eventTime: Micros;
  /** Percent as snf-image sent it (a float that may exceed 100, spec §1.4). */
  progress: number;
}

export const DIAGNOSTIC_TYPES = ['image-info', 'image-warning', 'image-error', 'image-helper'] as const;
export const HELPER_SUBTYPES = ['task-start', 'task-end', 'warning', 'error', 'info'] as const;

export interface DiagnosticMessage {
  type: (typeof DIAGNOSTIC_TYPES)[number];
  instance: string;
  eventTime: Micros;
  subtype: (typeof HELPER_SUBTYPES)[number] | null;
  task: string | null;
  messages: string[];
  stderr: string | null;
}

export interface ClusterStatusMessage extends JobReport {
  type: 'ganeti-cluster-status';
  cluster: string;
}

/**
 * Two producers: eventd's periodic heartbeat (`node`, `role`, `outbox`) and the Synnefo-style answer
 * to a dry-run heartbeat tag, which carries the job fields instead. Only a master answers a tag job.
 */
export interface HeartbeatMessage {
  type: 'eventd-heartbeat';
  cluster: string;
  eventTime: Micros;
  node: string | null;
  role: 'master' | 'candidate';
  outbox: number | null;
}

export type DispatcherMessage =
  | OpStatusMessage
  | NetStatusMessage
  | NetworkStatusMessage
  | CopyProgressMessage
  | DiagnosticMessage
  | ClusterStatusMessage
  | HeartbeatMessage;

export type Decoded = { ok: true; message: DispatcherMessage } | { ok: false; reason: string };

class Invalid extends Error {}

type Body = Record<string, unknown>;

const show = (v: unknown): string => {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    // JSON.parse takes any depth, JSON.stringify overflows the stack on a very deep value.
    return Array.isArray(v) ? 'a deeply nested array' : 'a deeply nested object';
  }
  return text === undefined ? String(v) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

function fail(field: string, what: string, value: unknown): never {
  throw new Invalid(`field "${field}": ${what}, got ${value === undefined ? 'nothing' : show(value)}`);
}

function str(body: Body, field: string, path = field): string {
  const v = body[field];
  if (typeof v !== 'string' || v === '') fail(path, 'expected a non-empty string', v);
  return v;
}

/** An optional text: absent, null and "" all mean "not given" (the hook's empty `IP=`, eventd's nulls). */
function optStr(body: Body, field: string, path = field): string | null {
  const v = body[field];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') fail(path, 'expected a string or null', v);
  return v;
}

function strList(body: Body, field: string, path = field): string[] {
  const v = body[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) fail(path, 'expected a list of strings', v);
  return v as string[];
}

function obj(body: Body, field: string): Body {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(field, 'expected an object', v);
  return v as Body;
}

function eventTime(body: Body): Micros {
  const v = body['event_time'];
  if (!Array.isArray(v) || v.length !== 2) fail('event_time', 'expected [seconds, microseconds]', v);
  const [s, us] = v as unknown[];
  if (!Number.isSafeInteger(s) || (s as number) < 0) fail('event_time', 'seconds must be a non-negative integer', v);
  if (!Number.isInteger(us) || (us as number) < 0 || (us as number) > 999_999) {
    fail('event_time', 'microseconds must be an integer in 0..999999', v);
  }
  const micros = (s as number) * 1_000_000 + (us as number);
  // Beyond 2^53 (the year 2255) microseconds are rounded, and event times must compare exactly.
  if (!Number.isSafeInteger(micros)) fail('event_time', 'must be at most 2^53 - 1 microseconds', v);
  return micros;
}

/**
 * The op's last log message: the text of a Feedback line, or, for the other entry types Ganeti logs
 * (`remote-import` carries an object, the test types any value), the JSON text of the value, as
 * Synnefo stored its `str()`. Refusing it would dead-letter the op's status.
 */
function logMessage(body: Body): string | null {
  const v = body['logmsg'];
  if (v === undefined || v === null || typeof v === 'string') return optStr(body, 'logmsg');
  try {
    return JSON.stringify(v);
  } catch {
    return fail('logmsg', 'expected a string or a JSON value of sane depth', v);
  }
}

function jobReport(body: Body): JobReport {
  const status = body['status'];
  if (!(JOB_STATUSES as readonly unknown[]).includes(status)) fail('status', `expected one of ${JOB_STATUSES.join(', ')}`, status);
  const rawJob = body['jobId'];
  // Ganeti job ids are ints, but job files may hold them as numeric strings (spec §2.1).
  const jobId = typeof rawJob === 'string' && /^\d{1,15}$/.test(rawJob) ? Number(rawJob) : rawJob;
  if (!Number.isSafeInteger(jobId) || (jobId as number) < 0) fail('jobId', 'expected a non-negative integer', rawJob);
  return {
    operation: str(body, 'operation'),
    status: status as JobStatus,
    eventTime: eventTime(body),
    jobId: jobId as number,
    logmsg: logMessage(body),
  };
}

function nicList(body: Body, field: string): NicReport[] {
  const v = body[field];
  if (!Array.isArray(v)) fail(field, 'expected a list of NICs', v);
  const seen = new Set<number>();
  return v.map((raw: unknown, position: number) => {
    const path = `${field}[${position}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, 'expected an object', raw);
    const nic = raw as Body;
    // The hook lists NICs in index order without an index; eventd's config fallback adds one (§2.4).
    const index = nic['index'] ?? position;
    if (!Number.isSafeInteger(index) || (index as number) < 0) fail(`${path}.index`, 'expected a non-negative integer', nic['index']);
    if (seen.has(index as number)) fail(`${path}.index`, 'duplicate NIC index', index);
    seen.add(index as number);
    return {
      index: index as number,
      mac: str(nic, 'mac', `${path}.mac`),
      ipv4: optStr(nic, 'ip', `${path}.ip`),
      ipv6: optStr(nic, 'ipv6', `${path}.ipv6`),
      network: optStr(nic, 'network', `${path}.network`),
      link: optStr(nic, 'link', `${path}.link`),
      mode: optStr(nic, 'mode', `${path}.mode`),
      name: optStr(nic, 'name', `${path}.name`),
      uuid: optStr(nic, 'uuid', `${path}.uuid`),
      firewall: optStr(nic, 'firewall', `${path}.firewall`),
    };
  });
}

function decodeBody(body: Body): DispatcherMessage {
  const type = body['type'];
  switch (type) {
    case 'ganeti-op-status': {
      const jobFields = obj(body, 'job_fields');
      const dryRun = jobFields['dry_run'];
      if (dryRun !== undefined && dryRun !== null && typeof dryRun !== 'boolean') fail('job_fields.dry_run', 'expected a boolean', dryRun);
      return {
        type,
        instance: str(body, 'instance'),
        cluster: optStr(body, 'cluster'),
        ...jobReport(body),
        tags: strList(body, 'tags'),
        dryRun: dryRun === true,
        nics: body['instance_nics'] === undefined || body['instance_nics'] === null ? null : nicList(body, 'instance_nics'),
      };
    }
    case 'ganeti-net-status':
      return { type, instance: str(body, 'instance'), eventTime: eventTime(body), cluster: optStr(body, 'cluster'), nics: nicList(body, 'nics') };
    case 'ganeti-network-status': {
      const jobFields = obj(body, 'job_fields');
      return {
        type,
        network: str(body, 'network'),
        cluster: str(body, 'cluster'),
        ...jobReport(body),
        subnet: optStr(jobFields, 'subnet', 'job_fields.subnet'),
        gateway: optStr(jobFields, 'gateway', 'job_fields.gateway'),
        addReservedIps: strList(jobFields, 'add_reserved_ips', 'job_fields.add_reserved_ips'),
        removeReservedIps: strList(jobFields, 'remove_reserved_ips', 'job_fields.remove_reserved_ips'),
      };
    }
    case 'ganeti-cluster-status':
      return { type, cluster: str(body, 'cluster'), ...jobReport(body) };
    case 'eventd-heartbeat': {
      const role = body['role'] ?? 'master';
      if (role !== 'master' && role !== 'candidate') fail('role', 'expected "master" or "candidate"', role);
      const outbox = body['outbox'] ?? null;
      if (outbox !== null && (!Number.isSafeInteger(outbox) || (outbox as number) < 0)) fail('outbox', 'expected a non-negative integer', outbox);
      return { type, cluster: str(body, 'cluster'), eventTime: eventTime(body), node: optStr(body, 'node'), role, outbox: outbox as number | null };
    }
    case 'image-copy-progress': {
      const progress = body['progress'];
      // Synnefo discarded these through a ValueError (int('a'), -1); they are dead-lettered here.
      if (typeof progress !== 'number' || !Number.isFinite(progress)) fail('progress', 'expected a number', progress);
      if (progress < 0) fail('progress', 'must not be negative', progress);
      return { type, instance: str(body, 'instance'), eventTime: eventTime(body), progress };
    }
    case 'image-info':
    case 'image-warning':
    case 'image-error':
    case 'image-helper': {
      let subtype: DiagnosticMessage['subtype'] = null;
      if (type === 'image-helper') {
        const s = body['subtype'];
        if (!(HELPER_SUBTYPES as readonly unknown[]).includes(s)) fail('subtype', `expected one of ${HELPER_SUBTYPES.join(', ')}`, s);
        subtype = s as DiagnosticMessage['subtype'];
      }
      const task = subtype === 'task-start' || subtype === 'task-end' ? str(body, 'task') : null;
      return {
        type,
        instance: str(body, 'instance'),
        eventTime: eventTime(body),
        subtype,
        task,
        messages: strList(body, 'messages'),
        stderr: optStr(body, 'stderr'),
      };
    }
    default:
      return fail('type', 'unknown message type', type);
  }
}

/** Refuses invalid UTF-8 instead of decoding it to replacement characters that would reach the database. */
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses and validates one AMQP body. */
export function decodeMessage(content: Buffer | string): Decoded {
  let text: string;
  try {
    text = typeof content === 'string' ? content : strictUtf8.decode(content);
  } catch {
    return { ok: false, reason: 'body is not valid UTF-8 (binary data?)' };
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `body is not JSON: ${(err as Error).message}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, reason: `body is not a JSON object: ${show(body)}` };
  }
  try {
    return { ok: true, message: decodeBody(body as Body) };
  } catch (err) {
    if (err instanceof Invalid) return { ok: false, reason: err.message };
    throw err;
  }
}
