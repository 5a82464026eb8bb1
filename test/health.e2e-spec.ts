import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { RABBIT, REDIS, writeRealProviders } from './support/real-services';
import { TcpProxy } from './support/tcp-proxy';
import { TempDir } from './support/temp-files';

/**
 * Each connector's indicator must reflect its real backend: stopping a service (here: cutting the proxy
 * the app reaches it through) turns exactly that indicator down and /health 503; bringing it back turns it
 * up again without restarting Karya (the connectors reconnect by themselves).
 */
describe('/health per connector on real services', () => {
  let db: TestDatabase;
  let app: INestApplication;
  const tmp = new TempDir();
  let proxies: Record<'repo' | 'lock' | 'queue', TcpProxy>;

  beforeAll(async () => {
    db = await createTestDatabase();
    const pgUrl = new URL(db.url);
    proxies = {
      repo: new TcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432)),
      lock: new TcpProxy(REDIS.host, REDIS.port),
      queue: new TcpProxy(RABBIT.host, RABBIT.port),
    };
    await Promise.all(Object.values(proxies).map((p) => p.start()));
    pgUrl.port = String(proxies.repo.port);
    const providers = writeRealProviders(tmp, {
      pgUrl: pgUrl.toString(),
      redisPort: proxies.lock.port,
      rabbitPort: proxies.queue.port,
    });
    const { config } = loadConfig({ KARYA_ROLE: 'scheduler', KARYA_PROVIDERS_CONFIG_PATH: providers });
    app = await createApp(config, { logger: false });
  });

  afterAll(async () => {
    await app?.close();
    if (proxies) await Promise.all(Object.values(proxies).map((p) => p.stop()));
    await db?.drop();
    tmp.cleanup();
  });

  async function health() {
    const res = await request(app.getHttpServer()).get('/health');
    return { code: res.status, body: res.body as { status: string; info?: object; error?: object; details: Record<string, { status: string }> } };
  }

  async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error('condition not met in time');
  }

  it('is up while every service answers', async () => {
    const h = await health();
    expect(h.code).toBe(200);
    expect(Object.fromEntries(Object.entries(h.body.details).map(([k, v]) => [k, v.status]))).toEqual({
      repo: 'up',
      lock: 'up',
      queue: 'up',
    });
  });

  it.each(['repo', 'lock', 'queue'] as const)('goes down when %s stops, and up when it comes back', async (which) => {
    await proxies[which].stop();
    await eventually(async () => (await health()).body.details?.[which]?.status === 'down');
    const down = await health();
    expect(down.code).toBe(503);
    expect(down.body.status).toBe('error');
    for (const other of (['repo', 'lock', 'queue'] as const).filter((k) => k !== which)) {
      expect(down.body.details[other].status).toBe('up');
    }

    await proxies[which].start();
    await eventually(async () => (await health()).code === 200);
    expect((await health()).body.details[which].status).toBe('up');
  });
});
