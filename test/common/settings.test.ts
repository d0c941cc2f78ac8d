import t from 'tap';
import {
  commonSettings,
  envName,
  flagName,
  loadSettings,
  parseSettingsFile,
  SettingsError,
  type SettingSpecs,
} from '../../src/common/settings.js';
import { redactText } from '../../src/common/redact.js';

const specs = {
  ...commonSettings,
  heartbeatInterval: { kind: 'number', describe: 'seconds', default: 30, check: (v: number) => (v > 0 ? undefined : 'must be positive') },
  strict: { kind: 'boolean', describe: 'strict', default: false },
  queueDir: { kind: 'string', describe: 'dir', default: '/var/lib/ganeti/queue' },
} satisfies SettingSpecs;

const noFile = () => undefined;
const file = (text: string) => (path: string) => (path === '/etc/default/snf-cyclades-gtools' ? text : undefined);

t.test('names: flag and environment variable', async (t) => {
  t.equal(flagName('amqpUrl'), 'amqp-url');
  t.equal(envName('amqpUrl'), 'SNF_GTOOLS_AMQP_URL');
  t.equal(envName('heartbeatInterval'), 'SNF_GTOOLS_HEARTBEAT_INTERVAL');
});

t.test('defaults when no source gives a value', async (t) => {
  const s = await loadSettings(specs, { argv: [], env: {}, readFile: noFile, scriptName: 'x' });
  t.same(s.amqpUrl, ['amqp://guest:guest@127.0.0.1:5672/']);
  t.equal(s.heartbeatInterval, 30);
  t.equal(s.strict, false);
  t.equal(s.settingsFile, '/etc/default/snf-cyclades-gtools');
});

t.test('precedence: flag > env > file > default', async (t) => {
  const fileText = 'SNF_GTOOLS_QUEUE_DIR=/from/file\nSNF_GTOOLS_PREFIX=filep\nSNF_GTOOLS_HEARTBEAT_INTERVAL=5\n';
  const env = { SNF_GTOOLS_PREFIX: 'envp', SNF_GTOOLS_HEARTBEAT_INTERVAL: '7' };
  const s = await loadSettings(specs, { argv: ['--heartbeat-interval', '9'], env, readFile: file(fileText), scriptName: 'x' });
  t.equal(s.heartbeatInterval, 9, 'flag wins over env and file');
  t.equal(s.prefix, 'envp', 'env wins over file');
  t.equal(s.queueDir, '/from/file', 'file wins over default');
});

t.test('lists: repeated flags and comma-separated variables', async (t) => {
  const a = await loadSettings(specs, {
    argv: ['--amqp-url', 'amqp://a:1@h1', '--amqp-url', 'amqps://b:2@h2:5671'],
    env: {},
    readFile: noFile,
    scriptName: 'x',
  });
  t.same(a.amqpUrl, ['amqp://a:1@h1', 'amqps://b:2@h2:5671']);
  const b = await loadSettings(specs, { argv: [], env: { SNF_GTOOLS_AMQP_URL: 'amqp://h1, amqp://h2' }, readFile: noFile, scriptName: 'x' });
  t.same(b.amqpUrl, ['amqp://h1', 'amqp://h2']);
});

t.test('validation errors name the setting, its source and the problem', async (t) => {
  await t.rejects(loadSettings(specs, { argv: ['--heartbeat-interval', 'soon'], env: {}, readFile: noFile, scriptName: 'x' }),
    { name: 'SettingsError', message: /setting heartbeat-interval \(flag --heartbeat-interval\): "soon" is not a number/ },
  );
  await t.rejects(loadSettings(specs, { argv: [], env: { SNF_GTOOLS_HEARTBEAT_INTERVAL: '-1' }, readFile: noFile, scriptName: 'x' }),
    { message: /setting heartbeat-interval \(environment SNF_GTOOLS_HEARTBEAT_INTERVAL\): must be positive/ },
  );
  const urlError = await loadSettings(specs, { argv: [], env: {}, readFile: file('SNF_GTOOLS_AMQP_URL=http://u:secret@h\n'), scriptName: 'x' }).then(
    () => undefined,
    (err: unknown) => err,
  );
  t.type(urlError, SettingsError);
  t.match((urlError as Error).message, /setting amqp-url \(SNF_GTOOLS_AMQP_URL in \/etc\/default\/snf-cyclades-gtools\)/);
  t.match((urlError as Error).message, /not an amqp:\/\/ or amqps:\/\/ URL/);
  t.notMatch((urlError as Error).message, /secret/, 'the password is not echoed');
  await t.rejects(loadSettings(specs, { argv: [], env: { SNF_GTOOLS_STRICT: 'maybe' }, readFile: noFile, scriptName: 'x' }), {
    message: /strict.*not a boolean/,
  });
  await t.rejects(loadSettings(specs, { argv: [], env: { SNF_GTOOLS_LOG_LEVEL: 'loud' }, readFile: noFile, scriptName: 'x' }), {
    message: /log-level.*not a log level/,
  });
  await t.rejects(loadSettings(specs, { argv: ['--bogus'], env: {}, readFile: noFile, scriptName: 'x' }), {
    name: 'SettingsError',
    message: /Unknown argument: bogus/,
  });
});

t.test('settings file path is overridable, and a named file must exist', async (t) => {
  const read = (p: string) => (p === '/tmp/other' ? 'SNF_GTOOLS_PREFIX=other\n' : undefined);
  const s = await loadSettings(specs, { argv: ['--settings-file', '/tmp/other'], env: {}, readFile: read, scriptName: 'x' });
  t.equal(s.prefix, 'other');
  const e = await loadSettings(specs, { argv: [], env: { SNF_GTOOLS_SETTINGS_FILE: '/tmp/other' }, readFile: read, scriptName: 'x' });
  t.equal(e.prefix, 'other');
  await t.rejects(loadSettings(specs, { argv: ['--settings-file', '/nope'], env: {}, readFile: read, scriptName: 'x' }), {
    message: /settings file \/nope does not exist/,
  });
});

t.test('settings file syntax', async (t) => {
  const m = parseSettingsFile(
    '# comment\n\nexport SNF_GTOOLS_A="quoted value"\nSNF_GTOOLS_B=\'single\'\nSNF_GTOOLS_C = spaced\nSNF_GTOOLS_D=\n',
    'f',
  );
  t.same(Object.fromEntries(m), { SNF_GTOOLS_A: 'quoted value', SNF_GTOOLS_B: 'single', SNF_GTOOLS_C: 'spaced', SNF_GTOOLS_D: '' });
  t.throws(() => parseSettingsFile('SNF_GTOOLS_A=1\nthis is not a setting\n', '/etc/x'), {
    message: /^\/etc\/x:2: expected KEY=value/,
  });
  t.throws(() => parseSettingsFile('\u0000\u0001binary', '/etc/x'), { message: /\/etc\/x:1/ });
});

t.test('redactText hides passwords only', async (t) => {
  t.equal(redactText('amqp://user:s3cret@host:5672/vh'), 'amqp://user:***@host:5672/vh');
  t.equal(redactText('amqps://host:5671'), 'amqps://host:5671');
  t.equal(redactText('postgres://u:p@db/x'), 'postgres://u:***@db/x');
});
