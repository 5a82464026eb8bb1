import { HttpSink, waitFor } from './support/http-sink';
import { freePort, KaryaProcess } from './support/karya-process';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Structured logs of a real `node dist/main.js` with stdout piped (so JSON lines, as a log shipper reads
 * them): one line per HTTP request with its X-Request-Id, pipeline lines carrying the task's fields, nothing
 * per successful task, no secret anywhere, and LOG_LEVEL honoured.
 */
const ADMIN_KEY = 'adminkey-logs-e2e-8Jd3Kq7Wm2';
const SECRETS = {
  bearer: 's3cr3t-logs-bearer-4Fh8Tz1Xc6',
  apiKey: 's3cr3t-logs-apikey-9Lp2Vb5Nq3',
  hookKey: 's3cr3t-logs-hookkey-6Yr4Ge8Us1',
  query: 's3cr3t-logs-query-2Mn7Ow3Ia5',
  okBearer: 's3cr3t-logs-okbearer-1Bv5Cx9Zl4',
  /** An Azure SAS signature in the failing target's URL: quoted in the failure text, never in a log line. */
  sas: 's3cr3t-logs-sas-7Qe2Rk5Hd8',
} as const;
const EXECUTOR_YML = 'application:\n  retry:\n    initialDelay: 100\n    multiplier: 1\n    jitter: 0\n';
const SERVER_YML = 'application:\n  host: 127.0.0.1\n  auth:\n    mode: apikey\n';

type Line = Record<string, unknown>;

/** The complete lines written so far, parsed; for waiting on a line while the process runs. */
function linesSoFar(stdout: string): Line[] {
  return jsonLines(stdout.slice(0, stdout.lastIndexOf('\n') + 1));
}

/** Every stdout line as JSON; a line that is not JSON fails the test, naming it. */
function jsonLines(stdout: string): Line[] {
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((line) => {
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        return parsed as Line;
      } catch {
        throw new Error(`stdout line is not a JSON object: ${line}`);
      }
    });
}

interface Sent {
  method: string;
  path: string;
  status: number;
  requestId: string | null;
}

class Client {
  readonly sent: Sent[] = [];
  constructor(private readonly port: number) {}

