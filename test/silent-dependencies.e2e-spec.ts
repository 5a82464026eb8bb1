import { randomUUID } from 'node:crypto';
import { INestApplication, Logger } from '@nestjs/common';
import request from 'supertest';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { LockConfig, QueueConfig, RepoConfig } from '../src/config/karya-config';
import { RedisLock } from '../src/connectors/lock/redis.lock';
import { QueueName } from '../src/connectors/queue/queue.port';
import { RabbitMqQueue } from '../src/connectors/queue/rabbitmq.queue';
import { buildDataSource } from '../src/connectors/repo/data-source.factory';
import { waitFor } from './support/http-sink';
import { createVhost } from './support/machine-services';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { RABBIT, REDIS, writeRealProviders } from './support/real-services';
import { TcpProxy } from './support/tcp-proxy';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Every connector's waits are bounded when its service goes silent: a TCP proxy stops forwarding without
 * closing anything (a partition, a frozen host), so only the client's own timeouts can end a wait. Each
 * connector must fail its calls in bounded time while the silence lasts, and work again by itself once
 * the proxy forwards again. The whole processes under load are the chaos suite's job (chaos.e2e-spec.ts).
 */

/** Time a call took, and how it ended. */
async function timed(work: () => Promise<unknown>): Promise<{ ms: number; error: Error | undefined }> {
  const started = Date.now();
  try {
    await work();
    return { ms: Date.now() - started, error: undefined };
  } catch (e) {
    return { ms: Date.now() - started, error: e instanceof Error ? e : new Error(String(e)) };
  }
}

/** What the adapters warned about: every outage they see, which here is the point. */
const warnings: string[] = [];
beforeAll(() => {
  jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => void warnings.push(String(message)));
  jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
});
afterAll(() => jest.restoreAllMocks());

describe('PostgreSQL behind a silent network', () => {
  let db: TestDatabase;
  let proxy: TcpProxy;
  let ds: DataSource;
  let direct: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    proxy = await new TcpProxy(url.hostname, Number(url.port || 5432)).start();
    url.port = String(proxy.port);
    const config: RepoConfig = {
      provider: 'psql', partitions: 1, url: url.toString(), poolSize: 2, dataDir: '',
      connectionTimeout: 1000, connectTimeout: 1000, statementTimeout: 1000,
    };
    ds = buildDataSource(config);
    await ds.initialize();
    direct = new Client({ connectionString: db.url });
    await direct.connect();
    await direct.query('CREATE TABLE marks (n int)');
  });
  afterAll(async () => {
    proxy?.thaw();
    await ds?.destroy();
    await direct?.end();
    await proxy?.stop();
    await db?.drop();
  });
  afterEach(() => proxy.thaw());

  it('fails statements within statementTimeout + 1 s, and more callers than connections within the acquire timeout on top', async () => {
    await ds.query('SELECT 1');
    proxy.freeze();
    // Two take the pool's two connections and hang on them; the other four wait for a connection.
    const calls = await Promise.all(Array.from({ length: 6 }, () => timed(() => ds.query('SELECT 1'))));
    for (const { ms, error } of calls) {
      expect(error?.message).toMatch(/Query read timeout|timeout exceeded when trying to connect|Connection terminated/);
      expect(ms).toBeLessThan(1000 + 1000 + 1000 + 500);
    }
    proxy.thaw();
    // Healed: answered at once, on connections that are not stuck behind the abandoned statements.
    await waitFor(async () => (await timed(() => ds.query('SELECT 1'))).error === undefined, 5000, 'a query after the partition');
    const after = await timed(() => Promise.all([ds.query('SELECT 2'), ds.query('SELECT 3')]));
    expect(after.error).toBeUndefined();
    expect(after.ms).toBeLessThan(500);
  });

  it('abandons a connection whose statement timed out, so nobody later runs inside its unfinished transaction', async () => {
    // Without that, the timed-out statement keeps the connection busy, the ROLLBACK queued behind it times
    // out unsent, and once the network heals the next borrower's statements run in the open transaction
    // and are never committed.
    const inTransaction = timed(() =>
      ds.transaction(async (m) => {
        await m.query('INSERT INTO marks VALUES (1)');
        proxy.freeze();
        await m.query('SELECT 1');
      }),
    );
    expect((await inTransaction).error?.message).toMatch(/Query read timeout/);
    proxy.thaw();
    await waitFor(async () => (await timed(() => ds.query('INSERT INTO marks VALUES (2)'))).error === undefined, 5000, 'an insert after the partition');
    const rows = (await direct.query('SELECT n FROM marks ORDER BY n')).rows as { n: number }[];
    expect(rows.map((r) => r.n)).toEqual([2]);
  });

  it('leaves statement_timeout in force on the server: a statement running too long is cancelled there', async () => {
    const slow = await timed(() => ds.query('SELECT pg_sleep(3)'));
    expect(slow.error?.message).toMatch(/statement timeout/);
    expect(slow.ms).toBeLessThan(2000);
  });
});

