// Builds the Debian packages (scripts/build-deb.sh, from this tree's npm-ci'd node_modules), runs
// lintian on them, installs both on this machine with apt-get, checks what they put where, runs the
// installed programs, then removes and purges them and checks that nothing is left.
//
// It needs root, debhelper, help2man, lintian and systemd-analyze (scripts/provision.sh installs
// them). Without them it skips, except under CI, where a missing tool is a failure.

import t from 'tap';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandMissing, exposure, verifyUnits } from './helpers/systemd.js';
import { holdMachineLock } from '../helpers/machine-lock.js';

t.setTimeout(15 * 60_000);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const PACKAGES = ['snf-cyclades-gtools', 'snf-dispatcher'];
const HOOK_PATHS = ['instance-add', 'instance-start', 'instance-reboot', 'instance-modify', 'instance-stop'];
const GTOOLS_LIB = '/usr/lib/snf-cyclades-gtools';
const HOOK = `${GTOOLS_LIB}/snf-ganeti-hook`;

/** The environment without tap's: the installed programs must run without its loaders. */
const CLEAN_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !/^_?TAP/i.test(k) && !k.startsWith('_TAPJS')),
);

function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: options.timeout ?? 120_000,
    env: options.env ?? { ...CLEAN_ENV, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024,
  });
}

const output = (r: SpawnSyncReturns<string>) => `exit ${r.status ?? r.signal}\n${r.stdout ?? ''}${r.stderr ?? ''}`.slice(-4000);

function installedStatus(pkg: string): string {
  const r = run('dpkg-query', ['-W', '-f=${db:Status-Abbrev}', pkg]);
  return r.status === 0 ? r.stdout.trim() : 'not known';
}

const missing = [
  ...commandMissing(['dpkg-buildpackage', 'dh', 'help2man', 'lintian', 'systemd-analyze', 'apt-get', 'dpkg-query', 'man']),
  ...(process.getuid?.() === 0 ? [] : ['root (to install packages)']),
  ...(existsSync(join(ROOT, 'node_modules', '.package-lock.json')) ? [] : ['node_modules (npm ci)']),
];
if (missing.length > 0) {
  if (process.env.CI) {
    t.fail(`the package install test needs: ${missing.join(', ')} (scripts/provision.sh installs the tools)`);
  } else {
    t.plan(0, `needs ${missing.join(', ')} (run scripts/provision.sh)`);
  }
} else {
  // Installing links the packaged hook into /etc/ganeti/hooks: not while the e2e test runs Ganeti.
  t.teardown(await holdMachineLock('ganeti-hooks', { timeoutMs: 15 * 60_000, onWait: (m) => t.comment(m) }));
  await main();
}