  async call(method: string, path: string, opts: { body?: unknown; key?: string | null; requestId?: string } = {}): Promise<{ status: number; json: Record<string, unknown>; requestId: string | null }> {
    const headers: Record<string, string> = {};
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? ADMIN_KEY}`;
    if (opts.requestId !== undefined) headers['x-request-id'] = opts.requestId;
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // plain-text errors
    }
    const requestId = res.headers.get('x-request-id');
    this.sent.push({ method, path: path.split('?')[0], status: res.status, requestId });
    return { status: res.status, json, requestId };
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('structured logs of a real process', () => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let info: KaryaProcess;
  let warn: KaryaProcess;
  let infoApi: Client;
  let warnApi: Client;

  const start = async (env: Record<string, string>): Promise<[KaryaProcess, Client]> => {
    const port = await freePort();
    const proc = new KaryaProcess(
      {
        PORT: String(port),
        KARYA_ADMIN_KEY: ADMIN_KEY,
        KARYA_SERVER_CONFIG_PATH: tmp.write(`server-${port}.yml`, SERVER_YML),
        KARYA_EXECUTOR_CONFIG_PATH: tmp.write(`executor-${port}.yml`, EXECUTOR_YML),
        KARYA_PROVIDERS_CONFIG_PATH: tmp.write(`providers-${port}.yml`, 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
        ...env,
      },
      tmp.path,
    ).start();
    await proc.waitForHealthy(port);
    return [proc, new Client(port)];
  };

  beforeAll(async () => {
    await sink.start();
    // Side by side: each spends most of its start-up in PGlite.
    [[info, infoApi], [warn, warnApi]] = await Promise.all([start({}), start({ LOG_LEVEL: 'warn' })]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([info?.kill(), warn?.kill()]);
    await sink.stop();
    tmp.cleanup();
  });

  const rest = (path: string, headers: Record<string, string>) => ({ type: T.Rest, base_url: `${sink.baseUrl}${path}`, method: 'POST', headers });
  const submit = async (api: Client, userId: string, body: Record<string, unknown>): Promise<string> => {
    const res = await api.call('POST', '/v1/plan', {
      body: { user_id: userId, description: 'logs', period_time: 'PT0.1S', plan_type: { type: T.OneTime }, ...body },
    });
    expect(res.status).toBe(200);
    return res.json.id as string;
  };
  const newUser = async (api: Client, name: string): Promise<string> => {
    const res = await api.call('POST', '/v1/user', { body: { name }, requestId: `req-${name}` });
    expect(res.status).toBe(200);
    return res.json.id as string;
  };
  const failingPlan = (api: Client, userId: string, retries: number) =>
    submit(api, userId, {
      max_failure_retry: retries,
      action: rest(`/fail/task?sv=2024&sig=${SECRETS.sas}`, { Authorization: `Bearer ${SECRETS.bearer}`, 'X-Api-Key': SECRETS.apiKey }),
      hooks: [{ trigger: 'ON_FAILURE', max_retry: 0, action: rest('/fail/hook', { 'x-api-key': SECRETS.hookKey }) }],
    });
  const stopped = async (proc: KaryaProcess): Promise<Line[]> => {
    proc.signal('SIGTERM');
    expect((await proc.waitForExit(15_000)).code).toBe(0);
    return jsonLines(proc.stdout);
  };
  const expectNoSecret = (proc: KaryaProcess, extra: string[] = []) => {
    const output = proc.stdout + proc.stderr;
    for (const secret of [...Object.values(SECRETS), ADMIN_KEY, ...extra]) {
      expect({ secret, found: output.includes(secret) }).toEqual({ secret, found: false });
    }
  };

  it('at info: one line per request with its id, task fields on pipeline lines, nothing per successful task, no secret', async () => {
    const api = infoApi;
    const userId = await newUser(api, 'logs-info');
    const issued = await api.call('POST', `/v1/user/${userId}/keys`);
    expect(issued.status).toBe(200);
    const key = issued.json.key as string;
    expect(key.length).toBeGreaterThan(8);

    // Request ids: a sane one is honoured, anything else replaced by a UUID; echoed on errors too.
    expect((await api.call('GET', `/v1/plan?user_id=${userId}`, { key, requestId: 'trace-abc.123:x' })).requestId).toBe('trace-abc.123:x');
    expect((await api.call('GET', `/v1/plan?user_id=${userId}`, { key })).requestId).toMatch(UUID);
    expect((await api.call('GET', '/v1/plan', { key: null, requestId: 'has space' })).requestId).toMatch(UUID);
    expect((await api.call('GET', '/v1/plan', { key: 'not-a-key', requestId: 'x'.repeat(129) })).requestId).toMatch(UUID);
    const missing = await api.call('GET', `/v1/nowhere?access_token=${SECRETS.query}`, { requestId: 'req-404' });
    expect(missing).toMatchObject({ status: 404, requestId: 'req-404' });
    expect(api.sent.map((s) => s.status)).toEqual([200, 200, 200, 200, 401, 401, 404]);

    const failing = await failingPlan(api, userId, 1);
    const succeeding: string[] = [];
    for (let i = 0; i < 3; i++) {
      succeeding.push(await submit(api, userId, { max_failure_retry: 0, action: rest(`/ok/${i}`, { Authorization: `Bearer ${SECRETS.okBearer}` }) }));
    }
    await waitFor(async () => {
      const done = await Promise.all(
        succeeding.map(async (id) => ((await api.call('GET', `/v1/plan/${id}/summary`)).json.plan as { status?: string } | undefined)?.status),
      );
      const failures = linesSoFar(info.stdout).filter((l) => l.plan_id === failing && (l.context === 'Executor' || l.context === 'Hooks'));
      return done.every((s) => s === 'COMPLETED') && failures.length >= 4;
    }, 15_000, 'two failed attempts and two failed hooks logged, and the other plans completed');
    // The targets got the secrets: checking the logs for them proves something.
    expect(JSON.stringify(sink.hits.map((h) => h.headers))).toContain(SECRETS.bearer);
    expect(JSON.stringify(sink.hits.map((h) => h.headers))).toContain(SECRETS.hookKey);
    // Scraped every few seconds: debug, so not in these logs.
    expect((await api.call('GET', '/health', { key: null })).status).toBe(200);
    const metricsStatus = (await api.call('GET', '/metrics', { key: null })).status;

    const lines = await stopped(info);
    expectNoSecret(info, [key]);

    // Requests: exactly one info line each, with its fields; /health and /metrics not at info.
    const requestLines = lines.filter((l) => 'method' in l && 'duration_ms' in l);
    for (const sent of api.sent) {
      if (sent.path === '/health' || sent.path === '/metrics') continue;
      const mine = requestLines.filter((l) => l.request_id === sent.requestId);
      expect(mine).toEqual([
        expect.objectContaining({ level: 'info', method: sent.method, path: sent.path, status: sent.status, duration_ms: expect.any(Number) }),
      ]);
    }
    expect(requestLines.filter((l) => l.path === '/health' || l.path === '/metrics')).toEqual([]);
    expect(metricsStatus).toBeGreaterThan(0);
    expect(requestLines.every((l) => !String(l.path).includes('?'))).toBe(true);

    // Pipeline: each failed attempt, with the task's fields as JSON fields.
    const [hit1, hit2] = sink.hits.filter((h) => h.path.startsWith('/fail/task?') && h.planId === failing);
    expect(hit2).toBeDefined();
    const attempts = lines.filter((l) => l.plan_id === failing && l.context === 'Executor');
    expect(attempts).toEqual([
      expect.objectContaining({ level: 'warn', task_id: hit1.taskId, attempt: 1, dispatch_seq: expect.any(Number), retry_at: expect.any(String) }),
      expect.objectContaining({ level: 'warn', task_id: hit1.taskId, attempt: 2, dispatch_seq: expect.any(Number), retry_at: null }),
    ]);
    expect(attempts[1].dispatch_seq as number).toBeGreaterThan(attempts[0].dispatch_seq as number);
    expect(String(attempts[1].msg)).toContain('no retry left');
    // The failure text quotes the target's URL: in a log line without its query string.
    for (const a of attempts) expect(String(a.error)).toContain(`${sink.baseUrl}/fail/task?…]`);
    const hookLines = lines.filter((l) => l.plan_id === failing && l.context === 'Hooks');
    expect(hookLines).toHaveLength(2);
    expect(hookLines.map((l) => [l.task_id, l.attempt, l.dispatch_seq, l.level])).toEqual([
      [hit1.taskId, 1, null, 'warn'],
      [hit1.taskId, 2, null, 'warn'],
    ]);

    // Nothing about a successful task, at info or any level this process writes.
    const okTasks = new Set(sink.hits.filter((h) => h.path.startsWith('/ok/')).map((h) => h.taskId));
    expect(okTasks.size).toBe(3);
    const aboutSuccess = lines.filter(
      (l) => !('method' in l) && [...okTasks, ...succeeding].some((id) => JSON.stringify(l).includes(id)),
    );
    expect(aboutSuccess).toEqual([]);
    // Nest's own lines go through the same logger.
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', context: 'NestApplication' }));
    expect(lines).toContainEqual(expect.objectContaining({ level: 'info', context: 'Karya', msg: expect.stringContaining('Karya up') }));
  }, 30_000);

  it('at LOG_LEVEL=warn: no request lines, but failures still logged and ids still echoed', async () => {
    const api = warnApi;
    const userId = await newUser(api, 'logs-warn');
    expect((await api.call('GET', `/v1/plan?user_id=${userId}`, { requestId: 'warn-req-1' })).requestId).toBe('warn-req-1');
    const failing = await failingPlan(api, userId, 0);
    await waitFor(() => linesSoFar(warn.stdout).some((l) => l.plan_id === failing && l.context === 'Hooks'), 15_000, 'the failed attempt and its hook logged');
    const lines = await stopped(warn);
    expectNoSecret(warn);
    expect(lines.filter((l) => 'method' in l || l.level === 'info' || l.level === 'debug')).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', plan_id: failing, attempt: 1, dispatch_seq: expect.any(Number), context: 'Executor' }));
  }, 30_000);
});
