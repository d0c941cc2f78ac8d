// systemd-analyze, offline: `verify` and `security --offline=true` on unit files.

import { spawnSync } from 'node:child_process';

/** The commands of `names` that are not in PATH. */
export function commandMissing(names: string[]): string[] {
  return names.filter((n) => spawnSync('sh', ['-c', `command -v ${n}`], { stdio: 'ignore' }).status !== 0);
}

/** `systemd-analyze verify` on unit files: status and everything it printed (empty when clean). */
export function verifyUnits(paths: string[], options: { root?: string; man?: boolean } = {}): { status: number | null; text: string } {
  const args = ['verify', '--no-pager', `--man=${options.man ?? true ? 'yes' : 'no'}`];
  if (options.root) args.push(`--root=${options.root}`);
  const r = spawnSync('systemd-analyze', [...args, ...paths], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
  return { status: r.status, text: `${r.stdout}${r.stderr}`.trim() };
}

/** The overall exposure level `systemd-analyze security --offline=true` gives a unit file. */
export function exposure(path: string, options: { root?: string } = {}): number {
  const args = ['security', '--no-pager', '--offline=true'];
  if (options.root) args.push(`--root=${options.root}`);
  const r = spawnSync('systemd-analyze', [...args, path], { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(`${r.stdout}${r.stderr}`);
  if (!m) throw new Error(`systemd-analyze security ${path}: no exposure level in its output:\n${r.stdout}${r.stderr}`);
  return Number(m[1]);
}