async function main(): Promise<void> {
  const out = mkdtempSync(join(tmpdir(), 'snf-deb-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));

  // Left over by an interrupted run: start clean.
  for (const pkg of PACKAGES) {
    if (installedStatus(pkg) !== 'not known' && !installedStatus(pkg).startsWith('un')) run('apt-get', ['purge', '-y', '-q', pkg]);
  }

  const build = run(join(ROOT, 'scripts', 'build-deb.sh'), ['--reuse-node-modules', out], { timeout: 10 * 60_000 });
  if (build.status !== 0) {
    t.fail(`scripts/build-deb.sh failed:\n${output(build)}`);
    return;
  }
  t.equal(build.stdout.trim().split('\n').at(-1), out, 'build-deb.sh prints the output directory last');
  const debs = readdirSync(out).filter((f) => f.endsWith('.deb')).sort();
  t.same(debs, [`snf-cyclades-gtools_${VERSION}_all.deb`, `snf-dispatcher_${VERSION}_${execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim()}.deb`], 'two binary packages');
  const deb = (pkg: string) => join(out, debs.find((d) => d.startsWith(`${pkg}_`))!);

  t.test('lintian: no errors, no warnings', async (t) => {
    const r = run('lintian', ['--fail-on', 'none', ...debs.map((d) => join(out, d))], { timeout: 5 * 60_000 });
    t.equal(r.status, 0, output(r));
    const tags = r.stdout.split('\n').filter((l) => /^[EW]: /.test(l));
    t.same(tags, [], 'no E: or W: tags');
    for (const pkg of PACKAGES) {
      const overrides = readFileSync(join(ROOT, 'debian', `${pkg}.lintian-overrides`), 'utf8').split('\n');
      overrides.forEach((line, i) => {
        if (line.trim() === '' || line.startsWith('#')) return;
        // A comment may cover the overrides right below it.
        let j = i - 1;
        while (j >= 0 && overrides[j]?.startsWith(`${pkg}: `)) j--;
        t.match(overrides[j] ?? '', /^#/, `${pkg} override "${line.slice(0, 60)}" has a comment`);
      });
    }
  });

  t.test('the packages declare what they need', async (t) => {
    const field = (pkg: string, name: string) => execFileSync('dpkg-deb', ['-f', deb(pkg), name], { encoding: 'utf8' }).trim();
    t.match(field('snf-cyclades-gtools', 'Depends'), /nodejs \(>= 20/);
    t.match(field('snf-cyclades-gtools', 'Recommends'), /\bganeti\b/);
    t.match(field('snf-dispatcher', 'Depends'), /nodejs \(>= 20/);
    t.match(field('snf-dispatcher', 'Depends'), /nodejs \(<< \d+\)/, 'bounded to the Node.js ABI better-sqlite3 was built for');
    t.match(field('snf-dispatcher', 'Depends'), /\badduser\b/);
    for (const pkg of PACKAGES) {
      const scripts = execFileSync('sh', ['-c', `dpkg-deb --ctrl-tarfile ${deb(pkg)} | tar -xOf - --wildcards './p*'`], { encoding: 'utf8' });
      t.notMatch(scripts, /\b(npm|node-gyp|curl|wget|make|gcc)\b/, `${pkg}: no maintainer script fetches or compiles anything`);
    }
  });

  const install = run('apt-get', ['install', '-y', '-q', '--no-install-recommends', deb('snf-cyclades-gtools'), deb('snf-dispatcher')], { timeout: 5 * 60_000 });
  if (install.status !== 0) {
    t.fail(`apt-get install failed:\n${output(install)}`);
    return;
  }
  t.teardown(() => {
    for (const pkg of PACKAGES) if (installedStatus(pkg) !== 'not known' && !installedStatus(pkg).startsWith('un')) run('apt-get', ['purge', '-y', '-q', pkg]);
  });

  t.test('installed: programs, hook links, conffile, directories, user, units, man pages', async (t) => {
    for (const pkg of PACKAGES) t.equal(installedStatus(pkg), 'ii', `${pkg} installed`);
    const commands: Record<string, string> = {
      'snf-ganeti-eventd': `${GTOOLS_LIB}/src/eventd/main.js`,
      'snf-progress-monitor': `${GTOOLS_LIB}/src/progress-monitor/main.js`,
      'snf-dispatcher': '/usr/lib/snf-dispatcher/src/dispatcher/main.js',
    };
    for (const [cmd, target] of Object.entries(commands)) {
      t.equal(realpathSync(`/usr/bin/${cmd}`), target, `/usr/bin/${cmd} runs ${target}`);
      t.ok(statSync(target).mode & 0o111, `${target} is executable`);
    }

    t.equal(realpathSync(HOOK), `${GTOOLS_LIB}/src/hooks/main.js`);
    t.equal(readFileSync(HOOK, 'utf8').split('\n')[0], '#!/usr/bin/node', 'the hook names its interpreter by absolute path (Ganeti clears PATH)');
    t.ok(statSync(HOOK).mode & 0o111, 'the hook is executable');
    for (const path of HOOK_PATHS) {
      const dir = `/etc/ganeti/hooks/${path}-post.d`;
      const names = readdirSync(dir);
      t.same(names, ['snf-ganeti-hook'], `${dir} holds the hook`);
      for (const name of names) {
        t.match(name, /^[a-zA-Z0-9_-]+$/, `${name}: a name Ganeti runs`);
        t.ok(lstatSync(join(dir, name)).isSymbolicLink());
        t.equal(readlinkSync(join(dir, name)), HOOK, `${dir}/${name} links to ${HOOK}`);
      }
    }

    const conffiles = execFileSync('dpkg-query', ['-W', '-f=${Conffiles}', 'snf-cyclades-gtools'], { encoding: 'utf8' });
    t.match(conffiles, /\/etc\/default\/snf-cyclades-gtools [0-9a-f]{32}/, 'the settings file is a conffile');
    const settings = statSync('/etc/default/snf-cyclades-gtools');
    t.equal((settings.mode & 0o777).toString(8), '640', 'settings: mode 0640');
    t.equal(settings.uid, 0, 'settings: owned by root');
    const text = readFileSync('/etc/default/snf-cyclades-gtools', 'utf8');
    t.same(text.split('\n').filter((l) => /^\s*[A-Za-z_]+\s*=/.test(l)), [], 'settings: every line commented out (no secrets by default)');
    t.match(text, /SNF_GTOOLS_AMQP_URL/, 'settings: documents the broker URLs');

    const dir = (path: string, mode: string, user: string) => {
      const st = statSync(path);
      t.ok(st.isDirectory(), `${path} exists`);
      t.equal((st.mode & 0o777).toString(8), mode, `${path}: mode ${mode}`);
      t.equal(execFileSync('stat', ['-c', '%U:%G', path], { encoding: 'utf8' }).trim(), user, `${path}: owned by ${user}`);
    };
    dir('/var/lib/snf-cyclades-gtools', '700', 'root:root');
    dir('/var/spool/snf-cyclades-gtools/outbox', '700', 'root:root');
    dir('/var/lib/snf-dispatcher', '750', 'synnefo:synnefo');

    const passwd = execFileSync('getent', ['passwd', 'synnefo'], { encoding: 'utf8' }).trim().split(':');
    t.ok(Number(passwd[2]) < 1000, `synnefo is a system user (uid ${passwd[2]})`);
    t.match(passwd[6] ?? '', /nologin|false/, 'synnefo has no login shell');
    t.equal(execFileSync('id', ['-gn', 'synnefo'], { encoding: 'utf8' }).trim(), 'synnefo', 'with its own group');

    for (const unit of ['snf-ganeti-eventd.service', 'snf-dispatcher.service']) {
      const installed = `/lib/systemd/system/${unit}`;
      t.equal(readFileSync(installed, 'utf8'), readFileSync(join(ROOT, 'systemd', unit), 'utf8'), `${installed} is systemd/${unit}`);
      t.ok(existsSync(`/etc/systemd/system/multi-user.target.wants/${unit}`), `${unit} is enabled`);
    }
    // With the packages installed, verify also finds the ExecStart programs and the man pages.
    const verify = verifyUnits(['/lib/systemd/system/snf-ganeti-eventd.service', '/lib/systemd/system/snf-dispatcher.service']);
    t.equal(verify.text, '', 'systemd-analyze verify: clean');
    t.equal(verify.status, 0);
    t.ok(exposure('/lib/systemd/system/snf-ganeti-eventd.service') <= 3.0, 'eventd exposure <= 3.0');
    t.ok(exposure('/lib/systemd/system/snf-dispatcher.service') <= 2.0, 'dispatcher exposure <= 2.0');

    for (const page of ['snf-ganeti-eventd', 'snf-ganeti-hook', 'snf-progress-monitor', 'snf-dispatcher']) {
      const r = run('man', ['-w', `8`, page]);
      t.equal(r.status, 0, `man page ${page}(8): ${r.stdout.trim() || r.stderr.trim()}`);
      const rendered = run('man', ['8', page], { env: { ...CLEAN_ENV, MANWIDTH: '80', PAGER: 'cat' } });
      const text = rendered.stdout.replace(/.\x08/g, '');
      t.match(text, /^NAME\n\s+snf\S+\s+\S+\s+\w/m, `${page}(8) renders, with a name line`);
      t.equal(rendered.stderr.trim(), '', `${page}(8): groff has no complaint`);
    }
  });

  t.test('the installed programs run', async (t) => {
    for (const cmd of ['snf-ganeti-eventd', 'snf-dispatcher', 'snf-progress-monitor']) {
      const help = run(`/usr/bin/${cmd}`, ['--help']);
      t.equal(help.status, 0, `${cmd} --help: ${output(help)}`);
      t.match(help.stdout, new RegExp(`Usage: ${cmd}`), `${cmd} --help prints its usage`);
      t.match(help.stdout, /--amqp-url/, `${cmd} --help lists the settings`);
      const version = run(`/usr/bin/${cmd}`, ['--version']);
      t.equal(version.status, 0, `${cmd} --version: ${output(version)}`);
      t.equal(version.stdout.trim(), VERSION, `${cmd} --version prints ${VERSION}`);
    }

    // The hook has no --help (Ganeti runs it with no arguments): run it as Ganeti would instead,
    // with a cleared environment: a pre phase is a no-op, instance-add post stores its message.
    const fixture = readFileSync(join(ROOT, 'test', 'fixtures', 'ganeti-3.0', 'hooks', '07-instance-add-post.env'), 'utf8');
    const ganetiEnv: Record<string, string> = { PATH: '/sbin:/bin:/usr/sbin:/usr/bin', PWD: '/' };
    for (const line of fixture.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) ganetiEnv[line.slice(0, eq)] = line.slice(eq + 1);
    }
    const link = '/etc/ganeti/hooks/instance-add-post.d/snf-ganeti-hook';
    const pre = run(link, [], { env: { ...ganetiEnv, GANETI_HOOKS_PHASE: 'pre' } });
    t.equal(pre.stderr, '', 'pre phase: nothing to say');
    t.equal(pre.status, 0, `pre phase: ${output(pre)}`);
    const outbox = '/var/spool/snf-cyclades-gtools/outbox';
    const before = readdirSync(outbox);
    const post = run(link, [], { env: { ...ganetiEnv, SNF_GTOOLS_NODE_NAME: ganetiEnv.GANETI_MASTER ?? '' } });
    t.equal(post.status, 0, `post phase: ${output(post)}`);
    const entries = readdirSync(outbox).filter((n) => !before.includes(n));
    t.equal(entries.length, 1, 'one outbox entry');
    const entry = readFileSync(join(outbox, entries[0] ?? ''), 'utf8');
    t.match(JSON.parse(entry.split('\n')[0] ?? '{}'), { type: 'ganeti-net-status', body: { instance: 'snf-1' } });
    t.equal((statSync(join(outbox, entries[0] ?? '')).mode & 0o777).toString(8), '600', 'the entry is root-only');

    // The dispatcher's native SQLite module works from the package, as the synnefo user, in its
    // database directory (what the unit does, settings read by systemd, not by the program).
    const servers = run('runuser', ['-u', 'synnefo', '--', 'env', 'SNF_GTOOLS_SETTINGS_FILE=/dev/null', '/usr/bin/snf-dispatcher', 'servers', '--json']);
    t.equal(servers.status, 0, `snf-dispatcher servers: ${output(servers)}`);
    t.same(JSON.parse(servers.stdout || 'null'), [], 'an empty, new database');
    t.ok(existsSync('/var/lib/snf-dispatcher/dispatcher.sqlite'), 'the default database was created');
  });

  t.test('remove, then purge, leaves nothing behind', async (t) => {
    const remove = run('apt-get', ['remove', '-y', '-q', ...PACKAGES]);
    t.equal(remove.status, 0, output(remove));
    for (const pkg of PACKAGES) t.equal(installedStatus(pkg), 'rc', `${pkg}: removed, configuration kept`);
    t.notOk(existsSync('/usr/bin/snf-ganeti-eventd'), 'programs gone');
    t.notOk(existsSync('/usr/lib/snf-dispatcher'), 'the dispatcher tree gone');
    t.notOk(existsSync('/etc/ganeti/hooks/instance-add-post.d/snf-ganeti-hook'), 'hook links gone');
    t.ok(existsSync('/etc/default/snf-cyclades-gtools'), 'the conffile stays until purge');

    const purge = run('apt-get', ['purge', '-y', '-q', ...PACKAGES]);
    t.equal(purge.status, 0, output(purge));
    for (const pkg of PACKAGES) t.match(installedStatus(pkg), /^(un|not known)/, `${pkg}: purged`);
    for (const path of [
      '/etc/default/snf-cyclades-gtools',
      '/var/lib/snf-cyclades-gtools',
      '/var/spool/snf-cyclades-gtools',
      '/var/lib/snf-dispatcher',
      GTOOLS_LIB,
      '/lib/systemd/system/snf-ganeti-eventd.service',
      '/lib/systemd/system/snf-dispatcher.service',
      '/etc/systemd/system/multi-user.target.wants/snf-ganeti-eventd.service',
      '/etc/systemd/system/multi-user.target.wants/snf-dispatcher.service',
    ]) {
      t.notOk(existsSync(path), `${path} gone`);
    }
    const audit = run('dpkg', ['--audit']);
    t.equal(audit.stdout.trim(), '', 'dpkg --audit: nothing half-installed');
  });
}
