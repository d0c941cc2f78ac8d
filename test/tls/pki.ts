// A throw-away public key infrastructure made with openssl for the TLS tests: a certificate
// authority, a broker certificate for localhost / 127.0.0.1 signed by it, a client certificate signed
// by it (its key also encrypted with a passphrase), and a second, unrelated authority that signed
// nothing the broker uses ("the wrong CA").

import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** The client key encrypted with `passphrase`. */
  clientKeyEncrypted: string;
  passphraseFile: string;
  passphrase: string;
  /** An authority that signed nothing here. */
  otherCaCert: string;
  /** Every private key's PEM text, to check that none reaches a log. */
  keyPems(): string[];
  remove(): void;
}

const openssl = (dir: string, ...args: string[]) => run('openssl', args, { cwd: dir });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function authority(dir: string, name: string): Promise<void> {
  await openssl(dir, 'req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name} test authority`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

async function signed(dir: string, name: string, ca: string, subject: string, extensions: string): Promise<void> {
  await openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

/**
 * Makes the files in a new temporary directory. The broker's files are made readable by the
 * `rabbitmq` user (the private node runs as it): the directory and certificates world-readable, the
 * broker's key owned by rabbitmq, mode 0600.
 */
export async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'snf-tls-pki-'));
  chmodSync(dir, 0o755);
  await authority(dir, 'ca');
  await authority(dir, 'other-ca');
  await signed(dir, 'server', 'ca', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await signed(dir, 'client', 'ca', '/CN=snf-gtools test client', 'extendedKeyUsage=clientAuth\n');
  const passphrase = 'pass-' + Math.random().toString(36).slice(2);
  writeFileSync(join(dir, 'passphrase'), `${passphrase}\n`, { mode: 0o600 });
  await openssl(dir, 'pkey', '-in', 'client.key', '-aes256', '-passout', `file:${join(dir, 'passphrase')}`, '-out', 'client-encrypted.key');
  for (const f of ['ca.pem', 'server.pem', 'client.pem', 'other-ca.pem']) chmodSync(join(dir, f), 0o644);
  const { stdout: uid } = await run('id', ['-u', 'rabbitmq']);
  const { stdout: gid } = await run('id', ['-g', 'rabbitmq']);
  chownSync(join(dir, 'server.key'), Number(uid.trim()), Number(gid.trim()));
  chmodSync(join(dir, 'server.key'), 0o600);
  const keys = ['ca.key', 'other-ca.key', 'server.key', 'client.key', 'client-encrypted.key'].map((f) => join(dir, f));
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    clientKeyEncrypted: join(dir, 'client-encrypted.key'),
    passphraseFile: join(dir, 'passphrase'),
    passphrase,
    otherCaCert: join(dir, 'other-ca.pem'),
    keyPems: () => keys.map((k) => readFileSync(k, 'utf8')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** rabbitmq.conf lines for a TLS listener on `port` that requires a client certificate signed by the CA. */
export function tlsListenerConfig(pki: Pki, port: number): string[] {
  return [
    `listeners.ssl.default = 127.0.0.1:${port}`,
    `ssl_options.cacertfile = ${pki.caCert}`,
    `ssl_options.certfile = ${pki.serverCert}`,
    `ssl_options.keyfile = ${pki.serverKey}`,
    'ssl_options.verify = verify_peer',
    'ssl_options.fail_if_no_peer_cert = true',
  ];
}
