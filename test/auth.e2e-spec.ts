import { randomUUID } from 'node:crypto';
import { AddressInfo, connect } from 'node:net';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { KEY_PREFIX_LENGTH } from '../src/auth/api-key';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { HttpSink } from './support/http-sink';
import { runNativeClient } from './support/karya-client-native';
import { RecordingProxy } from './support/karya-client-recorder';
import { freePort, KaryaProcess } from './support/karya-process';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';

/*
 * Authentication and per-user isolation in apikey mode (issue: "make Karya safe to put on a network"), on
 * real PostgreSQL, Redis and RabbitMQ. Every /v1 endpoint is called with every kind of credential; user B
 * tries every route on user A's plan; the real karya-client runs with its key in the URL; a key revoked
 * through one server process is refused by another within 5 s.
 */

const ADMIN_KEY = `admin-${randomUUID()}`;
const UNAUTHORIZED = /^Unauthorized: a valid API key is required/;
type Json = Record<string, unknown>;

const serverYml = (extra = '') => `application:\n  auth:\n    mode: apikey\n  egress:\n    allowPrivateNetworks: true\n${extra}`;

/** A OneTime REST plan an hour away: it never runs during the test. */
function planRequest(userId: string, extra: Json = {}): Json {
  return {
    user_id: userId,
    description: 'auth matrix',
    period_time: 'PT1H',
    plan_type: { type: 'karya.core.entities.PlanType.OneTime' },
    action: {
      type: 'karya.core.entities.Action.RestApiRequest',
      base_url: 'example.com/hook',
      headers: { Authorization: 'Bearer users-own-secret' },
    },
    max_failure_retry: 3,
    ...extra,
  };
}

/**
 * A Recurring plan an hour apart whose action calls `sinkUrl` (on 127.0.0.1): what pause, resume and run now
 * act on. Run now makes it run at once, so it must call nothing beyond loopback.
 */
function recurringRequest(userId: string, sinkUrl: string): Json {
  return planRequest(userId, {
    description: 'auth matrix, schedules',
    plan_type: { type: 'karya.core.entities.PlanType.Recurring', overlap: 'SKIP' },
    action: { type: 'karya.core.entities.Action.RestApiRequest', base_url: sinkUrl, headers: { Authorization: 'Bearer users-own-secret' } },
  });
}

/** Sends raw bytes as a request and returns the status line's code: for headers Node's client will not send. */
function rawRequest(port: number, head: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(head));
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`no status line in ${JSON.stringify(data.slice(0, 200))}`));
    });
  });
}

