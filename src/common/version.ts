import { createRequire } from 'node:module';

/** The package's version, read from package.json whether running from src/ or from dist/src/. */
export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      return (require(path) as { version: string }).version;
    } catch {
      // Not at this depth; try the next.
    }
  }
  return 'unknown';
}
