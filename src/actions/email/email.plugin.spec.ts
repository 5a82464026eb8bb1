import { Logger } from '@nestjs/common';
import { simpleParser, type ParsedMail } from 'mailparser';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionResult } from '../action-plugin';
import { EMAIL_FOOTER_HTML, EmailPlugin, htmlToText, resolveEmailSettings } from './email.plugin';
import { closedPort, startTcpServer } from '../../../test/support/tcp-server';

// ---------------------------------------------------------------- helpers

const USERNAME = 'karya-bot@example.com';
const PASSWORD = 'S3cr3t-p@ss!';
const SECRET_FORMS = [
  PASSWORD,
  Buffer.from(PASSWORD).toString('base64'),
  Buffer.from(`\u0000${USERNAME}\u0000${PASSWORD}`).toString('base64'),
];

interface Received {
  mailFrom: string | undefined;
  rcptTo: string[];
  /** The user onAuth accepted, if the client logged in. */
  user: string | undefined;
  secure: boolean;
  mail: ParsedMail;
}

interface TestSmtpServer {
  port: number;
  received: Received[];
  /** Every AUTH attempt: method, username, password. */
  auths: Array<{ method: string; username: string | null | undefined; password: string | null | undefined }>;
  /** SMTP sessions opened so far. */
  connections: () => number;
  /** SMTP sessions currently open. */
  open: () => number;
  close: () => Promise<void>;
}

/** A real `smtp-server` on 127.0.0.1:0 that parses every accepted message with mailparser. */
async function startSmtpServer(options: SMTPServerOptions = {}): Promise<TestSmtpServer> {
  const received: Received[] = [];
  const auths: TestSmtpServer['auths'] = [];
  let connections = 0;
  let open = 0;
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    closeTimeout: 1000,
    onConnect(_session, callback) {
      connections++;
      open++;
      callback();
    },
    onClose() {
      open--;
    },
    onAuth(auth, _session, callback) {
      auths.push({ method: auth.method, username: auth.username, password: auth.password });
      if (auth.username === USERNAME && auth.password === PASSWORD) return callback(null, { user: auth.username });
      const err = new Error('Invalid username or password') as Error & { responseCode: number };
      err.responseCode = 535;
      callback(err);
    },
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          const from = session.envelope.mailFrom;
          received.push({
            mailFrom: from ? (from.address ?? undefined) : undefined,
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            user: typeof session.user === 'string' ? session.user : undefined,
            secure: session.secure,
            mail,
          });
          callback();
        },
        (err: Error) => callback(err),
      );
    },
    ...options,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    auths,
    connections: () => connections,
    open: () => open,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function smtpFor(port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { 'mail.smtp.host': '127.0.0.1', 'mail.smtp.port': String(port), ...extra };
}

const context: ActionContext = { planId: 'plan-123', taskId: 'task-456', attempt: 2 };

function emailAction(overrides: JsonObject = {}): JsonObject {
  return {
    type: ACTION_TYPE.Email,
    recipient: 'someone@example.org',
    subject: 'Nightly report',
    message: 'Hello from <b>Karya</b> &amp; friends',
    ...overrides,
  };
}

function failureText(result: ActionResult): string {
  if (result.ok) throw new Error('expected a failure, got ok');
  return result.error;
}

function expectNoSecrets(text: string): void {
  for (const secret of SECRET_FORMS) expect(text).not.toContain(secret);
}

function header(mail: ParsedMail, name: string): string | undefined {
  const value = mail.headers.get(name.toLowerCase());
  return typeof value === 'string' ? value : undefined;
}

// ---------------------------------------------------------------- tests

