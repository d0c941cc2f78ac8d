// TLS towards the brokers (amqps:// URLs): the files the settings name, read and checked once at start
// (so that a typo is a clear start-up error, not a handshake failure hours later), and a readable
// account of a failed handshake for the logs. The contents of these files never reach a log or an
// error message: only the settings' names and the files' paths do.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { redactText } from './redact.js';
import { flagName, SettingsError } from './settings.js';

/** amqplib's TLS socket options (it passes them to tls.connect, and sets `servername` from the URL's host). */
export interface AmqpTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
}

/** The settings commonSettings gives every program that connects. */
export interface AmqpTlsSettings {
  amqpUrl: readonly string[];
  amqpCaFile?: string | undefined;
  amqpCertFile?: string | undefined;
  amqpKeyFile?: string | undefined;
  amqpKeyPassphraseFile?: string | undefined;
}

type FileSetting = 'amqpCaFile' | 'amqpCertFile' | 'amqpKeyFile' | 'amqpKeyPassphraseFile';

const given = (value: string | undefined): value is string => value !== undefined && value.trim() !== '';

function problem(setting: FileSetting, what: string): SettingsError {
  return new SettingsError(`setting ${flagName(setting)}: ${what}`);
}

/**
 * Reads the TLS files the settings name; undefined when none is set. Throws a SettingsError naming
 * the setting and the file when a file is unreadable or not what the setting needs, and when the
 * settings do not fit together (a certificate without its key, TLS files but no amqps:// URL).
 */
export function readAmqpTls(s: AmqpTlsSettings, read: (path: string) => Buffer = readFileSync): AmqpTls | undefined {
  const set = (['amqpCaFile', 'amqpCertFile', 'amqpKeyFile', 'amqpKeyPassphraseFile'] as const).filter((k) => given(s[k]));
  const first = set[0];
  if (first === undefined) return undefined;
  if (!s.amqpUrl.some((url) => url.trim().toLowerCase().startsWith('amqps:'))) {
    throw problem(first, 'applies to amqps:// broker URLs only, and no amqp-url is amqps://');
  }
  if (given(s.amqpCertFile) !== given(s.amqpKeyFile)) {
    throw problem(given(s.amqpCertFile) ? 'amqpCertFile' : 'amqpKeyFile', 'a client certificate needs both amqp-cert-file and amqp-key-file');
  }
  if (given(s.amqpKeyPassphraseFile) && !given(s.amqpKeyFile)) throw problem('amqpKeyPassphraseFile', 'needs amqp-key-file');

  const load = (setting: FileSetting, pemLabel?: RegExp, kind?: string): Buffer | undefined => {
    const path = s[setting];
    if (!given(path)) return undefined;
    let bytes: Buffer;
    try {
      bytes = read(path);
    } catch (err) {
      throw problem(setting, `cannot read ${path}: ${(err as Error).message}`);
    }
    if (pemLabel && !pemLabel.test(bytes.toString('latin1'))) throw problem(setting, `${path} holds no PEM ${kind}`);
    return bytes;
  };
  const tls: AmqpTls = {};
  const ca = load('amqpCaFile', /-----BEGIN CERTIFICATE-----/, 'certificate');
  const cert = load('amqpCertFile', /-----BEGIN CERTIFICATE-----/, 'certificate');
  const key = load('amqpKeyFile', /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/, 'private key');
  const passphrase = load('amqpKeyPassphraseFile');
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (passphrase) tls.passphrase = passphrase.toString('utf8').split(/\r?\n/)[0] ?? '';
  try {
    // What tls.connect will do with them: a wrong passphrase or a key that is not the certificate's
    // is told now, by setting and file.
    createSecureContext(tls);
  } catch (err) {
    const files = set.map((k) => `${flagName(k)} ${s[k]}`).join(', ');
    throw new SettingsError(`TLS settings (${files}) are not usable: ${tlsReason(err)}`);
  }
  return tls;
}

/** OpenSSL's reason without its `error:1E08010C:DECODER routines::` prefix. */
function tlsReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/i, '');
}

/** Node's codes for a peer certificate that failed verification (X509_V_ERR_* less the prefix). */
const CERT_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A connection failure as an operator reads it: TLS failures say so and what kind they are (the
 * broker's certificate did not verify, the broker wants a client certificate, another handshake
 * failure); anything else is the error's own message. Passwords in URLs are redacted.
 */
export function describeConnectError(err: unknown): string {
  const fields = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; reason?: unknown };
  const code = typeof fields.code === 'string' ? fields.code : '';
  // OpenSSL's messages carry its source file and line; Node gives the reason alone as `reason`.
  const text = code.startsWith('ERR_SSL_') && typeof fields.reason === 'string' ? fields.reason : err instanceof Error ? err.message : String(err);
  const message = redactText(text);
  if (CERT_VERIFY_CODES.has(code)) return `TLS: certificate verify failed (${message}); is amqp-ca-file the authority that signed the broker's certificate?`;
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE') {
    return `TLS: the broker refused the handshake (${message}); does it require a client certificate (amqp-cert-file, amqp-key-file)?`;
  }
  if (code.startsWith('ERR_SSL_')) return `TLS: handshake failed (${message})`;
  return message;
}
