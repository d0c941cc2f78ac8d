// Compiles the hook's and the progress monitor's module graphs to plain JavaScript in a temporary
// directory, so that tests and benchmarks run what production runs (`node dist/src/hooks/main.js`),
// without tsx's start-up cost and without touching the project's dist/. The directory gets a
// `node_modules` symlink to the project's, so that the monitor's packages resolve.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

let built: { hook: string; monitor: string } | undefined;

/** Returns the path of the compiled `src/hooks/main.js` (compiled once per process). */
export function buildHook(): string {
  return buildPrograms().hook;
}

/** Compiles both programs once per process and returns their entry points. */
export function buildPrograms(): { hook: string; monitor: string } {
  if (built) return built;
  const out = mkdtempSync(join(tmpdir(), 'snf-hook-build-'));
  process.on('exit', () => rmSync(out, { recursive: true, force: true }));
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(
    process.execPath,
    [
      tsc,
      '--outDir', out,
      '--rootDir', ROOT,
      '--module', 'NodeNext',
      '--moduleResolution', 'NodeNext',
      '--target', 'ES2022',
      '--lib', 'ES2023',
      '--types', 'node',
      '--strict',
      '--skipLibCheck',
      '--esModuleInterop',
      join(ROOT, 'src/hooks/main.ts'),
      join(ROOT, 'src/common/outbox.ts'),
      join(ROOT, 'src/progress-monitor/main.ts'),
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  built = { hook: join(out, 'src/hooks/main.js'), monitor: join(out, 'src/progress-monitor/main.js') };
  // Executable, so that they can be run through their shebang lines, as installed.
  chmodSync(built.hook, 0o755);
  chmodSync(built.monitor, 0o755);
  return built;
}

/** Ganeti's hook environment: nothing but the fixture's variables (GANETI_*, PATH, PWD) and extras. */
export function ganetiEnv(fixture: Record<string, string>, extra: Record<string, string> = {}): Record<string, string> {
  return { ...fixture, PATH: '/sbin:/bin:/usr/sbin:/usr/bin', PWD: '/', ...extra };
}
