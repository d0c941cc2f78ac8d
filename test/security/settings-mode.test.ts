// A settings file readable by every user (it holds broker passwords) makes every program that reads
// it warn, naming the file and the fix; the same file at mode 0640 makes none warn. Real processes:
// eventd and the dispatcher as installed entry points (through tsx), the hook and the progress monitor
// compiled, as Ganeti and snf-image run them. The hook warns on stderr and still does its work.

import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { worldReadableWarning } from '../../src/common/settings.js';
import { ROOT } from '../helpers/eventd.js';
import { isolatedEnv, runCli } from '../fixtures/dispatcher/spawn.js';
import { buildPrograms, ganetiEnv } from '../hooks/build.js';
import { loadFixtureEnv } from '../hooks/fixtures.js';

const { hook, monitor } = buildPrograms();
/** Nobody listens on port 1: the programs start, warn, and fail to connect, which is all we need. */
const NO_BROKER = 'amqp://gtools:not-a-real-password@127.0.0.1:1/';

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'snf-settings-mode-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A settings file at `mode` (chmod, whatever the umask). */
function settingsFile(dir: string, mode: number, lines: string[]): string {
  const file = join(dir, 'snf-cyclades-gtools');
  writeFileSync(file, lines.join('\n') + '\n');
  chmodSync(file, mode);
  return file;
}

interface Run {
  code: number | null;
  output: string;
}

/** Runs a program to its exit, or until `enough(output)` and then SIGTERM (for the daemons). */
function runProgram(command: string, args: string[], env: NodeJS.ProcessEnv, enough?: (output: string) => boolean, input = ''): Promise<Run> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  const take = (d: Buffer) => {
    output += d.toString();
    if (enough?.(output) && child.exitCode === null) child.kill('SIGTERM');
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  child.stdin.on('error', () => {});
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    }),
  );
}

const warns = (output: string, file: string) => output.includes(`settings file ${file} is readable by every user`) && output.includes(`chmod 640 ${file}`);
const baseEnv = (file: string): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', SNF_GTOOLS_SETTINGS_FILE: file });

t.test('the decision: regular files with the other-read bit only', async (t) => {
  t.match(worldReadableWarning('/etc/default/x', 0o100644, true), /^settings file \/etc\/default\/x is readable by every user \(mode 0644\) .*: chmod 640 \/etc\/default\/x$/);
  t.match(worldReadableWarning('/f', 0o100604, true), /mode 0604/);
  t.equal(worldReadableWarning('/f', 0o100640, true), undefined, '0640');
  t.equal(worldReadableWarning('/f', 0o100600, true), undefined, '0600');
  t.equal(worldReadableWarning('/dev/null', 0o020666, false), undefined, 'a device such as /dev/null');
});

t.test('snf-ganeti-eventd', async (t) => {
  for (const [mode, expected] of [[0o644, true], [0o640, false]] as const) {
    const dir = scratch(t);
    const file = settingsFile(dir, mode, [`SNF_GTOOLS_AMQP_URL=${NO_BROKER}`]);
    const queue = join(dir, 'queue');
    const args = ['--import', 'tsx', join(ROOT, 'src/eventd/main.ts'), '--queue-dir', queue, '--ganeti-data-dir', dir, '--state-dir', join(dir, 'state'), '--outbox-dir', join(dir, 'outbox'), '--node-name', 'n1'];
    const r = await runProgram(process.execPath, args, baseEnv(file), (out) => out.includes('cannot connect to AMQP broker'));
    t.equal(warns(r.output, file), expected, `mode ${mode.toString(8)}: ${expected ? 'a warning' : 'no warning'}`);
    if (expected) t.match(r.output, /"level":"warn".*"settingsFile":/, 'a warn-level log line with the file');
    t.notOk(r.output.includes('not-a-real-password'), 'the password from the file is not in the output');
  }
});

t.test('snf-dispatcher (an operator command: the warning on stderr, the result on stdout)', async (t) => {
  for (const [mode, expected] of [[0o604, true], [0o600, false]] as const) {
    const dir = scratch(t);
    const file = settingsFile(dir, mode, [`SNF_GTOOLS_DB_URL=${join(dir, 'd.sqlite')}`]);
    const r = await runCli(['servers', '--json'], isolatedEnv(t, { SNF_GTOOLS_SETTINGS_FILE: file }));
    t.equal(r.code, 0, 'the command still runs');
    t.same(JSON.parse(r.stdout), [], 'stdout holds only its result');
    t.equal(warns(r.stderr, file), expected, `mode ${mode.toString(8)}: ${expected ? 'a warning' : 'no warning'}`);
  }
});

t.test('snf-progress-monitor', async (t) => {
  for (const [mode, expected] of [[0o644, true], [0o640, false]] as const) {
    const dir = scratch(t);
    const file = settingsFile(dir, mode, [`SNF_GTOOLS_AMQP_URL=${NO_BROKER}`, `SNF_GTOOLS_OUTBOX_DIR=${join(dir, 'outbox')}`]);
    const r = await runProgram(monitor, ['snf-1'], baseEnv(file), undefined, '{"type":"image-info","messages":["hello"]}\n');
    t.equal(r.code, 0, 'the monitor finishes normally (its message waits in the outbox)');
    t.equal(warns(r.output, file), expected, `mode ${mode.toString(8)}: ${expected ? 'a warning' : 'no warning'}`);
  }
});

t.test('snf-ganeti-hook: warns on stderr and still queues its message', async (t) => {
  for (const [mode, expected] of [[0o644, true], [0o640, false]] as const) {
    const dir = scratch(t);
    const outbox = join(dir, 'outbox');
    const file = settingsFile(dir, mode, [`SNF_GTOOLS_OUTBOX_DIR=${outbox}`, 'SNF_GTOOLS_NODE_NAME=node1.example.test', `SNF_GTOOLS_AMQP_URL=${NO_BROKER}`]);
    const env = ganetiEnv(loadFixtureEnv('07-instance-add-post'), { SNF_GTOOLS_SETTINGS_FILE: file });
    const r = await runProgram(process.execPath, [hook], env);
    t.equal(r.code, 0, 'the hook does not fail');
    t.equal(readdirSync(outbox).filter((n) => n.endsWith('.msgs')).length, 1, 'its message is in the outbox');
    if (expected) t.equal(r.output, `snf-ganeti-hook: warning: ${worldReadableWarning(file, 0o100000 | mode, true)}\n`, 'one warning line, on stderr');
    else t.equal(r.output, '', 'nothing to say');
  }
});
