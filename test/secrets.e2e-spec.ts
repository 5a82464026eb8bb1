import * as net from 'node:net';
import { waitFor } from './support/http-sink';
import { freePort, KaryaProcess } from './support/karya-process';
import { startHttpServer, TestServer } from './support/recording-http-server';
import { startTcpServer, TestTcpServer } from './support/tcp-server';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Secrets never reach a stored error text or the logs. A real `node dist/main.js` (embedded default stack,
 * full default logging) runs actions carrying distinctive credentials against local targets that echo every
 * credential they were sent; then the error logs the API returns and the process's whole stdout and stderr
 * are searched for each of them.
 */
const SECRETS = {
  bearer: 'bearer-e2e-7Qx2Lm9Zp4',
  apiKey: 'apikey-e2e-3Vb8Nc1Kd6',
  queryKey: 'querykey-e2e-5Hs7Jw2Ty9',
  basicPassword: 'basicpw-e2e-8Gf4Rt6Yu1',
  okBearer: 'okbearer-e2e-2Pq9Wd5Ex3',
  hookKey: 'hookkey-e2e-6Zn3Ma8Lo2',
  slackToken: 'xoxb-e2e-4Kc7Vn1Bq8',
  smtpPassword: 'smtppw-e2e-9Jh2Gf5Ds7',
  adminKey: 'adminkey-e2e-1Xw6Ce3Rv0Tb',
} as const;
const BASIC = `Basic ${Buffer.from(`alice:${SECRETS.basicPassword}`).toString('base64')}`;

/** Everything a secret may be echoed as: itself, and base64 for the Basic and SMTP credentials. */
const FORBIDDEN = [
  ...Object.values(SECRETS),
  BASIC.slice('Basic '.length),
  Buffer.from(SECRETS.smtpPassword).toString('base64'),
  Buffer.from(`\u0000karya-e2e@example.org\u0000${SECRETS.smtpPassword}`).toString('base64'),
];

/** An SMTP server that offers AUTH and rejects every login, quoting the credentials it got (decoded). */
function startEchoingSmtp(): Promise<TestTcpServer> {
  const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8').replace(/\0/g, ' ');
  return startTcpServer((socket: net.Socket) => {
    let pending = '';
    let state: 'command' | 'plain' | 'login-user' | 'login-pass' = 'command';
    let user = '';
    const reply = (line: string) => socket.write(`${line}\r\n`);
    reply('220 fake.smtp ESMTP');
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (state === 'plain') {
          state = 'command';
          reply(`535 5.7.8 login rejected for ${decode(line)} (${line})`);
        } else if (state === 'login-user') {
          user = decode(line);
          state = 'login-pass';
          reply('334 UGFzc3dvcmQ6');
        } else if (state === 'login-pass') {
          state = 'command';
          reply(`535 5.7.8 login rejected for ${user} with password ${decode(line)} (${line})`);
        } else if (/^EHLO /i.test(line)) {
          reply('250-fake.smtp');
          reply('250 AUTH PLAIN LOGIN');
        } else if (/^HELO /i.test(line)) {
          reply('250 fake.smtp');
        } else if (/^AUTH PLAIN \S/i.test(line)) {
          const b64 = line.slice('AUTH PLAIN '.length);
          reply(`535 5.7.8 login rejected for ${decode(b64)} (${b64})`);
        } else if (/^AUTH PLAIN$/i.test(line)) {
          state = 'plain';
          reply('334 ');
        } else if (/^AUTH LOGIN$/i.test(line)) {
          state = 'login-user';
          reply('334 VXNlcm5hbWU6');
        } else if (/^QUIT$/i.test(line)) {
          reply('221 bye');
          socket.end();
        } else {
          reply(/^RSET$/i.test(line) ? '250 OK' : '502 5.5.2 not implemented');
        }
      }
    });
  });
}

