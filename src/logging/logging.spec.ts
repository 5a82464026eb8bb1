import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import { loadConfig } from '../config/config.loader';
import { TempDir } from '../../test/support/temp-files';
import { configSecrets } from './config-secrets';
import { createLogging, KaryaLogging } from './logging';
import { loggedError, LOGGED_ERROR_LENGTH, rawTaskLogFields, taskLogFields } from './task-log';

const SLACK_TOKEN = 'xoxb-pinospec-1111-2222';
const SMTP_PASSWORD = 'smtp-pinospec-pw-"3333\\';
const ADMIN_KEY = 'admin-pinospec-key-5555-6666';

/** Collects what the logger writes, as a pipe (not a terminal) or as a terminal. */
function sink(isTTY = false): { write(chunk: string): boolean; isTTY: boolean; lines(): string[]; text(): string } {
  const chunks: string[] = [];
  return {
    isTTY,
    write: (chunk: string) => {
      chunks.push(String(chunk));
      return true;
    },
    text: () => chunks.join(''),
    lines: () => chunks.join('').split('\n').filter((l) => l !== ''),
  };
}

function parsed(lines: string[]): Array<Record<string, unknown>> {
  return lines.map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`not a JSON line: ${line}`);
    }
  });
}

describe('createLogging', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  const secretsOfConfig = () => {
    const executor = tmp.write(
      'executor.yml',
      [
        'application:',
        '  connectors:',
        '    - type: slack',
        '      configs:',
        `        token: "${SLACK_TOKEN}"`,
        '    - type: email',
        '      configs:',
        '        username: "karya@example.org"',
        `        password: '${SMTP_PASSWORD}'`,
        '',
      ].join('\n'),
    );
    return configSecrets(loadConfig({ KARYA_EXECUTOR_CONFIG_PATH: executor, KARYA_ADMIN_KEY: ADMIN_KEY }).config);
  };

  // nestjs-pino keeps one root logger per process: this is the one whose Nest bridge is checked.
  const out = sink();
  let restore: () => void = () => undefined;
  let logging: KaryaLogging;
  beforeAll(() => {
    logging = createLogging({ level: 'debug', secrets: secretsOfConfig(), out });
    Logger.overrideLogger(logging.nest);
    restore = () => Logger.overrideLogger(new ConsoleLogger());
  });
  afterAll(() => restore());

  it("writes JSON lines through Nest's Logger, with the context and an object's fields at the top level", () => {
    const before = out.lines().length;
    const logger = new Logger('Executor');
    logger.warn(taskLogFields({ planId: 'p-1', taskId: 't-1', attempt: 2, dispatchSeq: 7 }), 'attempt 2 failed');
    logger.log('plain text');
    logger.debug(rawTaskLogFields({ planId: 'p-2', taskId: 42, attempt: 1 }), 'from a raw message');
    const lines = parsed(out.lines().slice(before));
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', context: 'Executor', msg: 'attempt 2 failed', plan_id: 'p-1', task_id: 't-1', attempt: 2, dispatch_seq: 7 }),
      expect.objectContaining({ level: 'info', context: 'Executor', msg: 'plain text' }),
      expect.objectContaining({ level: 'debug', plan_id: 'p-2', task_id: null, attempt: 1, dispatch_seq: null }),
    ]);
    expect(typeof lines[0].time).toBe('string');
  });

  it('scrubs config secrets (JSON-escaped too), credential shapes, stacks and header fields from every line', () => {
    const before = out.lines().length;
    const logger = new Logger('HTTP');
    logger.log(`slack token ${SLACK_TOKEN} and admin ${ADMIN_KEY}`);
    logger.warn(`smtp said 535 for ${SMTP_PASSWORD}`);
    const err = new Error(`boom with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig and ${SLACK_TOKEN}`);
    logger.error(err.message, err.stack);
    logger.log({ headers: { 'x-api-key': 'k-pinospec-8888', accept: 'text/plain', authorization: 'Basic QWxhZGRpbjpvcGVu' } }, 'headers');
    logger.warn('connect amqp://karya:rabbit-pinospec-9999@mq:5672 failed');
    logger.debug(`nested ${SLACK_TOKEN}`);
    Logger.error(`static ${ADMIN_KEY}`, 'Static');
    const text = out.lines().slice(before).join('\n');
    expect(parsed(out.lines().slice(before)).map((l) => l.level)).toEqual(['info', 'warn', 'error', 'info', 'warn', 'debug', 'error']);
    for (const secret of [SLACK_TOKEN, ADMIN_KEY, SMTP_PASSWORD, JSON.stringify(SMTP_PASSWORD).slice(1, -1), 'eyJhbGciOiJIUzI1NiJ9', 'k-pinospec-8888', 'QWxhZGRpbjpvcGVu', 'rabbit-pinospec-9999']) {
      expect({ secret, found: text.includes(secret) }).toEqual({ secret, found: false });
    }
    expect(text).toContain('text/plain');
    expect(text).toContain('[REDACTED]');
    expect(text).toContain('at '); // the stack is still there
  });

  it('logs a request once with its id and echoes the id, without a per-request logging context', async () => {
    // AsyncLocalStorage.run (what runInContext does) turns on promise hooks for the whole process.
    const run = jest.spyOn(AsyncLocalStorage.prototype, 'run');
    const enterWith = jest.spyOn(AsyncLocalStorage.prototype, 'enterWith');
    const runInContext = jest.spyOn(PinoLogger.prototype, 'runInContext');
    const server = createServer((req, res) =>
      logging.http(req, res, () => {
        new Logger('Handler').warn('inside the request');
        res.statusCode = req.url?.startsWith('/health') ? 200 : 418;
        res.end();
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const before = out.lines().length;
      const echoed = await fetch(`${base}/v1/thing?api_key=querysecret-1234`, { headers: { 'x-request-id': 'spec-id-1', authorization: 'Bearer hdr-secret-5678' } });
      const generated = await fetch(`${base}/health`, { headers: { 'x-request-id': 'a'.repeat(129) } });
      expect(echoed.headers.get('x-request-id')).toBe('spec-id-1');
      expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      await new Promise((r) => setImmediate(r));
      const lines = parsed(out.lines().slice(before));
      expect(lines).toEqual([
        expect.objectContaining({ level: 'warn', context: 'Handler', msg: 'inside the request' }),
        expect.objectContaining({ level: 'info', request_id: 'spec-id-1', method: 'GET', path: '/v1/thing', status: 418, duration_ms: expect.any(Number), msg: 'GET /v1/thing 418' }),
        expect.objectContaining({ level: 'warn', context: 'Handler' }),
        // /health is debug (this logger's level), not info.
        expect.objectContaining({ level: 'debug', request_id: generated.headers.get('x-request-id'), path: '/health', status: 200 }),
      ]);
      // A line logged while serving names its request only when it says so (the exception filter does).
      expect(lines.filter((l) => l.context === 'Handler').map((l) => 'request_id' in l)).toEqual([false, false]);
      expect(Object.keys(lines[1]).sort()).toEqual(['duration_ms', 'hostname', 'level', 'method', 'msg', 'path', 'pid', 'request_id', 'status', 'time']);
      const text = out.lines().slice(before).join('\n');
      expect(text).not.toContain('querysecret-1234');
      expect(text).not.toContain('hdr-secret-5678');
      expect(run).not.toHaveBeenCalled();
      expect(enterWith).not.toHaveBeenCalled();
      expect(runInContext).not.toHaveBeenCalled();
    } finally {
      run.mockRestore();
      enterWith.mockRestore();
      runInContext.mockRestore();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('logs a request the client abandoned as aborted, with no status', async () => {
    let reached = false;
    const server = createServer((req, res) => logging.http(req, res, () => (reached = true)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const until = async (done: () => boolean, what: string) => {
      for (const deadline = Date.now() + 5_000; !done(); await new Promise((r) => setTimeout(r, 5))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      }
    };
    try {
      const before = out.lines().length;
      const abort = new AbortController();
      const pending = fetch(`${base}/v1/slow`, { headers: { 'x-request-id': 'spec-aborted' }, signal: abort.signal }).catch(() => undefined);
      await until(() => reached, 'the request to reach the handler');
      abort.abort();
      await pending;
      await until(() => out.lines().length > before, 'the request line');
      expect(parsed(out.lines().slice(before))).toEqual([
        expect.objectContaining({ level: 'info', request_id: 'spec-aborted', method: 'GET', path: '/v1/slow', status: null, aborted: true, msg: 'GET /v1/slow aborted' }),
      ]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('scrubs config secrets from a request path; at a level without request lines only sets the id', () => {
    const call = (l: KaryaLogging, url: string, headers: Record<string, string> = {}) => {
      const req = Object.assign(new IncomingMessage(null as never), { method: 'GET', url, headers });
      const res = new ServerResponse(req);
      let nexted = false;
      l.http(req, res, () => (nexted = true));
      res.statusCode = 404;
      res.emit('finish');
      return { nexted, id: res.getHeader('X-Request-Id'), finishListeners: res.listenerCount('finish') };
    };
    const before = out.lines().length;
    call(logging, `/v1/${ADMIN_KEY}/x?q=1`);
    const [line] = parsed(out.lines().slice(before));
    expect(line).toEqual(expect.objectContaining({ path: '/v1/[REDACTED]/x', status: 404 }));

    const quiet = sink();
    const warnOnly = createLogging({ level: 'warn', secrets: [], out: quiet });
    expect(call(warnOnly, '/v1/plan', { 'x-request-id': 'quiet-1' })).toEqual({ nexted: true, id: 'quiet-1', finishListeners: 0 });
    expect(quiet.lines()).toEqual([]);
  });

  it('writes nothing below its level', () => {
    const quiet = sink();
    const { root } = createLogging({ level: 'warn', secrets: [], out: quiet });
    root.info('not this');
    root.debug('nor this');
    root.warn('this');
    expect(parsed(quiet.lines()).map((l) => [l.level, l.msg])).toEqual([['warn', 'this']]);
  });

  it('on a terminal writes readable lines through pino-pretty, still scrubbed', () => {
    const tty = sink(true);
    const { root } = createLogging({ level: 'info', secrets: [ADMIN_KEY], out: tty });
    root.info({ plan_id: 'p-9' }, `readable ${ADMIN_KEY}`);
    const text = tty.text();
    expect(() => JSON.parse(tty.lines()[0])).toThrow();
    expect(text).toMatch(/INFO.*readable \[REDACTED\]/);
    expect(text).toContain('plan_id');
    expect(text).not.toContain(ADMIN_KEY);
  });

  it('on a terminal without pino-pretty (the production image) falls back to JSON lines', () => {
    const tty = sink(true);
    const { root } = createLogging({ level: 'info', secrets: [], out: tty, loadPretty: () => undefined });
    root.info('still json');
    expect(parsed(tty.lines())).toEqual([expect.objectContaining({ level: 'info', msg: 'still json' })]);
  });
});

describe('loggedError', () => {
  it('cuts a long failure text and says how long it was', () => {
    const text = `REST call failed --- [500 | http://127.0.0.1/x] ${'b'.repeat(10_000)}`;
    const logged = loggedError(text);
    expect(logged.length).toBeLessThan(LOGGED_ERROR_LENGTH + 40);
    expect(logged.startsWith(text.slice(0, LOGGED_ERROR_LENGTH))).toBe(true);
    expect(logged).toContain(`[${text.length} chars]`);
    expect(loggedError('short')).toBe('short');
  });

  it('drops the query strings of the URLs it quotes, and webhook path secrets', () => {
    expect(loggedError('REST call failed --- [403 | https://acct.blob.core.windows.net/c/b?sv=2024&sig=SaSsIgNaTuRe%2B1] denied')).toBe(
      'REST call failed --- [403 | https://acct.blob.core.windows.net/c/b?…] denied',
    );
    expect(loggedError('POST https://hooks.slack.com/services/T01/B02/slackPathSecret99 failed')).toBe('POST https://hooks.slack.com/services/T01/B02/… failed');
    expect(loggedError('to https://discord.com/api/webhooks/123/discordPathSecret99?wait=true: 500')).toBe('to https://discord.com/api/webhooks/123/…?… 500');
    expect(loggedError('what? no url here?')).toBe('what? no url here?');
  });
});
