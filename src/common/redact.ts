// Password redaction for everything that may reach a log, an error message or a terminal. Its own
// module, with no imports, so that the settings code (which the hook loads on Ganeti's critical path)
// can use it without pulling in the logger.

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s"']*:)[^@/\s"']*@/gi;

/** Replaces the password of every `scheme://user:password@` in a text (a URL, a message, a stack). */
export function redactText(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1***@');
}
