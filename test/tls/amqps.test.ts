// amqps:// end to end, with real processes: a private RabbitMQ node with a TLS listener that requires a
// client certificate, a certificate authority made here with openssl, snf-ganeti-eventd publishing a
// job's transitions over TLS and snf-dispatcher (also over TLS) applying them. A wrong authority and
// a missing client certificate are refused, logged clearly and retried. The progress monitor and the
// dispatcher's operator commands connect over TLS too. No output of any process holds the broker
// password, the key passphrase or any private key.

import t, { type Test } from 'tap';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openDatabase } from '../../src/dispatcher/db.js';
import { servers } from '../../src/dispatcher/views.js';
import { fixtureBytes, fixtureVersions, makeDirs, renameJobVersion, startEventd, type RunningEventd } from '../helpers/eventd.js';
import { freePort, startPrivateRabbit, type PrivateRabbit } from '../helpers/rabbit.js';
import { isolatedEnv, runCli, spawnDaemon, type Daemon } from '../fixtures/dispatcher/spawn.js';
import { buildPrograms } from '../hooks/build.js';
import { makePki, tlsListenerConfig, type Pki } from './pki.js';

const run = promisify(execFile);

const PASSWORD = `pw-${randomBytes(9).toString('hex')}`;
const USER = 'gtools';

const pki: Pki = await makePki();
t.teardown(() => pki.remove());
const tlsPort = await freePort();
const rabbit: PrivateRabbit = await startPrivateRabbit({ extraConfig: tlsListenerConfig(pki, tlsPort) });
t.teardown(() => rabbit.destroy());
await run('rabbitmqctl', ['-n', rabbit.nodeName, 'add_user', USER, PASSWORD], { timeout: 60_000 });
await run('rabbitmqctl', ['-n', rabbit.nodeName, 'set_permissions', '-p', '/', USER, '.*', '.*', '.*'], { timeout: 60_000 });

/** The TLS listener by host name, so that the certificate's name is checked as in production. */
const AMQPS_URL = `amqps://${USER}:${PASSWORD}@localhost:${tlsPort}/`;
const tlsFlags = (ca: string, client = true): string[] => [
  '--amqp-ca-file',
  ca,
  ...(client ? ['--amqp-cert-file', pki.clientCert, '--amqp-key-file', pki.clientKey] : []),
];

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'snf-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every line a process wrote, stdout and stderr, as one text. */
const eventdOutput = (e: RunningEventd): string => e.lines.map((l) => JSON.stringify(l)).join('\n') + e.stderr.join('');
const dispatcherOutput = (d: Daemon): string => d.lines.map((l) => JSON.stringify(l)).join('\n');