describe('secrets in a real process', () => {
  const tmp = new TempDir();
  let karya: KaryaProcess;
  let port: number;
  /** 500 with the URL and every request header in the body (a debug error page), except /ok: 200. */
  let echo: TestServer;
  /** Slack-like: HTTP 200, `ok: false`, quoting the Authorization header it got. */
  let slack: TestServer;
  let smtp: TestTcpServer;

  beforeAll(async () => {
    echo = await startHttpServer((req, res) => {
      if (req.url.startsWith('/ok')) return void res.writeHead(200).end('fine');
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, headers: req.headers }));
    });
    slack = await startHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({ ok: false, error: 'invalid_auth', response_metadata: { messages: [`rejected ${req.headers.authorization ?? ''}`] } }),
      );
    });
    smtp = await startEchoingSmtp();

    const executorYml = tmp.write(
      'executor.yml',
      [
        'application:',
        '  connectors:',
        '    - type: restapi',
        '    - type: slack',
        '      configs:',
        `        token: "${SECRETS.slackToken}"`,
        `        apiUrl: "http://${slack.origin}/api"`,
        '    - type: email',
        '      configs:',
        '        username: "karya-e2e@example.org"',
        `        password: "${SECRETS.smtpPassword}"`,
        '        smtp:',
        '          mail.smtp.auth: "true"',
        '          mail.smtp.host: "127.0.0.1"',
        `          mail.smtp.port: "${smtp.port}"`,
        '          mail.smtp.connectiontimeout: "3000"',
        '          mail.smtp.timeout: "3000"',
        '',
      ].join('\n'),
    );
    const serverYml = tmp.write('server.yml', 'application:\n  host: 127.0.0.1\n  auth:\n    mode: none\n');
    port = await freePort();
    karya = new KaryaProcess(
      {
        PORT: String(port),
        KARYA_EXECUTOR_CONFIG_PATH: executorYml,
        KARYA_SERVER_CONFIG_PATH: serverYml,
        KARYA_ADMIN_KEY: SECRETS.adminKey,
      },
      tmp.path,
    ).start();
    await karya.waitForHealthy(port);
  });

  afterAll(async () => {
    await karya?.kill();
    await Promise.all([echo?.close(), slack?.close(), smtp?.close()]);
    tmp.cleanup();
  });

  async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  }

  interface Summary {
    plan: { status: string };
    tasks: Array<{ status: string }>;
    error_logs: Array<{ error: string; type: { type: string } }>;
  }

  const summary = async (id: string) => (await api('GET', `/v1/plan/${id}/summary`)).json as Summary;

  it('stores failure texts without the credentials the calls sent, and never logs any secret', async () => {
    const user = await api('POST', '/v1/user', { name: 'secrets' });
    expect(user.status).toBe(200);
    const userId = (user.json as { id: string }).id;

    const submit = async (action: Record<string, unknown>, hooks: unknown[] = []) => {
      const res = await api('POST', '/v1/plan', {
        user_id: userId,
        description: 'secrets',
        period_time: 'PT0.1S',
        plan_type: { type: T.OneTime },
        max_failure_retry: 0,
        action,
        hooks,
      });
      expect(res.status).toBe(200);
      return (res.json as { id: string }).id;
    };

    const restFailure = await submit(
      {
        type: T.Rest,
        base_url: `${echo.origin}/debug?api_key=${SECRETS.queryKey}&page=1`,
        method: 'POST',
        headers: { 'content-type': 'application/json', Authorization: `Bearer ${SECRETS.bearer}`, 'X-Api-Key': SECRETS.apiKey },
        body: { type: T.JsonBody, json_string: '{"x":1}' },
      },
      [{ trigger: 'ON_FAILURE', max_retry: 0, action: { type: T.Rest, base_url: `${echo.origin}/hook`, headers: { 'x-api-key': SECRETS.hookKey } } }],
    );
    const basicFailure = await submit({ type: T.Rest, base_url: `${echo.origin}/basic`, headers: { Authorization: BASIC } });
    const restSuccess = await submit({ type: T.Rest, base_url: `${echo.origin}/ok`, headers: { Authorization: `Bearer ${SECRETS.okBearer}` } });
    const slackFailure = await submit({
      type: T.Slack,
      channel: '#alerts',
      message: JSON.stringify([{ type: 'section', text: { type: 'mrkdwn', text: 'hello' } }]),
    });
    const emailFailure = await submit({ type: T.Email, recipient: 'someone@example.org', subject: 'hi', message: 'hello' });

    const failures: Record<string, number> = { [restFailure]: 2, [basicFailure]: 1, [slackFailure]: 1, [emailFailure]: 1 };
    await waitFor(
      async () => {
        for (const [id, count] of Object.entries(failures)) if ((await summary(id)).error_logs.length < count) return false;
        return (await summary(restSuccess)).plan.status === 'COMPLETED';
      },
      30_000,
      'every failure recorded and the successful plan completed',
    );

    // The targets really got the credentials: the test would prove nothing otherwise.
    const seen = JSON.stringify([echo.requests, slack.requests]);
    for (const secret of [SECRETS.bearer, SECRETS.apiKey, SECRETS.queryKey, SECRETS.okBearer, SECRETS.hookKey, SECRETS.slackToken]) {
      expect(seen).toContain(secret);
    }

    const errors: Record<string, string[]> = {};
    for (const id of Object.keys(failures)) errors[id] = (await summary(id)).error_logs.map((e) => e.error);
    for (const text of Object.values(errors).flat()) {
      for (const secret of FORBIDDEN) expect(text).not.toContain(secret);
      expect(text).toContain('[REDACTED]');
    }
    expect(errors[restFailure]).toEqual([
      expect.stringMatching(/^REST call failed --- \[500 \| http:\/\/127\.0\.0\.1:\d+\/debug\?api_key=\[REDACTED\]&page=1\] \| /),
      expect.stringMatching(/^REST call failed --- \[500 \| http:\/\/127\.0\.0\.1:\d+\/hook\] \| .*"x-api-key":"\[REDACTED\]"/),
    ]);
    expect(errors[restFailure][0]).toContain('"authorization":"[REDACTED]"');
    expect(errors[basicFailure][0]).toContain('"authorization":"[REDACTED]"');
    expect(errors[slackFailure][0]).toBe('Slack API error: invalid_auth (rejected [REDACTED])');
    expect(errors[emailFailure][0]).toMatch(/^Email failed --- error : .*535 5\.7\.8 login rejected/);

    // Logs: everything the process wrote, shutdown included.
    karya.signal('SIGTERM');
    expect((await karya.waitForExit(15_000)).code).toBe(0);
    const output = karya.stdout + karya.stderr;
    expect(output).toContain('Karya up');
    for (const secret of FORBIDDEN) expect({ secret, found: output.includes(secret) }).toEqual({ secret, found: false });
  });
});