describe('apikey mode on real PostgreSQL, Redis and RabbitMQ', () => {
  const tmp = new TempDir();
  /** The target of plans that run now; the executor may reach it (executor.yml allows private networks). */
  const sink = new HttpSink();
  let db: TestDatabase;
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let port: number;
  let userA: Json;
  let userB: Json;
  let keyA: string;
  let keyB: string;
  let revokedKey: string;

  const admin = () => `Bearer ${ADMIN_KEY}`;

  beforeAll(async () => {
    db = await createTestDatabase();
    await sink.start();
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: writeRealProviders(tmp, { pgUrl: db.url }),
      KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', serverYml()),
      KARYA_EXECUTOR_CONFIG_PATH: tmp.write('executor.yml', 'application:\n  egress:\n    allowPrivateNetworks: true\n'),
      KARYA_ADMIN_KEY: ADMIN_KEY,
    });
    app = await createApp(config, { logger: false });
    await app.listen(0, '127.0.0.1');
    http = app.getHttpServer();
    port = (http.address() as AddressInfo).port;
    userA = (await request(http).post('/v1/user').set('Authorization', admin()).send({ name: `alice-${randomUUID()}` }).expect(200)).body;
    userB = (await request(http).post('/v1/user').set('Authorization', admin()).send({ name: `bob-${randomUUID()}` }).expect(200)).body;
    keyA = (await request(http).post(`/v1/user/${userA.id}/keys`).set('Authorization', admin()).expect(200)).body.key;
    keyB = (await request(http).post(`/v1/user/${userB.id}/keys`).set('Authorization', admin()).expect(200)).body.key;
    const revoked = (await request(http).post(`/v1/user/${userA.id}/keys`).set('Authorization', admin()).expect(200)).body;
    revokedKey = revoked.key;
    await request(http).delete(`/v1/user/${userA.id}/keys/${revoked.id}`).set('Authorization', admin()).expect(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await sink.stop();
    await db?.drop();
    tmp.cleanup();
  });

  const credentials: { name: string; header: () => string | undefined }[] = [
    { name: 'no key', header: () => undefined },
    { name: 'malformed header', header: () => 'Bearer' },
    { name: 'wrong key', header: () => `Bearer karya_${'x'.repeat(43)}` },
    { name: 'revoked key', header: () => `Bearer ${revokedKey}` },
    { name: "another user's key", header: () => `Bearer ${keyB}` },
    { name: 'own key', header: () => `Bearer ${keyA}` },
    { name: 'admin key', header: () => admin() },
  ];
  type Who = 'none' | 'bad' | 'other' | 'own' | 'admin';
  const who = (name: string): Who =>
    name === "another user's key" ? 'other' : name === 'own key' ? 'own' : name === 'admin key' ? 'admin' : name === 'no key' ? 'none' : 'bad';

  /** Each endpoint, aimed at user A's data, with the status each kind of caller must get. */
  interface Endpoint {
    name: string;
    call: (auth: string | undefined) => Promise<request.Response>;
    expect: Record<'other' | 'own' | 'admin', number>;
  }
  const send = (req: request.Test, auth: string | undefined) => (auth === undefined ? req : req.set('Authorization', auth));
  /** A fresh plan of A for each call that changes one, so calls do not depend on each other's effects. */
  const planOfA = async () => (await request(http).post('/v1/plan').set('Authorization', admin()).send(planRequest(userA.id as string)).expect(200)).body.id as string;
  /** A fresh recurring plan of A (calling the sink), paused by the admin when `paused`. */
  const scheduleOfA = async (paused = false) => {
    const id = (await request(http).post('/v1/plan').set('Authorization', admin()).send(recurringRequest(userA.id as string, `${sink.baseUrl}/a`)).expect(200))
      .body.id as string;
    if (paused) await request(http).post(`/v1/plan/${id}/pause`).set('Authorization', admin()).expect(200);
    return id;
  };
  const keyOfA = async () => (await request(http).post(`/v1/user/${userA.id}/keys`).set('Authorization', admin()).expect(200)).body.id as string;

  const endpoints: Endpoint[] = [
    { name: 'POST /v1/user', call: (a) => send(request(http).post('/v1/user').send({ name: 'mallory' }), a), expect: { other: 403, own: 403, admin: 200 } },
    { name: 'GET /v1/user?username=', call: (a) => send(request(http).get('/v1/user').query({ username: userA.name as string }), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/plan', call: (a) => send(request(http).post('/v1/plan').send(planRequest(userA.id as string)), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'GET /v1/plan?user_id=', call: (a) => send(request(http).get('/v1/plan').query({ user_id: userA.id as string }), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'PATCH /v1/plan', call: async (a) => send(request(http).patch('/v1/plan').send({ plan_id: await planOfA(), max_failure_retry: 1 }), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'GET /v1/plan/{id}', call: async (a) => send(request(http).get(`/v1/plan/${await planOfA()}`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'GET /v1/plan/{id}/summary', call: async (a) => send(request(http).get(`/v1/plan/${await planOfA()}/summary`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/plan/{id} (cancel)', call: async (a) => send(request(http).post(`/v1/plan/${await planOfA()}`).type('form').send(''), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'GET /v1/plan?user_id=&status=', call: (a) => send(request(http).get('/v1/plan').query({ user_id: userA.id as string, status: 'paused' }), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'GET /v1/plan/{id}/state', call: async (a) => send(request(http).get(`/v1/plan/${await scheduleOfA()}/state`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/plan/{id}/pause', call: async (a) => send(request(http).post(`/v1/plan/${await scheduleOfA()}/pause`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/plan/{id}/resume', call: async (a) => send(request(http).post(`/v1/plan/${await scheduleOfA(true)}/resume`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/plan/{id}/run', call: async (a) => send(request(http).post(`/v1/plan/${await scheduleOfA()}/run`), a), expect: { other: 404, own: 200, admin: 200 } },
    { name: 'POST /v1/user/{id}/keys', call: (a) => send(request(http).post(`/v1/user/${userA.id}/keys`), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'GET /v1/user/{id}/keys', call: (a) => send(request(http).get(`/v1/user/${userA.id}/keys`), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'DELETE /v1/user/{id}/keys/{key_id}', call: async (a) => send(request(http).delete(`/v1/user/${userA.id}/keys/${await keyOfA()}`), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'GET /v1/stats', call: (a) => send(request(http).get('/v1/stats'), a), expect: { other: 200, own: 200, admin: 200 } },
    { name: 'GET /v1/stats?user_id=', call: (a) => send(request(http).get('/v1/stats').query({ user_id: userA.id as string }), a), expect: { other: 403, own: 200, admin: 200 } },
    { name: 'GET /v1/whoami', call: (a) => send(request(http).get('/v1/whoami'), a), expect: { other: 200, own: 200, admin: 200 } },
    { name: 'GET /v1/plan/{id}/fires', call: async (a) => send(request(http).get(`/v1/plan/${await scheduleOfA()}/fires`), a), expect: { other: 404, own: 200, admin: 200 } },
  ];

  describe.each(endpoints)('$name', (endpoint) => {
    it.each(credentials)('with $name', async (credential) => {
      const res = await endpoint.call(credential.header());
      const kind = who(credential.name);
      if (kind === 'none' || kind === 'bad') {
        expect(res.status).toBe(401);
        expect(res.text).toMatch(UNAUTHORIZED);
        expect(res.headers['content-type']).toMatch(/^text\/plain/);
        // A Basic challenge would make browsers cache credentials and send them on cross-site form posts.
        expect(res.headers['www-authenticate']).toBeUndefined();
        expect(res.headers['set-cookie']).toBeUndefined();
        return;
      }
      expect({ status: res.status, text: res.status === 200 ? '' : res.text }).toEqual({
        status: endpoint.expect[kind],
        text: endpoint.expect[kind] === 200 ? '' : expect.any(String),
      });
      if (res.status === 403) expect(res.text).toMatch(/user_id|admin key/);
      if (res.status === 404 && endpoint.name.includes('{id}')) expect(res.text).toMatch(/^Plan not found --- /);
    });
  });

  it('answers every reason for refusing a key with the same 401 text', async () => {
    const texts = new Set<string>();
    for (const credential of credentials.filter((c) => ['none', 'bad'].includes(who(c.name)))) {
      const res = await send(request(http).get('/v1/plan').query({ user_id: userA.id as string }), credential.header());
      texts.add(`${res.status} ${res.text}`);
    }
    expect(texts.size).toBe(1);
  });

  it.each([
    ['empty', ''],
    ['scheme only', 'Basic'],
    ['unknown scheme', `Token ${'a'.repeat(20)}`],
    ['Basic, not base64', 'Basic %%%not-base64%%%'],
    ['Basic without a colon', `Basic ${Buffer.from('no-colon-here').toString('base64')}`],
    ['Basic with a wrong password', `Basic ${Buffer.from('alice:wrong').toString('base64')}`],
    ['huge', `Bearer ${'k'.repeat(8000)}`],
    ['Latin-1 bytes', 'Bearer cl\u00e9-\u00ff'],
    ['control character', 'Bearer abc\tdef'],
  ])('answers a malformed Authorization header (%s) with 401, never 500', async (_name, header) => {
    const res = await request(http).get('/v1/plan').query({ user_id: userA.id as string }).set('Authorization', header);
    expect(res.status).toBe(401);
    expect(res.text).toMatch(UNAUTHORIZED);
  });

  it('answers raw UTF-8 (non-ASCII) bytes in the Authorization header with 401', async () => {
    const head = Buffer.concat([
      Buffer.from(`GET /v1/plan?user_id=${userA.id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer `),
      Buffer.from('ключ-🔑', 'utf8'),
      Buffer.from('\r\n\r\n'),
    ]);
    expect(await rawRequest(port, head)).toBe(401);
  });

  it('accepts the key as the password of HTTP Basic, whatever the user name', async () => {
    const basic = `Basic ${Buffer.from(`anyone:${keyA}`).toString('base64')}`;
    const res = await request(http).get('/v1/plan').query({ user_id: userA.id as string }).set('Authorization', basic).expect(200);
    expect(res.body.total).toBeGreaterThan(0);
  });

  it('keeps /health, GET /, /docs, /docs-json and /metrics open (protectMetrics is off)', async () => {
    for (const path of ['/health', '/', '/docs', '/docs-json', '/metrics']) {
      const res = await request(http).get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
  });

  it('lists keys by prefix only, with created_at and last_used_at, and never the key or its hash', async () => {
    const res = await request(http).get(`/v1/user/${userA.id}/keys`).set('Authorization', `Bearer ${keyA}`).expect(200);
    const keys = res.body as Json[];
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(Object.keys(k).sort()).toEqual(['created_at', 'id', 'last_used_at', 'prefix']);
    expect(JSON.stringify(keys)).not.toContain(keyA);
    expect(keyA.startsWith(keys[0].prefix as string)).toBe(true);
    const stored: Json[] = await app.get(DataSource).query('SELECT * FROM api_keys');
    expect(stored.length).toBeGreaterThan(0);
    expect(JSON.stringify(stored)).not.toContain(keyA.slice(KEY_PREFIX_LENGTH));
  });

  it('GET /v1/user?username= with a user key finds only the caller', async () => {
    const own = await request(http).get('/v1/user').query({ username: userA.name as string }).set('Authorization', `Bearer ${keyA}`).expect(200);
    expect(own.body).toEqual(userA);
    const other = await request(http).get('/v1/user').query({ username: userB.name as string }).set('Authorization', `Bearer ${keyA}`);
    expect(other.status).toBe(404);
    expect(other.text).toBe(`User (${userB.name}) not found`);
    // The admin finds anyone.
    await request(http).get('/v1/user').query({ username: userB.name as string }).set('Authorization', admin()).expect(200);
  });

  it("user B can neither read nor change user A's plans by any route, and they are unchanged afterwards", async () => {
    const asA = `Bearer ${keyA}`;
    const asB = `Bearer ${keyB}`;
    const planId = (await request(http).post('/v1/plan').set('Authorization', asA).send(planRequest(userA.id as string)).expect(200)).body.id as string;
    // A recurring plan (pause, run now) and a paused one (resume), each calling its own path of the sink.
    const recurringId = (await request(http).post('/v1/plan').set('Authorization', asA).send(recurringRequest(userA.id as string, `${sink.baseUrl}/isolation`)).expect(200))
      .body.id as string;
    const pausedId = (await request(http).post('/v1/plan').set('Authorization', asA).send(recurringRequest(userA.id as string, `${sink.baseUrl}/isolation`)).expect(200))
      .body.id as string;
    await request(http).post(`/v1/plan/${pausedId}/pause`).set('Authorization', asA).expect(200);
    const ids = [planId, recurringId, pausedId];
    /** What A sees of each plan: its summary (plan, tasks, error logs) and its schedule state. */
    const snapshot = async () =>
      Promise.all(
        ids.map(async (id) => ({
          summary: (await request(http).get(`/v1/plan/${id}/summary`).set('Authorization', asA).expect(200)).body,
          state: (await request(http).get(`/v1/plan/${id}/state`).set('Authorization', asA).expect(200)).body,
        })),
      );
    const before = await snapshot();
    expect(before.map((p) => p.state.status)).toEqual(['CREATED', 'CREATED', 'PAUSED']);
    expect(before.map((p) => p.summary.tasks.length)).toEqual([1, 1, 1]);

    const hookToB = [{ trigger: 'ON_FAILURE', action: { type: 'karya.core.entities.Action.RestApiRequest', base_url: 'evil.example.com/steal' } }];
    const attempts: [string, request.Test, number][] = [
      ['get', request(http).get(`/v1/plan/${planId}`), 404],
      ['summary', request(http).get(`/v1/plan/${planId}/summary`), 404],
      ['patch hooks', request(http).patch('/v1/plan').send({ plan_id: planId, hooks: hookToB }), 404],
      ['patch period', request(http).patch('/v1/plan').send({ plan_id: planId, period_time: 'PT5S', max_failure_retry: 0 }), 404],
      ['cancel', request(http).post(`/v1/plan/${planId}`).type('form').send(''), 404],
      ...ids.flatMap((id, i): [string, request.Test, number][] => [
        [`state of plan ${i}`, request(http).get(`/v1/plan/${id}/state`), 404],
        [`fires of plan ${i}`, request(http).get(`/v1/plan/${id}/fires`), 404],
        [`pause plan ${i}`, request(http).post(`/v1/plan/${id}/pause`), 404],
        [`resume plan ${i}`, request(http).post(`/v1/plan/${id}/resume`), 404],
        [`run plan ${i} now`, request(http).post(`/v1/plan/${id}/run`), 404],
        [`cancel plan ${i}`, request(http).post(`/v1/plan/${id}`).type('form').send(''), 404],
      ]),
      ['list', request(http).get('/v1/plan').query({ user_id: userA.id as string }), 403],
      ['list paused', request(http).get('/v1/plan').query({ user_id: userA.id as string, status: 'PAUSED' }), 403],
      ['submit for A', request(http).post('/v1/plan').send(planRequest(userA.id as string)), 403],
      [
        'chained request for A inside own plan',
        request(http).post('/v1/plan').send(planRequest(userB.id as string, {
          action: { type: 'karya.core.entities.Action.ChainedRequest', request: planRequest(userA.id as string) },
        })),
        403,
      ],
      [
        "chained request for A in a hook of B's plan",
        request(http).post('/v1/plan').send(planRequest(userB.id as string, {
          hooks: [{ trigger: 'ON_FAILURE', action: { type: 'karya.core.entities.Action.ChainedRequest', request: planRequest(userA.id as string) } }],
        })),
        403,
      ],
      ['keys of A', request(http).get(`/v1/user/${userA.id}/keys`), 403],
      ["A's task figures", request(http).get('/v1/stats').query({ user_id: userA.id as string }), 403],
    ];
    for (const [name, req, status] of attempts) {
      const res = await req.set('Authorization', asB);
      expect({ name, status: res.status }).toEqual({ name, status });
      // Nothing of A's plan (its action's own Authorization header included) leaks into the answer.
      expect(res.text).not.toContain('users-own-secret');
    }
    // Unchanged: not paused, still paused, no extra task (run now), no call made.
    expect(await snapshot()).toEqual(before);
    expect(sink.hits.filter((h) => ids.includes(h.planId))).toEqual([]);
    const list = (await request(http).get('/v1/plan').query({ user_id: userB.id as string }).set('Authorization', asB).expect(200)).body;
    expect(list.total).toBe(0);
    // A can list its own paused plan; the admin acts on A's plans.
    const paused = (await request(http).get('/v1/plan').query({ user_id: userA.id as string, status: 'PAUSED' }).set('Authorization', asA).expect(200)).body;
    expect((paused.plans as Json[]).map((p) => p.id)).toContain(pausedId);
    const resumed = (await request(http).post(`/v1/plan/${pausedId}/resume`).set('Authorization', admin()).expect(200)).body;
    expect({ plan_id: resumed.plan_id, status: resumed.status }).toEqual({ plan_id: pausedId, status: 'CREATED' });
  });

  it('names the nested field when a chained request is for another user, even for the admin', async () => {
    const res = await request(http)
      .post('/v1/plan')
      .set('Authorization', admin())
      .send(planRequest(userA.id as string, { action: { type: 'karya.core.entities.Action.ChainedRequest', request: planRequest(userB.id as string) } }));
    expect(res.status).toBe(403);
    expect(res.text).toMatch(/^action\.request\.user_id: a chained request creates plans only for the plan's owner/);

    // PATCH replaces hooks of a stored plan: the same rule, against that plan's owner.
    const planId = (await request(http).post('/v1/plan').set('Authorization', `Bearer ${keyA}`).send(planRequest(userA.id as string)).expect(200)).body.id;
    const nested = { type: 'karya.core.entities.Action.ChainedRequest', request: planRequest(userB.id as string) };
    const patched = await request(http)
      .patch('/v1/plan')
      .set('Authorization', `Bearer ${keyA}`)
      .send({ plan_id: planId, hooks: [{ trigger: 'ON_COMPLETION', action: nested }] });
    expect(patched.status).toBe(403);
    expect(patched.text).toMatch(/^hooks\[0\]\.action\.request\.user_id: a chained request creates plans only for the plan's owner/);
  });

  it('runs the published karya-client@1.1.7 end to end with its key in the URL (sent as HTTP Basic)', async () => {
    const proxy = await new RecordingProxy(port).start();
    try {
      const name = `client-${randomUUID()}`;
      const out = await runNativeClient(proxy.url, name, ADMIN_KEY);
      const exchanges = proxy.take();
      expect(out.anonymous).toEqual({ status: 401, data: expect.stringMatching(UNAUTHORIZED), challenge: null });
      expect(out.found).toEqual(out.user && { ...out.user, class: undefined });
      expect((out.get as Json).plan).toEqual({ ...(out.plan as Json), class: undefined });
      expect(out.list).toEqual({ plans: [(out.get as Json).plan], total: 1, offset: 0 });
      expect((out.updated as Json).max_failure_retry).toBe(5);
      expect((out.cancelled as Json).status).toBe('CANCELLED');
      expect(out.error).toEqual({ name: 'AxiosError', isAxiosError: true, status: 404, data: `User (${name}-missing) not found` });
      // The user's own calls (all but the admin's createUser and the anonymous probe) carried the key as Basic.
      const basic = exchanges
        .map((e) => e.requestHeaders.authorization)
        .filter((h): h is string => h?.startsWith('Basic ') === true)
        .map((h) => Buffer.from(h.slice(6), 'base64').toString());
      expect(basic.filter((d) => d === `admin:${ADMIN_KEY}`)).toHaveLength(1);
      const userCalls = basic.filter((d) => d.startsWith(`${name}:karya_`));
      expect(userCalls).toHaveLength(basic.length - 1);
      expect(userCalls.length).toBeGreaterThanOrEqual(8);
    } finally {
      await proxy.stop();
    }
  });
});

describe('apikey mode with protectMetrics, and the start-up checks', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it('needs a key on /metrics when protectMetrics is true; /health stays open', async () => {
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write('p.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
      KARYA_SERVER_CONFIG_PATH: tmp.write('s.yml', 'application:\n  auth:\n    mode: apikey\n    protectMetrics: true\n'),
      KARYA_ADMIN_KEY: ADMIN_KEY,
    });
    const app = await createApp(config, { logger: false });
    try {
      const http = app.getHttpServer();
      await request(http).get('/metrics').expect(401);
      await request(http).get('/metrics').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
      await request(http).get('/health').expect(200);
    } finally {
      await app.close();
    }
  });

  it('reads the admin key from application.auth.adminKeyFile, and refuses a short one naming where it came from, not its value', () => {
    const keyFile = tmp.write('admin.key', `${ADMIN_KEY}\n`);
    const server = tmp.write('s2.yml', `application:\n  auth:\n    mode: apikey\n    adminKeyFile: ${keyFile}\n`);
    expect(loadConfig({ KARYA_SERVER_CONFIG_PATH: server }).config.server.auth.adminKey).toBe(ADMIN_KEY);
    const short = tmp.write('short.key', 'tiny-secret');
    const bad = tmp.write('s3.yml', `application:\n  auth:\n    mode: apikey\n    adminKeyFile: ${short}\n`);
    expect(() => loadConfig({ KARYA_SERVER_CONFIG_PATH: bad })).toThrow(/adminKeyFile.*at least 16 characters \(value hidden\)/);
    expect(() => loadConfig({ KARYA_SERVER_CONFIG_PATH: bad })).not.toThrow(/tiny-secret/);
    expect(() => loadConfig({ KARYA_SERVER_CONFIG_PATH: tmp.write('s4.yml', 'application:\n  auth:\n    mode: open\n') })).toThrow(
      /application\.auth\.mode: expected one of none, apikey/,
    );
  });

  it('keeps the API open by default (mode none): the original files load unchanged and no key is needed', async () => {
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write('p2.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
    });
    expect(config.server.auth.mode).toBe('none');
    expect(config.server.rateLimit).toEqual({ requestsPerMinute: 0, submissionsPerMinute: 0 });
    const app = await createApp(config, { logger: false });
    try {
      await request(app.getHttpServer()).post('/v1/user').send({ name: 'open' }).expect(200);
      await request(app.getHttpServer()).get('/v1/user/00000000-0000-0000-0000-000000000000/keys').expect(404);
    } finally {
      await app.close();
    }
  });
});

describe('revocation across server processes (real node dist/main.js)', () => {
  const tmp = new TempDir();
  let db: TestDatabase;
  const procs: KaryaProcess[] = [];

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await db?.drop();
    tmp.cleanup();
  });

  it('refuses a key revoked through one process in another within 5 s', async () => {
    db = await createTestDatabase();
    const env = {
      KARYA_ROLE: 'server',
      KARYA_PROVIDERS_CONFIG_PATH: writeRealProviders(tmp, { pgUrl: db.url }),
      KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', serverYml()),
      KARYA_ADMIN_KEY: ADMIN_KEY,
    };
    const ports = [await freePort(), await freePort()];
    for (const port of ports) procs.push(new KaryaProcess({ ...env, PORT: String(port) }).start());
    await Promise.all(procs.map((p, i) => p.waitForHealthy(ports[i])));
    const [one, two] = ports.map((p) => `http://127.0.0.1:${p}`);
    const adminHeaders = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };

    const user = (await (await fetch(`${one}/v1/user`, { method: 'POST', headers: adminHeaders, body: JSON.stringify({ name: 'revokee' }) })).json()) as Json;
    const issued = (await (await fetch(`${one}/v1/user/${user.id}/keys`, { method: 'POST', headers: adminHeaders })).json()) as Json;
    const asUser = { authorization: `Bearer ${issued.key}` };
    // Process two has the key cached as valid when the revocation happens: the worst case.
    expect((await fetch(`${two}/v1/plan?user_id=${user.id}`, { headers: asUser })).status).toBe(200);

    const revoked = await fetch(`${one}/v1/user/${user.id}/keys/${issued.id}`, { method: 'DELETE', headers: adminHeaders });
    expect(revoked.status).toBe(200);
    const revokedAt = Date.now();
    expect((await fetch(`${one}/v1/plan?user_id=${user.id}`, { headers: asUser })).status).toBe(401);
    let status = 0;
    while (Date.now() - revokedAt < 5000) {
      status = (await fetch(`${two}/v1/plan?user_id=${user.id}`, { headers: asUser })).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect({ status, withinMs: Date.now() - revokedAt <= 5000 }).toEqual({ status: 401, withinMs: true });
  }, 90_000);
});

describe('the open-API warning at start-up (real node dist/main.js)', () => {
  const tmp = new TempDir();
  const procs: KaryaProcess[] = [];
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    tmp.cleanup();
  });

  async function startWith(serverYaml: string): Promise<KaryaProcess> {
    const port = await freePort();
    const proc = new KaryaProcess({
      PORT: String(port),
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write(`p-${port}.yml`, 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
      KARYA_SERVER_CONFIG_PATH: tmp.write(`s-${port}.yml`, serverYaml),
    }).start();
    procs.push(proc);
    await proc.waitForHealthy(port);
    // "Karya up" is logged after the warning, so once it is there the warning had its chance.
    const deadline = Date.now() + 10_000;
    while (!proc.stdout.includes('Karya up') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(proc.stdout).toContain('Karya up');
    return proc;
  }

  it('warns prominently when mode none listens on every interface, and not on loopback or in apikey mode', async () => {
    // Started side by side: each spends most of its start-up in PGlite.
    const [open, loopback, keyed] = await Promise.all([
      startWith('application:\n  auth:\n    mode: none\n'),
      startWith('application:\n  host: 127.0.0.1\n'),
      startWith('application:\n  auth:\n    mode: apikey\n'),
    ]);
    // A JSON log line: the quotes around none are escaped.
    expect(open.stdout).toMatch(/The API is OPEN: server\.yml application\.auth\.mode is \\"none\\" and the server listens on every interface/);
    expect(loopback.stdout).not.toContain('The API is OPEN');
    expect(keyed.stdout).not.toContain('The API is OPEN');
  }, 90_000);
});
