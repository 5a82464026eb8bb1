import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import Redis from 'ioredis';
import { Client } from 'pg';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { freePort, KaryaProcess } from './support/karya-process';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { REDIS, writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Abuse limits: the per-user rate limits (429 + Retry-After), shared through Redis by real server processes
 * and kept in memory when embedded; the per-user cap on live plans; and both off in none mode by default.
 */

type Json = Record<string, unknown>;

const plan = (userId: string): Json => ({
  user_id: userId,
  description: 'rate-limited',
  // Far enough out that nothing runs during the test.
  period_time: 'PT1H',
  plan_type: { type: T.OneTime },
  action: { type: T.Rest, base_url: 'sink.local:8080/hook' },
});

interface Reply {
  status: number;
  retryAfter: string | null;
  contentType: string | null;
  text: string;
}

async function call(port: number, method: 'GET' | 'POST', path: string, body?: Json): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : undefined,
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), contentType: res.headers.get('content-type'), text: await res.text() };
}

function expectLimited(reply: Reply, message: RegExp): void {
  expect(reply.status).toBe(429);
  expect(Number(reply.retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number.isInteger(Number(reply.retryAfter))).toBe(true);
  expect(reply.contentType).toMatch(/^text\/plain/);
  expect(reply.text).toMatch(message);
}

describe('rate limits shared by two server processes through Redis', () => {
  const REQUESTS = 10;
  const SUBMISSIONS = 3;
  const tmp = new TempDir();
  const procs: KaryaProcess[] = [];
  const ports: number[] = [];
  const users: string[] = [];
  let db: TestDatabase;
  let pg: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    const providers = writeRealProviders(tmp, { pgUrl: db.url });
    const server = tmp.write('server.yml', `application:\n  rateLimit:\n    requestsPerMinute: ${REQUESTS}\n    submissionsPerMinute: ${SUBMISSIONS}\n`);
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      ports.push(port);
      procs.push(
        new KaryaProcess({
          KARYA_ROLE: 'server',
          KARYA_PROVIDERS_CONFIG_PATH: providers,
          KARYA_SERVER_CONFIG_PATH: server,
          PORT: String(port),
        }).start(),
      );
    }
    await Promise.all(procs.map((p, i) => p.waitForHealthy(ports[i])));
    pg = new Client({ connectionString: db.url });
    await pg.connect();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    await pg?.end();
    // Only this run's keys: other suites share the Redis. Every key of ours names one of our fresh users.
    const redis = new Redis({ host: REDIS.host, port: REDIS.port, lazyConnect: true });
    try {
      await redis.connect();
      for (const id of users) {
        // The storage wraps keys in a Redis hash tag ({…}), hence the leading wildcard.
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `*karya:rl:*${id}*`, 'COUNT', 1000);
          if (keys.length > 0) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      }
    } finally {
      redis.disconnect();
    }
    await db?.drop();
    tmp.cleanup();
  });

  /**
   * A user inserted straight into the database: POST /v1/user names no user, so it would count against the
   * client address's bucket, which every run from 127.0.0.1 shares in Redis for a minute.
   */
  async function newUser(): Promise<string> {
    const id = randomUUID();
    await pg.query('INSERT INTO users (id, name) VALUES ($1, $2)', [id, `rl-${id}`]);
    users.push(id);
    return id;
  }

  it('counts API calls across both processes: the call past the limit gets 429 with Retry-After, other users are unaffected', async () => {
    const [user, other] = [await newUser(), await newUser()];
    for (let i = 0; i < REQUESTS; i++) {
      const reply = await call(ports[i % 2], 'GET', `/v1/plan?user_id=${user}`);
      expect({ i, status: reply.status, text: reply.text }).toMatchObject({ i, status: 200 });
    }
    // Each process alone has seen only half the calls: only a shared count refuses this one.
    const refused = await call(ports[REQUESTS % 2], 'GET', `/v1/plan?user_id=${user}`);
    expectLimited(refused, new RegExp(`^Rate limit exceeded --- ${REQUESTS} requests per minute for user ${user} \\| retry after \\d+ s$`));
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    // Blocked on the other process too.
    expectLimited(await call(ports[(REQUESTS + 1) % 2], 'GET', `/v1/plan?user_id=${user.toUpperCase()}`), /requests per minute/);

    for (const port of ports) expect((await call(port, 'GET', `/v1/plan?user_id=${other}`)).status).toBe(200);
  });

  it('limits submissions per user across both processes', async () => {
    const [user, other] = [await newUser(), await newUser()];
    for (let i = 0; i < SUBMISSIONS; i++) {
      const reply = await call(ports[i % 2], 'POST', '/v1/plan', plan(user));
      expect({ i, status: reply.status, text: reply.text }).toMatchObject({ i, status: 200 });
    }
    const refused = await call(ports[SUBMISSIONS % 2], 'POST', '/v1/plan', plan(user));
    expectLimited(refused, new RegExp(`^Rate limit exceeded --- ${SUBMISSIONS} submissions per minute for user ${user} \\| retry after \\d+ s$`));
    const { rows } = await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM plans WHERE user_id = $1', [user]);
    expect(rows[0].n).toBe(SUBMISSIONS);

    // Reading is a different limit, and other users submit as usual.
    expect((await call(ports[0], 'GET', `/v1/plan?user_id=${user}`)).status).toBe(200);
    expect((await call(ports[1], 'POST', '/v1/plan', plan(other))).status).toBe(200);
  });

  it('closes the limits\' Redis connection on SIGTERM: the process exits 0', async () => {
    procs[1].signal('SIGTERM');
    expect(await procs[1].waitForExit(15_000)).toEqual({ code: 0, signal: null });
  });
});

