// Logging: pino JSON lines on stdout (the journal keeps them), one child logger per component.
// Broker and database passwords and PEM private keys are redacted everywhere: in strings anywhere in a
// log record (message, fields, error messages and stacks) and in fields named like secrets.

import pino, { type Logger } from 'pino';
import { redactText } from './redact.js';

export type { Logger };

const SECRET_KEYS = /^(password|passwd|pass|secret|key|private_?key|passphrase|authorization)$/i;

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: redactText(value.message), stack: value.stack && redactText(value.stack), ...redactFields(value as unknown as Record<string, unknown>, depth + 1) };
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1));
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  return redactFields(value as Record<string, unknown>, depth + 1);
}

function redactFields(obj: Record<string, unknown>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = SECRET_KEYS.test(k) ? '***' : redactValue(v, depth);
  return out;
}

export interface LogOptions {
  level: string;
  /** The program name, e.g. `snf-ganeti-eventd`. */
  name: string;
  /** Where lines go; stdout (fd 1) by default, stderr for programs whose stdout belongs to someone else. */
  destination?: pino.DestinationStream | number;
}

export function createLogger(options: LogOptions): Logger {
  const destination =
    typeof options.destination === 'object'
      ? options.destination
      : pino.destination({ dest: options.destination ?? 1, sync: true });
  return pino(
    {
      name: options.name,
      level: options.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactFields(obj, 0),
      },
      serializers: { err: (err: unknown) => redactValue(err, 0) },
      hooks: {
        // The message text is not seen by formatters.log, so it is redacted here.
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination,
  );
}