describe('the API while PostgreSQL is silent', () => {
  const tmp = new TempDir();
  let db: TestDatabase;
  let proxy: TcpProxy;
  let app: INestApplication;
  let userId: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    proxy = await new TcpProxy(url.hostname, Number(url.port || 5432)).start();
    url.port = String(proxy.port);
    // The default timeouts: this is what a deployment gets without tuning anything.
    const providers = writeRealProviders(tmp, { pgUrl: url.toString() });
    const { config } = loadConfig({ KARYA_ROLE: 'server', KARYA_PROVIDERS_CONFIG_PATH: providers });
    app = await createApp(config, { logger: false });
    userId = (await request(app.getHttpServer()).post('/v1/user').send({ name: 'silent' }).expect(200)).body.id as string;
  });
  afterAll(async () => {
    proxy?.thaw();
    await app?.close();
    await proxy?.stop();
    await db?.drop();
    tmp.cleanup();
  });

  const submit = () =>
    request(app.getHttpServer()).post('/v1/plan').send({
      user_id: userId, description: 'silent', period_time: 'PT1H', plan_type: { type: T.OneTime },
      action: { type: T.Rest, base_url: 'example.com/never-called', method: 'GET' },
    });

  it('answers 503 with Retry-After within 10 s, shows the repo down on /health, and serves again once the network heals', async () => {
    await submit().expect(200);
    proxy.freeze();
    // More submissions than the pool has connections, reads, and health, all at once.
    const started = Date.now();
    const answers = await Promise.all([
      ...Array.from({ length: 20 }, () => submit().then((res) => ({ res, ms: Date.now() - started }))),
      ...Array.from({ length: 5 }, () => request(app.getHttpServer()).get(`/v1/plan?user_id=${userId}`).then((res) => ({ res, ms: Date.now() - started }))),
    ]);
    for (const { res, ms } of answers) {
      expect({ status: res.status, retryAfter: res.headers['retry-after'] !== undefined }).toEqual({ status: 503, retryAfter: true });
      expect(ms).toBeLessThan(10_000);
    }
    const health = await request(app.getHttpServer()).get('/health');
    expect(health.status).toBe(503);
    expect((health.body as { details: Record<string, { status: string }> }).details.repo.status).toBe('down');

    proxy.thaw();
    const healed = Date.now();
    await waitFor(async () => (await submit()).status === 200, 15_000, 'a submission after the partition');
    await waitFor(async () => (await request(app.getHttpServer()).get('/health')).status === 200, 15_000, '/health after the partition');
    expect(Date.now() - healed).toBeLessThan(15_000);
  }, 60_000);
});