describe('embedded (in-memory) limits, the live-plan cap and the defaults, in-process', () => {
  const tmps: TempDir[] = [];
  const apps: INestApplication[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const tmp of tmps) tmp.cleanup();
  });

  async function embedded(serverYml: string): Promise<{ http: ReturnType<INestApplication['getHttpServer']>; userId: string }> {
    const tmp = new TempDir();
    tmps.push(tmp);
    const { config } = loadConfig({
      KARYA_ROLE: 'all',
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write('providers.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
      KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', serverYml),
    });
    const app = await createApp(config, { logger: false });
    apps.push(app);
    const http = app.getHttpServer();
    const userId: string = (await request(http).post('/v1/user').send({ name: `u-${randomUUID()}` }).expect(200)).body.id;
    return { http, userId };
  }

  it('limits API calls per user with the in-memory storage', async () => {
    const { http, userId } = await embedded('application:\n  rateLimit:\n    requestsPerMinute: 5\n');
    const other: string = (await request(http).post('/v1/user').send({ name: `o-${randomUUID()}` }).expect(200)).body.id;
    for (let i = 0; i < 5; i++) await request(http).get(`/v1/plan?user_id=${userId}`).expect(200);
    const refused = await request(http).get(`/v1/plan?user_id=${userId}`);
    expectLimited(
      { status: refused.status, retryAfter: refused.headers['retry-after'] ?? null, contentType: refused.headers['content-type'] ?? null, text: refused.text },
      new RegExp(`^Rate limit exceeded --- 5 requests per minute for user ${userId} \\| retry after \\d+ s$`),
    );
    await request(http).get(`/v1/plan?user_id=${other}`).expect(200);
  });

  it('caps live plans per user; cancelling one makes room', async () => {
    const { http, userId } = await embedded('application:\n  maxLivePlansPerUser: 2\n');
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await request(http).post('/v1/plan').send(plan(userId)).expect(200)).body.id);
    const refused = await request(http).post('/v1/plan').send(plan(userId));
    expect(refused.status).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^text\/plain/);
    expect(refused.text).toBe(`Live plan limit reached --- user ${userId} has 2 live plans (limit 2)`);

    expect((await request(http).post(`/v1/plan/${ids[0]}`).expect(200)).body.status).toBe('CANCELLED');
    await request(http).post('/v1/plan').send(plan(userId)).expect(200);
    expect((await request(http).post('/v1/plan').send(plan(userId))).status).toBe(429);
  });

  it('in none mode with nothing configured, nothing is limited', async () => {
    const { http, userId } = await embedded('application:\n  port: 8080\n');
    const statuses = await Promise.all(Array.from({ length: 50 }, () => request(http).get(`/v1/plan?user_id=${userId}`).then((r) => r.status)));
    expect(statuses).toEqual(Array.from({ length: 50 }, () => 200));
    const submitted = await Promise.all(Array.from({ length: 20 }, () => request(http).post('/v1/plan').send(plan(userId)).then((r) => r.status)));
    expect(submitted).toEqual(Array.from({ length: 20 }, () => 200));
  });
});
