// The sd_notify adapter against a real AF_UNIX datagram socket (a python3 listener), through the real
// systemd-notify program.

import t from 'tap';
import { Notifier } from '../../src/common/notify.js';
import { startNotifySocket } from '../packaging/helpers/notify-socket.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('without NOTIFY_SOCKET nothing is sent and nothing fails', async (t) => {
  const errors: Error[] = [];
  const n = new Notifier({ env: { WATCHDOG_USEC: '100000' }, command: '/nonexistent/systemd-notify', onError: (e) => errors.push(e) });
  t.equal(n.enabled, false);
  await n.ready('up');
  await n.status('busy');
  await n.watchdog();
  await n.stopping();
  const stop = n.startWatchdog(() => true);
  await sleep(150);
  stop();
  t.same(errors, [], 'the helper was never run');
});

t.test('READY, STATUS, WATCHDOG and STOPPING arrive in order', async (t) => {
  const sock = await startNotifySocket();
  t.teardown(() => sock.close());
  const n = new Notifier({ env: { NOTIFY_SOCKET: sock.path } });
  t.equal(n.enabled, true);
  t.equal(n.watchdogIntervalMs, undefined, 'no watchdog without WATCHDOG_USEC');
  void n.ready('master of cluster1: publishing jobs');
  void n.status('line one\nline two');
  void n.watchdog();
  await n.stopping('stopping: saving the record');
  const got = sock.messages.map((m) => m.fields);
  t.same(got, [
    { READY: '1', STATUS: 'master of cluster1: publishing jobs' },
    { STATUS: 'line one line two' },
    { WATCHDOG: '1' },
    { STOPPING: '1', STATUS: 'stopping: saving the record' },
  ]);
  // The listener reports barriers over its own pipe, which can trail the last message by a moment.
  for (const deadline = Date.now() + 2000; sock.barriers() < 4 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
  t.equal(sock.barriers(), 4, 'each message is followed by a barrier: the helper waits for the receiver');
});

t.test('startWatchdog pings at half of WATCHDOG_USEC while healthy, and only then', async (t) => {
  const sock = await startNotifySocket();
  t.teardown(() => sock.close());
  let healthy = true;
  const n = new Notifier({ env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' } });
  t.equal(n.watchdogIntervalMs, 200);
  const stop = n.startWatchdog(() => healthy);
  await sock.waitFor((m) => m.fields.WATCHDOG === '1', 3000);
  const first = sock.messages.length;
  await sleep(1000);
  const pings = sock.messages.slice(first).filter((m) => m.fields.WATCHDOG === '1').length;
  t.ok(pings >= 3 && pings <= 6, `about one ping per 200 ms (${pings} in 1 s)`);
  t.notOk(sock.messages.some((m) => m.fields.READY), 'no READY before ready()');

  healthy = false;
  await sleep(300);
  await n.flush();
  const before = sock.messages.length;
  await sleep(700);
  t.equal(sock.messages.length, before, 'no ping while unhealthy');

  healthy = true;
  await n.ready('ok');
  const afterReady = sock.messages.length;
  await sock.waitFor((m) => m.fields.WATCHDOG === '1', 3000, afterReady);
  t.equal(sock.messages.slice(afterReady).find((m) => m.fields.WATCHDOG)?.fields.READY, '1', 'pings repeat READY=1 once ready');
  stop();
  await n.flush();
  const stopped = sock.messages.length;
  await sleep(500);
  t.equal(sock.messages.length, stopped, 'no ping after stop');
});

t.test('the watchdog timer does not keep the process alive', async (t) => {
  const sock = await startNotifySocket();
  t.teardown(() => sock.close());
  const { spawnSync } = await import('node:child_process');
  const module = new URL('../../src/common/notify.ts', import.meta.url).pathname;
  const script = `import { startWatchdog } from ${JSON.stringify(module)}; startWatchdog(() => true);`;
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '200000' },
    timeout: 20_000,
    encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  t.ok(Date.now() - started < 15_000, 'exited by itself');
});

t.test('WATCHDOG_PID naming another process disables the watchdog', async (t) => {
  const n = new Notifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, pid: 4242 });
  t.equal(n.watchdogIntervalMs, undefined);
  const m = new Notifier({ env: { NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '4242' }, pid: 4242 });
  t.equal(m.watchdogIntervalMs, 500);
});

t.test('a failing helper is reported, not thrown', async (t) => {
  const errors: Error[] = [];
  const n = new Notifier({ env: { NOTIFY_SOCKET: '/nonexistent/dir/notify.sock' }, onError: (e) => errors.push(e) });
  await n.ready('up');
  await n.status('still here');
  t.equal(errors.length, 2);
  t.match(errors[0]?.message, /systemd-notify READY=1/);
});