describe('Redis behind a silent network', () => {
  let proxy: TcpProxy;
  let lock: RedisLock;

  beforeAll(async () => {
    proxy = await new TcpProxy(REDIS.host, REDIS.port).start();
    const config: LockConfig = {
      provider: 'redis', waitTime: 200, leaseTime: 2000, clusterMode: false,
      clusterNodes: [`redis://${REDIS.host}:${proxy.port}`], connectTimeout: 1000, commandTimeout: 500,
    };
    lock = new RedisLock(config, `karya:test:${randomUUID()}:`);
  });
  afterAll(async () => {
    proxy?.thaw();
    await lock?.close();
    await proxy?.stop();
  });

  it('fails lock calls and pings within the command timeout plus the wait, then locks again by itself', async () => {
    await waitFor(async () => (await timed(() => lock.ping())).error === undefined, 5000, 'Redis up');
    proxy.freeze();
    const calls = await Promise.all([
      timed(() => lock.acquire('a')),
      timed(() => lock.acquire('b')),
      timed(() => lock.ping()),
    ]);
    for (const { ms, error } of calls) {
      expect(error).toBeDefined();
      expect(ms).toBeLessThan(500 + 1000 + 500);
    }
    // Later calls fail as fast: the mute connection was dropped, nothing waits on it.
    const later = await timed(() => lock.acquire('c'));
    expect(later.error).toBeDefined();
    expect(later.ms).toBeLessThan(1500);
    proxy.thaw();
    const healed = Date.now();
    await waitFor(async () => {
      const lease = await lock.acquire('d').catch(() => null);
      if (lease) await lock.release(lease);
      return lease !== null;
    }, 15_000, 'a lock after the partition');
    expect(Date.now() - healed).toBeLessThan(15_000);
  });
});

describe('RabbitMQ behind a silent network', () => {
  let vhost: { name: string; delete(): Promise<void> } | undefined;
  let proxy: TcpProxy;
  let queue: RabbitMqQueue;

  beforeAll(async () => {
    // A virtual host of its own: its queues go with it, whatever names the topology has.
    vhost = await createVhost(`karya-silent-${randomUUID().slice(0, 8)}`);
    proxy = await new TcpProxy(RABBIT.host, RABBIT.port).start();
    const config: QueueConfig = {
      provider: 'rabbitmq', username: 'guest', password: 'guest', virtualHost: vhost.name,
      clusterNodes: [`${RABBIT.host}:${proxy.port}`], heartbeat: 1, connectTimeout: 1000, publishTimeout: 1000,
    };
    queue = new RabbitMqQueue(config);
  });
  afterAll(async () => {
    proxy?.thaw();
    await queue?.close();
    await proxy?.stop();
    await vhost?.delete();
  });

  it('reports the broker down and fails publishes within the publish timeout, then delivers again by itself', async () => {
    const received: unknown[] = [];
    await queue.consume(QueueName.Executor, async (d) => void received.push(d.message.n), { prefetch: 10 });
    await queue.publish(QueueName.Executor, { n: 0 });
    await waitFor(() => received.includes(0), 5000, 'the first delivery');

    proxy.freeze();
    const ping = await timed(() => queue.ping());
    expect(ping.error).toBeDefined();
    expect(ping.ms).toBeLessThan(1500);
    const publish = await timed(() => queue.publish(QueueName.Executor, { n: 1 }));
    expect(publish.error?.message).toMatch(/timeout/);
    expect(publish.ms).toBeLessThan(1000 + 500);
    // The heartbeat notices the silence (two to three 1 s beats) and the manager starts reconnecting;
    // a publish then waits for a connection, and still no longer than the publish timeout.
    await waitFor(() => warnings.some((w) => /Disconnected from RabbitMQ/.test(w)), 5000, 'the heartbeat to drop the connection');
    const whileDown = await timed(() => queue.publish(QueueName.Executor, { n: 2 }));
    expect(whileDown.error?.message).toMatch(/timeout/);
    expect(whileDown.ms).toBeLessThan(1000 + 500);

    proxy.thaw();
    const healed = Date.now();
    await waitFor(async () => (await timed(() => queue.publish(QueueName.Executor, { n: 3 }))).error === undefined, 15_000, 'a publish after the partition');
    await waitFor(() => received.includes(3), 15_000, 'a delivery after the partition');
    expect(Date.now() - healed).toBeLessThan(15_000);
    await waitFor(async () => (await timed(() => queue.ping())).error === undefined, 5000, 'ping after the partition');
  });
});
