// The systemd units in systemd/: their hardening (`systemd-analyze security --offline=true`), a clean
// `systemd-analyze verify`, and the settings the issue asks of them. verify runs in a scratch root laid
// out as the packages install it: systemd's own units, ours in /lib/systemd/system, and the programs
// at the paths debian/*.links give them (the install test verifies the really installed ones too).

import t from 'tap';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandMissing, exposure, verifyUnits } from './helpers/systemd.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNITS = {
  'snf-ganeti-eventd.service': { package: 'snf-cyclades-gtools', maxExposure: 3.0, program: 'eventd' },
  'snf-dispatcher.service': { package: 'snf-dispatcher', maxExposure: 2.0, program: 'dispatcher' },
} as const;
type UnitName = keyof typeof UNITS;

const unitPath = (unit: string) => join(ROOT, 'systemd', unit);

/** `Key=value` assignments of a unit file, by key (every value, in order). */
function directives(unit: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const raw of readFileSync(unitPath(unit), 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    map.set(key, [...(map.get(key) ?? []), line.slice(eq + 1)]);
  }
  return map;
}

const missing = commandMissing(['systemd-analyze']);
if (missing.length > 0) {
  if (process.env.CI) t.fail('systemd-analyze is missing (package systemd)');
  else t.plan(0, 'needs systemd-analyze');
} else {
  t.test('exposure levels', async (t) => {
    for (const [unit, { maxExposure }] of Object.entries(UNITS)) {
      const level = exposure(unitPath(unit));
      t.ok(level <= maxExposure, `${unit}: exposure ${level} <= ${maxExposure}`);
    }
  });

  t.test('what the units must say', async (t) => {
    for (const unit of Object.keys(UNITS) as UnitName[]) {
      const d = directives(unit);
      const one = (key: string) => d.get(key)?.at(-1);
      t.equal(one('Type'), 'notify', `${unit}: Type=notify`);
      t.equal(one('NotifyAccess'), 'all', `${unit}: NotifyAccess=all (systemd-notify is a child process)`);
      t.match(one('WatchdogSec') ?? '', /^\d+s?$/, `${unit}: a watchdog`);
      t.equal(one('Restart'), 'on-failure', `${unit}: Restart=on-failure`);
      t.same(d.get('EnvironmentFile'), ['-/etc/default/snf-cyclades-gtools'], `${unit}: reads the settings file if there is one`);
      t.equal(one('StandardOutput'), 'journal', `${unit}: logs to the journal`);
      t.equal(one('ProtectSystem'), 'strict', `${unit}: a read-only file system`);
      t.equal(one('NoNewPrivileges'), 'yes');
      t.notOk(d.has('MemoryDenyWriteExecute'), `${unit}: no MemoryDenyWriteExecute (V8's JIT)`);
      t.equal(one('ExecStart'), `/usr/bin/${unit === 'snf-dispatcher.service' ? 'snf-dispatcher' : 'snf-ganeti-eventd'}`);
    }
    const eventd = directives('snf-ganeti-eventd.service');
    t.notOk(eventd.has('User'), 'eventd runs as root (job files are 0600 for the Ganeti master daemon)');
    t.same(eventd.get('CapabilityBoundingSet'), ['CAP_DAC_READ_SEARCH'], 'eventd keeps only read access to any file');
    t.same(eventd.get('StateDirectory'), ['snf-cyclades-gtools'], 'eventd writes its state directory');
    t.same(eventd.get('ReadWritePaths'), ['/var/spool/snf-cyclades-gtools'], 'and the outbox, nothing else');
    const dispatcher = directives('snf-dispatcher.service');
    t.same(dispatcher.get('User'), ['synnefo'], 'the dispatcher runs as synnefo');
    t.same(dispatcher.get('StateDirectory'), ['snf-dispatcher'], 'and writes only its database directory');
    t.same(dispatcher.get('CapabilityBoundingSet'), [''], 'with no capabilities');
  });

  t.test('systemd-analyze verify is clean, with the programs where the packages put them', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'units-root-'));
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'lib', 'systemd'), { recursive: true });
    cpSync('/lib/systemd/system', join(root, 'lib', 'systemd', 'system'), { recursive: true, verbatimSymlinks: true });
    for (const unit of Object.keys(UNITS)) copyFileSync(unitPath(unit), join(root, 'lib', 'systemd', 'system', unit));

    // The programs, laid out as debian/<package>.install and .links do.
    for (const [unit, { package: pkg, program }] of Object.entries(UNITS)) {
      const links = readFileSync(join(ROOT, 'debian', `${pkg}.links`), 'utf8').split('\n').filter((l) => l.trim() !== '');
      const command = `/usr/bin/${unit === 'snf-dispatcher.service' ? 'snf-dispatcher' : 'snf-ganeti-eventd'}`;
      const link = links.map((l) => l.split(/\s+/)).find(([, dest]) => `/${dest}` === command);
      t.ok(link, `debian/${pkg}.links provides ${command}`);
      if (!link) continue;
      const [source] = link as [string, string];
      t.equal(source, `usr/lib/${pkg}/src/${program}/main.js`, `${command} runs the compiled ${program}/main.js`);
      const main = join(root, source);
      mkdirSync(dirname(main), { recursive: true });
      const shebang = readFileSync(join(ROOT, 'src', program, 'main.ts'), 'utf8').split('\n')[0] ?? '';
      t.match(shebang, /^#!\//, `src/${program}/main.ts starts with a #! line`);
      writeFileSync(main, `${shebang}\n`);
      chmodSync(main, 0o755);
      mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
      symlinkSync(relative(join(root, 'usr', 'bin'), main), join(root, command));
    }

    const result = verifyUnits(Object.keys(UNITS), { root, man: false });
    t.equal(result.text, '', 'no complaint');
    t.equal(result.status, 0);

    // The check can fail: a unit with a typo, and one whose program is missing, are reported.
    const broken = join(root, 'lib', 'systemd', 'system', 'snf-broken.service');
    writeFileSync(broken, readFileSync(unitPath('snf-dispatcher.service'), 'utf8').replace('Type=notify', 'Type=notifyy'));
    t.match(verifyUnits(['snf-broken.service'], { root, man: false }).text, /Failed to parse service type/);
    writeFileSync(broken, readFileSync(unitPath('snf-dispatcher.service'), 'utf8').replace('/usr/bin/snf-dispatcher', '/usr/bin/snf-nothing'));
    t.match(verifyUnits(['snf-broken.service'], { root, man: false }).text, /snf-nothing is not executable/);
  });
}
