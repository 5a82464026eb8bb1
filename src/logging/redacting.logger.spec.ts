import { Logger } from '@nestjs/common';
import { loadConfig } from '../config/config.loader';
import { TempDir } from '../../test/support/temp-files';
import { configSecrets } from './config-secrets';
import { RedactingLogger } from './redacting.logger';

const SLACK_TOKEN = 'xoxb-logspec-1111-2222';
const SMTP_PASSWORD = 'smtp-logspec-pw-3333';
const NESTED_PASSWORD = 'nested-logspec-pw-4444';
const ADMIN_KEY = 'admin-logspec-key-5555-6666';
const API_URL_TOKEN = 'url-logspec-tok-7777';

function loadWithSecrets(tmp: TempDir) {
  const executor = tmp.write(
    'executor.yml',
    [
      'application:',
      '  connectors:',
      '    - type: slack',
      '      configs:',
      `        token: "${SLACK_TOKEN}"`,
      `        apiUrl: "http://bot:${API_URL_TOKEN}@127.0.0.1:1/api"`,
      '    - type: email',
      '      configs:',
      '        username: "karya@example.org"',
      `        password: "${SMTP_PASSWORD}"`,
      '        smtp:',
      '          mail.smtp.host: "127.0.0.1"',
      `          mail: { smtp: { password: "${NESTED_PASSWORD}" } }`,
      '',
    ].join('\n'),
  );
  return loadConfig({ KARYA_EXECUTOR_CONFIG_PATH: executor, KARYA_ADMIN_KEY: ADMIN_KEY }).config;
}

describe('configSecrets', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it('collects connector credentials (nested maps and URLs too) and the admin key', () => {
    const secrets = configSecrets(loadWithSecrets(tmp));
    for (const secret of [SLACK_TOKEN, SMTP_PASSWORD, NESTED_PASSWORD, ADMIN_KEY, API_URL_TOKEN]) expect(secrets).toContain(secret);
    expect(secrets).not.toContain('karya@example.org');
  });

  it("leaves out the repository's public defaults, which would garble every line", () => {
    const secrets = configSecrets(loadConfig({}).config);
    expect(secrets).not.toContain('guest');
    expect(secrets).not.toContain('karya');
  });
});

describe('RedactingLogger', () => {
  const tmp = new TempDir();
  let written: string[];
  let restore: Array<() => void>;

  beforeEach(() => {
    written = [];
    restore = [];
    for (const stream of [process.stdout, process.stderr]) {
      const spy = jest.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
        written.push(String(chunk));
        return true;
      });
      restore.push(() => spy.mockRestore());
    }
    Logger.overrideLogger(new RedactingLogger(configSecrets(loadWithSecrets(tmp))));
  });

  afterEach(() => restore.forEach((r) => r()));
  afterAll(() => tmp.cleanup());

  const output = () => written.join('');

  it("scrubs the config's secrets from every level, through Nest's static Logger as any class uses it", () => {
    const logger = new Logger('Spec');
    logger.log(`slack token ${SLACK_TOKEN}`);
    logger.warn(`smtp said: 535 bad password ${SMTP_PASSWORD}`);
    logger.error(`admin key ${ADMIN_KEY} rejected`);
    logger.debug(`nested ${NESTED_PASSWORD}`);
    const out = output();
    for (const secret of [SLACK_TOKEN, SMTP_PASSWORD, ADMIN_KEY, NESTED_PASSWORD]) expect(out).not.toContain(secret);
    expect(out.match(/\[REDACTED\]/g)).toHaveLength(4);
    expect(out).toContain('[Spec]');
  });

  it('scrubs stack traces and logged objects, and credentials recognisable by their shape', () => {
    const logger = new Logger('HTTP');
    const err = new Error(`boom with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig and ${SLACK_TOKEN}`);
    logger.error(err.message, err.stack);
    logger.log({ headers: { 'X-Api-Key': 'k-logspec-8888', accept: 'text/plain' } });
    logger.warn('connect amqp://karya:rabbit-logspec-9999@mq:5672 failed');
    const out = output();
    for (const secret of [SLACK_TOKEN, 'eyJhbGciOiJIUzI1NiJ9', 'k-logspec-8888', 'rabbit-logspec-9999']) expect(out).not.toContain(secret);
    expect(out).toContain('text/plain');
    expect(out).toContain('at '); // the stack itself is still printed
  });
});