/** No password, passphrase or private key (nor a base64 line of one) in a process's output. */
function assertNoSecrets(t: Test, name: string, output: string): void {
  t.ok(output.length > 0, `${name}: wrote something`);
  t.notOk(output.includes(PASSWORD), `${name}: the broker password is not in its output`);
  t.notOk(output.includes(pki.passphrase), `${name}: the key passphrase is not in its output`);
  t.notMatch(output, /PRIVATE KEY/, `${name}: no PEM private key in its output`);
  const keyLines = pki.keyPems().flatMap((pem) => pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----')));
  t.notOk(keyLines.some((l) => output.includes(l)), `${name}: no line of any private key in its output`);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function waitForLine(lines: Record<string, unknown>[], pred: (l: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000) {
  return waitFor(what, async () => lines.find(pred), timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`);
  });
}

t.test('eventd publishes a job over amqps, the dispatcher applies it over amqps', async (t) => {
  const dir = scratch(t);
  const dirs = makeDirs(join(dir, 'eventd'));
  // eventd takes its TLS settings as flags, the dispatcher from its settings file (mode 0600).
  const eventd = startEventd(dirs, AMQPS_URL, tlsFlags(pki.caCert));
  t.teardown(() => eventd.stop('SIGKILL'));
  const settingsFile = join(dir, 'dispatcher.env');
  writeFileSync(
    settingsFile,
    [
      `SNF_GTOOLS_AMQP_URL=${AMQPS_URL}`,
      `SNF_GTOOLS_AMQP_CA_FILE=${pki.caCert}`,
      `SNF_GTOOLS_AMQP_CERT_FILE=${pki.clientCert}`,
      // The encrypted copy of the key, with its passphrase file: the passphrase path works too.
      `SNF_GTOOLS_AMQP_KEY_FILE=${pki.clientKeyEncrypted}`,
      `SNF_GTOOLS_AMQP_KEY_PASSPHRASE_FILE=${pki.passphraseFile}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const dbPath = join(dir, 'dispatcher.sqlite');
  const dispatcher = spawnDaemon(t, ['--db-url', dbPath, '--log-level', 'debug'], isolatedEnv(t, { SNF_GTOOLS_SETTINGS_FILE: settingsFile }));

  await eventd.waitForLog((l) => l.msg === 'connected to AMQP broker', 60_000);
  await waitForLine(dispatcher.lines, (l) => l.msg === 'consuming', 'the dispatcher consuming');
  t.match(
    eventd.lines.find((l) => l.msg === 'connected to AMQP broker'),
    { url: `amqps://${USER}:***@localhost:${tlsPort}/` },
    'eventd is connected over amqps, its password redacted',
  );

  // Job 4 of the recording creates snf-1: its versions, renamed into the queue as Ganeti does.
  for (const v of fixtureVersions().filter((v) => v.job === 4)) renameJobVersion(dirs.queueDir, v.job, fixtureBytes(v.file));
  const db = openDatabase(dbPath);
  t.teardown(() => db.knex.destroy());
  const vm = await waitFor('snf-1 created by job 4 in the database', async () => {
    const rows = await servers(db).catch(() => []);
    return rows.find((r) => r.name === 'snf-1' && r.job.id === 4 && r.job.status === 'success');
  });
  t.match(vm, { name: 'snf-1', job: { id: 4, opcode: 'OP_INSTANCE_CREATE', status: 'success' } }, 'the dispatcher applied the job eventd published');

  // The operator commands connect with the same settings.
  const queues = await runCli(['queues', '--json'], isolatedEnv(t, { SNF_GTOOLS_SETTINGS_FILE: settingsFile }));
  t.equal(queues.code, 0, `snf-dispatcher queues over amqps: ${queues.stderr}`);
  const rows = JSON.parse(queues.stdout || '[]') as { queue: string; consumers: number }[];
  t.match(rows.find((q) => q.queue === 'snf-events-op'), { consumers: 1 }, 'it lists the queues, the daemon consuming');
  assertNoSecrets(t, 'snf-dispatcher queues', queues.stdout + queues.stderr);

  await eventd.stop();
  dispatcher.child.kill('SIGTERM');
  await dispatcher.exited;
  assertNoSecrets(t, 'eventd', eventdOutput(eventd));
  assertNoSecrets(t, 'dispatcher', dispatcherOutput(dispatcher));
});

t.test('the progress monitor publishes over amqps, and outboxes what a wrong authority stops', async (t) => {
  const { monitor } = buildPrograms();
  for (const [ca, published] of [[pki.caCert, true], [pki.otherCaCert, false]] as const) {
    const outbox = join(scratch(t), 'outbox');
    const env = {
      PATH: '/usr/bin:/bin',
      SNF_GTOOLS_SETTINGS_FILE: '/dev/null',
      SNF_GTOOLS_OUTBOX_DIR: outbox,
      SNF_GTOOLS_AMQP_URL: AMQPS_URL,
      SNF_GTOOLS_AMQP_CA_FILE: ca,
      SNF_GTOOLS_AMQP_CERT_FILE: pki.clientCert,
      SNF_GTOOLS_AMQP_KEY_FILE: pki.clientKey,
    };
    const child = spawn(monitor, ['snf-1'], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end('{"type":"image-info","messages":["Starting image copy..."]}\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    t.equal(code, 0, 'the monitor finishes normally');
    const summary = stderr.split('\n').filter((l) => l.includes('"msg":"finished')).map((l) => JSON.parse(l) as Record<string, unknown>)[0];
    if (published) {
      t.match(summary, { objects: 1, confirmed: 1, outboxed: 0 }, 'right authority: confirmed by the broker over amqps');
    } else {
      t.match(summary, { objects: 1, confirmed: 0, outboxed: 1 }, 'wrong authority: the message waits in the outbox');
      t.match(stderr, /"err":"TLS: certificate verify failed \(self-signed certificate in certificate chain\)/, 'and the log says why');
    }
    assertNoSecrets(t, `snf-progress-monitor (${published ? 'right' : 'wrong'} authority)`, stderr);
  }
});

t.test('a broker certificate from another authority: a clear error, retried, never connected', async (t) => {
  const dirs = makeDirs(join(scratch(t), 'eventd'));
  const eventd = startEventd(dirs, AMQPS_URL, tlsFlags(pki.otherCaCert));
  t.teardown(() => eventd.stop('SIGKILL'));
  const dispatcher = spawnDaemon(t, ['--db-url', join(scratch(t), 'd.sqlite'), '--amqp-url', AMQPS_URL, ...tlsFlags(pki.otherCaCert)], isolatedEnv(t));

  const refused = await eventd.waitForLog((l) => l.msg === 'cannot connect to AMQP broker', 60_000);
  t.match(refused, { url: `amqps://${USER}:***@localhost:${tlsPort}/`, err: /^TLS: certificate verify failed \(self-signed certificate in certificate chain\)/ }, 'eventd says why, and where');
  await eventd.waitForLog((l) => l.msg === 'cannot connect to AMQP broker (still)', 60_000);
  t.pass('eventd keeps retrying');
  const failures = () => dispatcher.lines.filter((l) => l.msg === 'cannot consume from the broker');
  await waitFor('two refused attempts of the dispatcher', async () => (failures().length >= 2 ? true : undefined));
  t.match(failures()[0], { broker: `amqps://${USER}:***@localhost:${tlsPort}/`, err: /^TLS: certificate verify failed \(self-signed certificate in certificate chain\)/ }, 'the dispatcher says why, and retries');

  t.notOk(eventd.lines.some((l) => l.msg === 'connected to AMQP broker'), 'eventd never connected');
  t.notOk(dispatcher.lines.some((l) => l.msg === 'consuming'), 'the dispatcher never consumed');
  await eventd.stop();
  dispatcher.child.kill('SIGTERM');
  await dispatcher.exited;
  assertNoSecrets(t, 'eventd', eventdOutput(eventd));
  assertNoSecrets(t, 'dispatcher', dispatcherOutput(dispatcher));
});

t.test('no client certificate: the broker refuses the handshake, and the log says so', async (t) => {
  const dirs = makeDirs(join(scratch(t), 'eventd'));
  const eventd = startEventd(dirs, AMQPS_URL, tlsFlags(pki.caCert, false));
  t.teardown(() => eventd.stop('SIGKILL'));
  const refused = await eventd.waitForLog((l) => l.msg === 'cannot connect to AMQP broker', 60_000);
  t.match(refused.err, /^TLS: the broker refused the handshake \(tlsv13 alert certificate required\); does it require a client certificate/);
  await eventd.waitForLog((l) => l.msg === 'cannot connect to AMQP broker (still)', 60_000);
  t.notOk(eventd.lines.some((l) => l.msg === 'connected to AMQP broker'), 'never connected');
  await eventd.stop();
  assertNoSecrets(t, 'eventd', eventdOutput(eventd));
});

t.test('an unreadable TLS file stops the program at start, naming the setting and the file', async (t) => {
  const dirs = makeDirs(join(scratch(t), 'eventd'));
  const missing = join(pki.dir, 'no-such-ca.pem');
  const eventd = startEventd(dirs, AMQPS_URL, tlsFlags(missing));
  t.equal(await eventd.exited, 2, 'exit status 2, as for any settings error');
  t.match(eventd.stderr.join(''), `setting amqp-ca-file: cannot read ${missing}: ENOENT`);
  const wrongKind = startEventd(dirs, AMQPS_URL, ['--amqp-ca-file', pki.caCert, '--amqp-cert-file', pki.clientKey, '--amqp-key-file', pki.clientKey]);
  t.equal(await wrongKind.exited, 2);
  t.match(wrongKind.stderr.join(''), `setting amqp-cert-file: ${pki.clientKey} holds no PEM certificate`);
  assertNoSecrets(t, 'eventd given a key as its certificate', eventdOutput(wrongKind));

  // The progress monitor never fails a deployment: it says so, reads its stream to the end, exits 1.
  const { monitor } = buildPrograms();
  const child = spawn(monitor, ['snf-1'], {
    env: { PATH: '/usr/bin:/bin', SNF_GTOOLS_SETTINGS_FILE: '/dev/null', SNF_GTOOLS_AMQP_URL: AMQPS_URL, SNF_GTOOLS_AMQP_CA_FILE: missing },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end('{"type":"image-info","messages":["x"]}\n');
  t.equal(await new Promise<number | null>((resolve) => child.on('close', resolve)), 1, 'the monitor exits 1 at the end of its stream');
  t.match(stderr, `setting amqp-ca-file: cannot read ${missing}: ENOENT`);
  t.match(stderr, /unusable settings: nothing will be published/);
});
