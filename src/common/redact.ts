// Secret redaction for everything that may reach a log, an error message or a terminal: passwords in
// URLs and PEM private keys (an amqps:// client key). Its own module, with no imports, so that the
// settings code (which the hook loads on Ganeti's critical path) can use it without pulling in the
// logger.

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s"']*:)[^@/\s"']*@/gi;
/** A PEM private key block, or its beginning when the text was cut short (an error quoting a file). */
const PEM_PRIVATE_KEY = /-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----[\s\S]*?(?:-----END \1-----|$)/g;

/** Replaces the password of every `scheme://user:password@` and every PEM private key in a text. */
export function redactText(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@').replace(PEM_PRIVATE_KEY, '[$1 redacted]');
}