describe('start-up failures in a real process', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  const startFailing = async (env: Record<string, string>): Promise<string> => {
    const p = new KaryaProcess({ PORT: String(await freePort()), ...env }, tmp.path).start();
    try {
      expect((await p.waitForExit(30_000)).code).toBe(1);
      return p.stdout + p.stderr;
    } finally {
      await p.kill();
    }
  };

  it('a config problem about an address with credentials does not print them', async () => {
    const secret = 'rabbitpw-e2e-4Dk8Ls2Qm6';
    const providers = tmp.write('providers.yml', `queue:\n  provider: rabbitmq\n  properties:\n    clusterNodes: ["karya:${secret}@mq:5672"]\n`);
    const output = await startFailing({ KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_ADMIN_KEY: SECRETS.adminKey });
    expect(output).toContain('queue.properties.clusterNodes[0]: expected host:port, got "(hidden)@mq:5672"');
    expect(output).not.toContain(secret);
    expect(output).not.toContain(SECRETS.adminKey);
  });

  it('a connector that cannot start does not print the token in its URL, nor the other secrets', async () => {
    const urlToken = 'urltoken-e2e-7Fy3Hu9Io5';
    const executor = tmp.write(
      'executor-bad.yml',
      [
        'application:',
        '  connectors:',
        '    - type: slack',
        '      configs:',
        `        token: "${SECRETS.slackToken}"`,
        `        apiUrl: "http://127.0.0.1:9/api?token=${urlToken}"`,
        '',
      ].join('\n'),
    );
    const output = await startFailing({ KARYA_EXECUTOR_CONFIG_PATH: executor, KARYA_ADMIN_KEY: SECRETS.adminKey });
    expect(output).toContain('Karya failed to start');
    expect(output).toContain('configs.apiUrl must be an http(s) URL without query, got "http://127.0.0.1:9/api?token=[REDACTED]"');
    for (const secret of [urlToken, SECRETS.slackToken, SECRETS.adminKey]) expect(output).not.toContain(secret);
  });
});
