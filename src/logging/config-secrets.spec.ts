import { loadConfig } from '../config/config.loader';
import { TempDir } from '../../test/support/temp-files';
import { configSecrets } from './config-secrets';

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
