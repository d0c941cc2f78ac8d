// The TLS settings read at start (readAmqpTls) on real files made with openssl, the account of a
// failed handshake (describeConnectError), and the redaction of private keys in logs.

import t from 'tap';
import { Writable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../src/common/log.js';
import { redactText } from '../../src/common/redact.js';
import { SettingsError } from '../../src/common/settings.js';
import { describeConnectError, readAmqpTls } from '../../src/common/tls.js';
import { makePki } from './pki.js';

const pki = await makePki();
t.teardown(() => pki.remove());
const amqps = ['amqps://u:p@localhost:5671/'];

t.test('nothing set: no TLS options (amqps:// then verifies against the system authorities)', async (t) => {
  t.equal(readAmqpTls({ amqpUrl: amqps }), undefined);
  t.equal(readAmqpTls({ amqpUrl: amqps, amqpCaFile: '' }), undefined, 'an empty value is unset');
});

t.test('the files are read once, as given', async (t) => {
  const tls = readAmqpTls({
    amqpUrl: ['amqp://plain:p@h1/', ...amqps],
    amqpCaFile: pki.caCert,
    amqpCertFile: pki.clientCert,
    amqpKeyFile: pki.clientKeyEncrypted,
    amqpKeyPassphraseFile: pki.passphraseFile,
  });
  t.match(tls?.ca?.toString(), /^-----BEGIN CERTIFICATE-----/);
  t.match(tls?.cert?.toString(), /^-----BEGIN CERTIFICATE-----/);
  t.match(tls?.key?.toString(), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  t.equal(tls?.passphrase, pki.passphrase, "the passphrase file's first line, without its newline");
  t.same(Object.keys(readAmqpTls({ amqpUrl: amqps, amqpCaFile: pki.caCert }) ?? {}), ['ca'], 'a CA alone: server verification only');
});

t.test('errors name the setting and the file, never a file content', async (t) => {
  const fails = (settings: Parameters<typeof readAmqpTls>[0], pattern: RegExp, what: string) => {
    let caught: unknown;
    try {
      readAmqpTls(settings);
    } catch (err) {
      caught = err;
    }
    t.type(caught, SettingsError, what);
    t.match((caught as Error | undefined)?.message, pattern, what);
    const keyLines = pki.keyPems().flatMap((pem) => pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----')));
    t.notOk(keyLines.some((l) => (caught as Error | undefined)?.message.includes(l)), `${what}: no line of a key in the message`);
    t.notOk((caught as Error | undefined)?.message.includes(pki.passphrase), `${what}: no passphrase in the message`);
  };
  fails({ amqpUrl: ['amqp://u:p@h/'], amqpCaFile: pki.caCert }, /^setting amqp-ca-file: applies to amqps:\/\/ broker URLs only/, 'TLS files but no amqps:// URL');
  fails({ amqpUrl: amqps, amqpCertFile: pki.clientCert }, /^setting amqp-cert-file: a client certificate needs both/, 'a certificate without its key');
  fails({ amqpUrl: amqps, amqpKeyFile: pki.clientKey }, /^setting amqp-key-file: a client certificate needs both/, 'a key without its certificate');
  fails({ amqpUrl: amqps, amqpCaFile: pki.caCert, amqpKeyPassphraseFile: pki.passphraseFile }, /^setting amqp-key-passphrase-file: needs amqp-key-file/, 'a passphrase without a key');
  fails({ amqpUrl: amqps, amqpCaFile: pki.dir }, new RegExp(`^setting amqp-ca-file: cannot read ${pki.dir}: EISDIR`), 'a directory');
  fails({ amqpUrl: amqps, amqpCaFile: join(pki.dir, 'nope.pem') }, /^setting amqp-ca-file: cannot read .*nope\.pem: ENOENT/, 'a missing file');
  fails({ amqpUrl: amqps, amqpCaFile: pki.clientKey }, new RegExp(`^setting amqp-ca-file: ${pki.clientKey} holds no PEM certificate`), 'a key given as the CA');
  fails({ amqpUrl: amqps, amqpCertFile: pki.clientCert, amqpKeyFile: pki.clientCert }, /^setting amqp-key-file: .* holds no PEM private key/, 'a certificate given as the key');
  fails({ amqpUrl: amqps, amqpCertFile: pki.clientCert, amqpKeyFile: pki.serverKey }, /^TLS settings \(amqp-cert-file .*, amqp-key-file .*\) are not usable: .*key values mismatch/, "another certificate's key");
  const wrong = join(pki.dir, 'wrong-passphrase');
  writeFileSync(wrong, 'not the passphrase\n');
  fails(
    { amqpUrl: amqps, amqpCertFile: pki.clientCert, amqpKeyFile: pki.clientKeyEncrypted, amqpKeyPassphraseFile: wrong },
    /^TLS settings \(.*amqp-key-passphrase-file .*wrong-passphrase\) are not usable: /,
    'a wrong passphrase',
  );
});

t.test('describeConnectError: what kind of TLS failure, or the message as it is', async (t) => {
  const withCode = (code: string, message: string, reason?: string) => Object.assign(new Error(message), { code, ...(reason ? { reason } : {}) });
  t.equal(
    describeConnectError(withCode('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain')),
    "TLS: certificate verify failed (self-signed certificate in certificate chain); is amqp-ca-file the authority that signed the broker's certificate?",
  );
  t.match(describeConnectError(withCode('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames")), /^TLS: certificate verify failed \(Hostname/);
  t.equal(
    describeConnectError(withCode('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', '80:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:rec_layer_s3.c:1601', 'tlsv13 alert certificate required')),
    'TLS: the broker refused the handshake (tlsv13 alert certificate required); does it require a client certificate (amqp-cert-file, amqp-key-file)?',
  );
  t.equal(describeConnectError(withCode('ERR_SSL_WRONG_VERSION_NUMBER', 'x:wrong version number:y', 'wrong version number')), 'TLS: handshake failed (wrong version number)');
  t.equal(describeConnectError(withCode('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5671')), 'connect ECONNREFUSED 127.0.0.1:5671');
  t.equal(describeConnectError(new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) amqp://u:secret@h/')), 'Handshake terminated by server: 403 (ACCESS-REFUSED) amqp://u:***@h/');
  t.equal(describeConnectError('a string'), 'a string');
});

t.test('private keys are redacted from texts and logs, whole or cut short', async (t) => {
  const [key] = pki.keyPems();
  t.equal(redactText(`before\n${key}after`), 'before\n[PRIVATE KEY redacted]\nafter');
  t.equal(redactText(`cannot parse: ${key?.slice(0, 80)}`), 'cannot parse: [PRIVATE KEY redacted]');
  t.equal(redactText('-----BEGIN ENCRYPTED PRIVATE KEY-----\nabc\n-----END ENCRYPTED PRIVATE KEY-----'), '[ENCRYPTED PRIVATE KEY redacted]');
  t.equal(redactText('-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----'), '-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----', 'certificates are public');

  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ level: 'info', name: 'x', destination: sink });
  log.error({ err: new Error(`bad key ${key}`), tls: { key: Buffer.from(key ?? ''), passphrase: pki.passphrase }, text: key }, `message ${key}`);
  const out = lines.join('');
  t.notMatch(out, /PRIVATE KEY-----/, 'no PEM block in the log line');
  t.notOk(out.includes(pki.passphrase), 'no passphrase');
  t.match(JSON.parse(out), { msg: 'message [PRIVATE KEY redacted]\n', text: '[PRIVATE KEY redacted]\n', tls: { key: '***', passphrase: '***' } });
});
