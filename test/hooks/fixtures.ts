// Hook fixtures: the `env | sort` dumps Ganeti 3.0 produced for each hook (copied from
// /work/shared/fixtures/ganeti-3.0/hooks/, see the README there).

import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/ganeti-3.0/hooks/', import.meta.url));
export const GOLDEN_DIR = fileURLToPath(new URL('../golden/hooks/', import.meta.url));

export interface HookFixture {
  /** e.g. `07-instance-add-post` */
  name: string;
  file: string;
  hooksPath: string;
  phase: string;
  opCode: string;
  job: number;
  /** Epoch seconds at which Ganeti ran the hook. */
  t: number;
}

/** `KEY=value` lines, split at the first `=` (values may contain `=`). */
export function parseEnvDump(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`bad env line ${JSON.stringify(line)}`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

export function loadFixtureEnv(name: string): Record<string, string> {
  return parseEnvDump(readFileSync(`${FIXTURE_DIR}${name}.env`, 'utf8'));
}

export function listFixtures(): HookFixture[] {
  const index = JSON.parse(readFileSync(`${FIXTURE_DIR}index.json`, 'utf8')) as {
    hooks: { file: string; t: number; hooks_path: string; phase: string; op_code: string; job: number }[];
  };
  const files = new Set(readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.env')));
  return index.hooks.map((h) => {
    const file = h.file.replace(/^hooks\//, '');
    if (!files.has(file)) throw new Error(`index.json names ${file}, which is missing`);
    return {
      name: file.replace(/\.env$/, ''),
      file,
      hooksPath: h.hooks_path,
      phase: h.phase,
      opCode: h.op_code,
      job: h.job,
      t: h.t,
    };
  });
}