describe('EmailPlugin', () => {
  let plugin: EmailPlugin | undefined;
  const servers: Array<{ close: () => Promise<void> }> = [];
  let loggerError: jest.SpyInstance;

  beforeEach(() => {
    loggerError = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(async () => {
    await plugin?.close();
    plugin = undefined;
    await Promise.all(servers.splice(0).map((s) => s.close()));
    loggerError.mockRestore();
  });

  async function smtp(options: SMTPServerOptions = {}): Promise<TestSmtpServer> {
    const server = await startSmtpServer(options);
    servers.push(server);
    return server;
  }

  async function tcp(onSocket: (socket: net.Socket) => void): Promise<{ port: number }> {
    const server = await startTcpServer(onSocket);
    servers.push(server);
    return server;
  }

  function makePlugin(configs: Record<string, unknown>): EmailPlugin {
    plugin = new EmailPlugin(configs);
    return plugin;
  }

  it('declares the EmailRequest action type and the email connector', () => {
    const p = makePlugin({ username: USERNAME, smtp: smtpFor(25) });
    expect(p.actionType).toBe('karya.core.entities.Action.EmailRequest');
    expect(p.connector).toBe('email');
  });

  describe('delivery to a real SMTP server', () => {
    it('sends the HTML message with the footer, a text alternative and the X-Karya headers', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: smtpFor(server.port) });

      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });

      expect(server.received).toHaveLength(1);
      const [got] = server.received;
      expect(got.rcptTo).toEqual(['someone@example.org']);
      expect(got.mailFrom).toBe(USERNAME);
      expect(got.user).toBeUndefined(); // mail.smtp.auth not set → no login
      expect(got.mail.from?.value[0]?.address).toBe(USERNAME);
      expect(got.mail.to && !Array.isArray(got.mail.to) ? got.mail.to.value[0]?.address : undefined).toBe('someone@example.org');
      expect(got.mail.subject).toBe('Nightly report');
      // Raw HTML: the user's markup is kept as markup.
      expect(got.mail.html).toContain('<p>Hello from <b>Karya</b> &amp; friends</p>');
      expect(got.mail.html).toContain(EMAIL_FOOTER_HTML);
      expect(got.mail.html).toContain('Sent via <a href="https://github.com/Saumya-Bhatt/karya">Karya</a>');
      expect(got.mail.text).toContain('Hello from Karya & friends');
      expect(got.mail.text).toContain('Sent via Karya (https://github.com/Saumya-Bhatt/karya)');
      expect(header(got.mail, 'X-Karya-Plan-Id')).toBe('plan-123');
      expect(header(got.mail, 'X-Karya-Task-Id')).toBe('task-456');
      expect(header(got.mail, 'X-Karya-Attempt')).toBe('2');
      expect(header(got.mail, 'X-Karya-Trigger')).toBeUndefined();
    });

    it('adds the hook headers when the email runs as a hook', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });
      const hookContext: ActionContext = {
        ...context,
        attempt: 1,
        hook: { trigger: 'ON_FAILURE', taskStatus: 'FAILURE', key: 'task-456:hook:0' },
      };
      await expect(p.run(emailAction(), hookContext)).resolves.toEqual({ ok: true });
      const [got] = server.received;
      expect(header(got.mail, 'X-Karya-Trigger')).toBe('ON_FAILURE');
      expect(header(got.mail, 'X-Karya-Task-Status')).toBe('FAILURE');
      expect(header(got.mail, 'X-Karya-Attempt')).toBe('1');
    });

    it('logs in with username/password when mail.smtp.auth is "true", and uses configs.from when set', async () => {
      const server = await smtp({ disabledCommands: ['STARTTLS'], authOptional: false, allowInsecureAuth: true });
      const p = makePlugin({
        username: USERNAME,
        password: PASSWORD,
        from: 'Karya Alerts <alerts@example.com>',
        smtp: smtpFor(server.port, { 'mail.smtp.auth': 'true', 'mail.smtp.starttls.enable': 'true' }),
      });

      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });

      expect(server.auths).toHaveLength(1);
      expect(server.auths[0]).toMatchObject({ username: USERNAME, password: PASSWORD });
      expect(['PLAIN', 'LOGIN']).toContain(server.auths[0].method);
      const [got] = server.received;
      expect(got.user).toBe(USERNAME);
      expect(got.mailFrom).toBe('alerts@example.com');
      expect(got.mail.from?.value[0]).toMatchObject({ name: 'Karya Alerts', address: 'alerts@example.com' });
    });

    it('accepts YAML booleans/numbers and a nested smtp map', async () => {
      const server = await smtp({ disabledCommands: ['STARTTLS'], authOptional: false, allowInsecureAuth: true });
      const p = makePlugin({
        username: USERNAME,
        password: PASSWORD,
        smtp: { mail: { smtp: { host: '127.0.0.1', port: server.port, auth: true } } },
      });
      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });
      expect(server.received[0].user).toBe(USERNAME);
    });

    it('reuses one pooled connection for consecutive emails and caps parallel ones', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });

      await expect(p.run(emailAction({ subject: 'one' }), context)).resolves.toEqual({ ok: true });
      await expect(p.run(emailAction({ subject: 'two' }), context)).resolves.toEqual({ ok: true });
      expect(server.connections()).toBe(1);

      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => p.run(emailAction({ subject: `burst ${i}` }), context)),
      );
      expect(results.every((r) => r.ok)).toBe(true);
      expect(server.received).toHaveLength(14);
      expect(server.connections()).toBeLessThanOrEqual(5);
    });

    it('upgrades with STARTTLS (mail.smtp.starttls.required) when the certificate is trusted', async () => {
      // smtp-server's built-in self-signed certificate: only accepted through mail.smtp.ssl.trust.
      const server = await smtp({ disabledCommands: [], authOptional: false });
      const p = makePlugin({
        username: USERNAME,
        password: PASSWORD,
        smtp: smtpFor(server.port, {
          'mail.smtp.auth': 'true',
          'mail.smtp.starttls.enable': 'true',
          'mail.smtp.starttls.required': 'true',
          'mail.smtp.ssl.trust': '127.0.0.1',
        }),
      });
      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });
      expect(server.received[0].secure).toBe(true);
      expect(server.received[0].user).toBe(USERNAME);
    });

    it('verifies the server certificate unless mail.smtp.ssl.trust says otherwise', async () => {
      const server = await smtp({ disabledCommands: ['AUTH'] });
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: smtpFor(server.port) });
      const error = failureText(await p.run(emailAction(), context));
      expect(error).toMatch(/^Email failed --- error : .*(certificate|self.signed)/i);
      expect(server.received).toHaveLength(0);
    });

    it('speaks implicit TLS with mail.smtp.ssl.enable', async () => {
      const server = await smtp({ secure: true, disabledCommands: ['STARTTLS', 'AUTH'] });
      const p = makePlugin({
        username: USERNAME,
        smtp: smtpFor(server.port, { 'mail.smtp.ssl.enable': 'true', 'mail.smtp.ssl.trust': '*' }),
      });
      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });
      expect(server.received[0].secure).toBe(true);
    });
  });

  describe('failures', () => {
    it('reports a recipient the server rejects', async () => {
      const server = await smtp({
        onRcptTo(address, _session, callback) {
          if (address.address === 'nobody@example.org') {
            const err = new Error('5.1.1 <nobody@example.org>: Recipient address rejected') as Error & { responseCode: number };
            err.responseCode = 550;
            return callback(err);
          }
          callback();
        },
      });
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: smtpFor(server.port) });

      const error = failureText(await p.run(emailAction({ recipient: 'nobody@example.org' }), context));
      expect(error).toMatch(/^Email failed --- error : /);
      expect(error).toContain('550');
      expect(error).toContain('nobody@example.org');
      expectNoSecrets(error);
      expect(server.received).toHaveLength(0);

      // The pooled connection stays usable after a refused envelope.
      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });
    });

    it('reports a partly rejected recipient list', async () => {
      const server = await smtp({
        onRcptTo(address, _session, callback) {
          if (address.address !== 'nobody@example.org') return callback();
          const err = new Error('no such user') as Error & { responseCode: number };
          err.responseCode = 550;
          callback(err);
        },
      });
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });
      const error = failureText(await p.run(emailAction({ recipient: 'someone@example.org, nobody@example.org' }), context));
      expect(error).toBe(
        `Email failed --- error : recipient(s) rejected: nobody@example.org; delivered to someone@example.org (smtp 127.0.0.1:${server.port})`,
      );
    });

    it('reports failed authentication without leaking the password', async () => {
      const server = await smtp({ disabledCommands: ['STARTTLS'], authOptional: false, allowInsecureAuth: true });
      const wrong = 'Wr0ng-p@ssw0rd';
      const p = makePlugin({ username: USERNAME, password: wrong, smtp: smtpFor(server.port, { 'mail.smtp.auth': 'true' }) });

      const error = failureText(await p.run(emailAction(), context));
      expect(error).toMatch(/^Email failed --- error : .*535/);
      expect(server.auths[0]?.password).toBe(wrong); // it was really sent …
      for (const secret of [wrong, Buffer.from(wrong).toString('base64'), Buffer.from(`\u0000${USERNAME}\u0000${wrong}`).toString('base64')]) {
        expect(error).not.toContain(secret); // … and never echoed
      }
      expect(server.received).toHaveLength(0);
    });

    it('reports a server that requires AUTH when mail.smtp.auth is off', async () => {
      const server = await smtp({ disabledCommands: ['STARTTLS'], authOptional: false, allowInsecureAuth: true });
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: smtpFor(server.port) });
      const error = failureText(await p.run(emailAction(), context));
      expect(error).toMatch(/^Email failed --- error : .*530/);
      expect(server.auths).toHaveLength(0);
    });

    it('fails when mail.smtp.starttls.required and the server offers no STARTTLS', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port, { 'mail.smtp.starttls.required': 'true' }) });
      const error = failureText(await p.run(emailAction(), context));
      expect(error).toMatch(/^Email failed --- error : .*STARTTLS/i);
      expect(server.received).toHaveLength(0);
    });

    it('fails fast when the server is down', async () => {
      const port = await closedPort();
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: smtpFor(port, { 'mail.smtp.auth': 'true' }) });
      const started = Date.now();
      const error = failureText(await p.run(emailAction(), context));
      expect(Date.now() - started).toBeLessThan(5000);
      expect(error).toMatch(/^Email failed --- error : .*ECONNREFUSED/);
      expect(error).toContain(`127.0.0.1:${port}`);
      expectNoSecrets(error);
    });

    it('gives up on a server that never greets (mail.smtp.timeout)', async () => {
      const server = await tcp(() => undefined); // accepts, then silence
      const p = makePlugin({
        username: USERNAME,
        smtp: smtpFor(server.port, { 'mail.smtp.timeout': '300', 'mail.smtp.connectiontimeout': '2000' }),
      });
      const started = Date.now();
      const error = failureText(await p.run(emailAction(), context));
      expect(Date.now() - started).toBeLessThan(3000);
      expect(error).toMatch(/^Email failed --- error : .*(greeting|timeout|timed out)/i);
    });

    it('ends at the send deadline against a server that trickles its replies', async () => {
      // Speaks just enough SMTP, then answers the end of DATA with one continuation line every 50 ms, forever:
      // the socket is never idle, so no socket timeout fires; only the send deadline can end the attempt.
      const timers = new Set<NodeJS.Timeout>();
      const server = await tcp((socket) => {
        let inData = false;
        let buffer = '';
        socket.write('220 trickle ESMTP\r\n');
        socket.on('close', () => timers.forEach((t) => clearInterval(t)));
        socket.on('data', (chunk: Buffer) => {
          buffer += chunk.toString('latin1');
          for (;;) {
            if (inData) {
              const end = buffer.indexOf('\r\n.\r\n');
              if (end < 0) return;
              buffer = buffer.slice(end + 5);
              inData = false;
              const t = setInterval(() => socket.write('250-still thinking\r\n'), 50);
              timers.add(t);
              continue;
            }
            const eol = buffer.indexOf('\r\n');
            if (eol < 0) return;
            const line = buffer.slice(0, eol).toUpperCase();
            buffer = buffer.slice(eol + 2);
            if (line.startsWith('EHLO')) socket.write('250-trickle\r\n250 8BITMIME\r\n');
            else if (line.startsWith('DATA')) {
              inData = true;
              socket.write('354 go ahead\r\n');
            } else if (line.startsWith('QUIT')) socket.end('221 bye\r\n');
            else socket.write('250 ok\r\n');
          }
        });
      });
      const p = makePlugin({
        username: USERNAME,
        smtp: smtpFor(server.port, { 'mail.smtp.connectiontimeout': '200', 'mail.smtp.timeout': '300' }),
      });
      const started = Date.now();
      const error = failureText(await p.run(emailAction(), context));
      const elapsed = Date.now() - started;
      // deadline = connectiontimeout + 3 × timeout = 1100 ms
      expect(error).toBe(`Email failed --- error : timed out after 1100 ms (smtp 127.0.0.1:${server.port})`);
      expect(elapsed).toBeGreaterThanOrEqual(1000);
      expect(elapsed).toBeLessThan(3000);
    });

    it('rejects malformed actions without contacting the server', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });
      const cases: Array<[JsonObject, string]> = [
        [emailAction({ recipient: null }), 'recipient is required'],
        [emailAction({ recipient: '  ' }), 'recipient is required'],
        [emailAction({ subject: 42 }), 'subject must be a string'],
        [emailAction({ message: null }), 'message is required'],
      ];
      for (const [action, reason] of cases) {
        await expect(p.run(action, context)).resolves.toEqual({
          ok: false,
          error: `Email failed --- error : invalid EmailRequest: ${reason}`,
        });
      }
      expect(server.connections()).toBe(0);
    });
  });

  describe('configuration problems', () => {
    it('a missing host fails every action with a clear reason instead of crashing', async () => {
      const p = makePlugin({ username: USERNAME, password: PASSWORD, smtp: { 'mail.smtp.port': '587', 'mail.smtp.auth': 'true' } });
      const result = await p.run(emailAction(), context);
      expect(result).toEqual({
        ok: false,
        error: 'Email failed --- error : email connector misconfigured: smtp mail.smtp.host is not set',
      });
      expect(loggerError).toHaveBeenCalledTimes(1);
      expect(String(loggerError.mock.calls[0][0])).toContain('mail.smtp.host is not set');
      await expect(p.close()).resolves.toBeUndefined();
    });

    it.each<[string, Record<string, unknown>, string]>([
      ['no smtp map at all', { username: USERNAME }, 'smtp mail.smtp.host is not set'],
      ['a blank host', { username: USERNAME, smtp: { 'mail.smtp.host': ' ' } }, 'smtp mail.smtp.host is not set'],
      ['a non-numeric port', { username: USERNAME, smtp: smtpFor(0, { 'mail.smtp.port': 'abc' }) }, 'smtp mail.smtp.port must be an integer from 1 to 65535, got "abc"'],
      ['a bad boolean', { username: USERNAME, smtp: smtpFor(25, { 'mail.smtp.auth': 'yes' }) }, 'smtp mail.smtp.auth must be "true" or "false", got "yes"'],
      ['a zero timeout', { username: USERNAME, smtp: smtpFor(25, { 'mail.smtp.timeout': '0' }) }, 'smtp mail.smtp.timeout must be an integer from 1 to 2147483647, got "0"'],
      ['auth without a password', { username: USERNAME, smtp: smtpFor(25, { 'mail.smtp.auth': 'true' }) }, 'smtp mail.smtp.auth is true but configs.password is not set'],
      ['no From address', { password: PASSWORD, smtp: smtpFor(25) }, 'no From address: set configs.from or configs.username'],
      ['a non-string password', { username: USERNAME, password: 12345678, smtp: smtpFor(25) }, 'configs.password must be a string'],
      ['smtp not a map', { username: USERNAME, smtp: 'smtp.gmail.com' }, 'configs.smtp must be a map of mail.smtp.* properties'],
    ])('%s', async (_name, configs, reason) => {
      const p = makePlugin(configs);
      await expect(p.run(emailAction(), context)).resolves.toEqual({
        ok: false,
        error: `Email failed --- error : email connector misconfigured: ${reason}`,
      });
    });

    it('maps the original sample executor.yml (Gmail) onto nodemailer options', () => {
      const settings = resolveEmailSettings({
        username: 'your-email@gmail.com',
        password: 'your-app-password',
        smtp: {
          'mail.smtp.auth': 'true',
          'mail.smtp.starttls.enable': 'true',
          'mail.smtp.host': 'smtp.gmail.com',
          'mail.smtp.port': '587',
        },
      });
      expect(settings.from).toBe('your-email@gmail.com');
      expect(settings.target).toBe('smtp.gmail.com:587');
      expect(settings.sendDeadlineMs).toBe(40_000);
      expect(settings.transport).toMatchObject({
        pool: true,
        host: 'smtp.gmail.com',
        port: 587,
        secure: false,
        requireTLS: false,
        auth: { user: 'your-email@gmail.com', pass: 'your-app-password' },
        connectionTimeout: 10_000,
        greetingTimeout: 10_000,
        socketTimeout: 10_000,
      });
      expect(settings.transport.ignoreTLS).toBeUndefined(); // STARTTLS whenever offered
      expect(settings.transport.tls).toBeUndefined(); // certificates verified
    });

    it('follows JavaMail port defaults and maps ssl / timeouts / EHLO name', () => {
      expect(resolveEmailSettings({ username: 'a@b.c', smtp: { 'mail.smtp.host': 'h' } }).transport).toMatchObject({ port: 25, secure: false });
      const ssl = resolveEmailSettings({
        username: 'a@b.c',
        smtp: {
          'mail.smtp.host': 'h',
          'mail.smtp.ssl.enable': 'TRUE',
          'mail.smtp.connectiontimeout': '5000',
          'mail.smtp.timeout': 2000,
          'mail.smtp.localhost': 'executor-1.internal',
          'mail.smtp.ssl.trust': 'other h',
        },
      });
      expect(ssl.transport).toMatchObject({
        port: 465,
        secure: true,
        connectionTimeout: 5000,
        dnsTimeout: 5000,
        greetingTimeout: 2000,
        socketTimeout: 2000,
        name: 'executor-1.internal',
        tls: { rejectUnauthorized: false },
      });
      expect(ssl.transport.auth).toBeUndefined(); // mail.smtp.auth not set → no login
      expect(ssl.sendDeadlineMs).toBe(11_000);
    });
  });

  describe('close()', () => {
    it('closes the pooled connections, is idempotent, and later actions fail cleanly', async () => {
      const server = await smtp();
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });
      await expect(p.run(emailAction(), context)).resolves.toEqual({ ok: true });
      expect(server.open()).toBe(1);

      await Promise.all([p.close(), p.close()]);
      for (let i = 0; i < 50 && server.open() > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(server.open()).toBe(0);

      await expect(p.run(emailAction(), context)).resolves.toEqual({
        ok: false,
        error: 'Email failed --- error : the email connector is closed (executor shutting down)',
      });
    });

    it('waits for an email in flight', async () => {
      let release: (() => void) | undefined;
      const server = await smtp({
        onRcptTo(_address, _session, callback) {
          release = () => callback();
        },
      });
      const p = makePlugin({ username: USERNAME, smtp: smtpFor(server.port) });
      const running = p.run(emailAction(), context);
      for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 10));
      expect(release).toBeDefined();

      let closed = false;
      const closing = p.close().then(() => (closed = true));
      await new Promise((r) => setTimeout(r, 50));
      expect(closed).toBe(false);
      release?.();
      await expect(running).resolves.toEqual({ ok: true });
      await closing;
      expect(server.received).toHaveLength(1);
    });
  });
});

describe('htmlToText', () => {
  it('renders the message markup as plain text', () => {
    expect(htmlToText('Line one<br>Line <b>two</b> &lt;3 &#x1F600;')).toBe('Line one\nLine two <3 😀');
    expect(htmlToText('See <a href="https://x.test/a">the report</a>')).toBe('See the report (https://x.test/a)');
    expect(htmlToText('<style>p{}</style><p>a</p><p>b</p>')).toBe('a\nb');
  });
});
