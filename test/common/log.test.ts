import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/common/log.js';
import { redactText } from '../../src/common/redact.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, stream };
}

t.test('redactText replaces every URL password', async (t) => {
  t.equal(
    redactText('tried amqp://a:pw1@h1:5672 and amqps://b:pw2@h2/ then'),
    'tried amqp://a:***@h1:5672 and amqps://b:***@h2/ then',
  );
});

t.test('JSON lines with level, name, component; passwords redacted everywhere', async (t) => {
  const { lines, stream } = capture();
  const log = createLogger({ level: 'debug', name: 'snf-test', destination: stream }).child({ component: 'publisher' });
  const err = new Error('connect ECONNREFUSED amqp://guest:topsecret@127.0.0.1:5672');
  log.info({ url: 'amqp://guest:topsecret@h', nested: { urls: ['amqps://x:topsecret@y'] }, password: 'topsecret' }, 'connecting to amqp://guest:topsecret@h');
  log.error({ err }, 'failed');
  log.debug('debug line');
  t.equal(lines.length, 3);
  for (const line of lines) t.notMatch(line, /topsecret/, 'no password in ' + line.slice(0, 60));
  const first = JSON.parse(lines[0]!);
  t.equal(first.level, 'info');
  t.equal(first.name, 'snf-test');
  t.equal(first.component, 'publisher');
  t.equal(first.msg, 'connecting to amqp://guest:***@h');
  t.equal(first.url, 'amqp://guest:***@h');
  t.same(first.nested.urls, ['amqps://x:***@y']);
  t.equal(first.password, '***');
  const second = JSON.parse(lines[1]!);
  t.match(second.err.message, /amqp:\/\/guest:\*\*\*@127/);
  t.match(second.err.stack, /amqp:\/\/guest:\*\*\*@127/);
});

t.test('level filters', async (t) => {
  const { lines, stream } = capture();
  const log = createLogger({ level: 'warn', name: 'x', destination: stream });
  log.info('hidden');
  log.warn('shown');
  t.equal(lines.length, 1);
});
