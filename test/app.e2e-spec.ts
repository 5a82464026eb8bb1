import { INestApplication, Type } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { ExecutorModule } from '../src/modules/executor/executor.module';
import { HooksModule } from '../src/modules/hooks/hooks.module';
import { PlansModule } from '../src/modules/plans/plans.module';
import { SchedulerModule } from '../src/modules/scheduler/scheduler.module';
import { UsersModule } from '../src/modules/users/users.module';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';

function hasModule(app: INestApplication, module: Type): boolean {
  try {
    app.select(module);
    return true;
  } catch {
    return false;
  }
}

describe('embedded all-in-one app (pglite in memory, memory lock, memory queue)', () => {
  let app: INestApplication;
  const tmp = new TempDir();

  beforeAll(async () => {
    const providers = tmp.write('providers.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n');
    const { config } = loadConfig({ KARYA_PROVIDERS_CONFIG_PATH: providers });
    app = await createApp(config, { logger: false });
  });
  afterAll(async () => {
    await app?.close();
    tmp.cleanup();
  });

  it('answers GET / with {}', async () => {
    const res = await request(app.getHttpServer()).get('/').expect(200);
    expect(res.body).toEqual({});
  });

  it('reports every configured connector up on /health', async () => {
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.info).toEqual({
      repo: expect.objectContaining({ status: 'up', provider: 'pglite' }),
      lock: expect.objectContaining({ status: 'up', provider: 'memory' }),
      queue: expect.objectContaining({ status: 'up', provider: 'memory' }),
    });
  });

  it('serves Swagger UI at /docs and the OpenAPI JSON at /docs-json', async () => {
    const ui = await request(app.getHttpServer()).get('/docs').expect(200);
    expect(ui.text).toContain('swagger-ui');
    const doc = await request(app.getHttpServer()).get('/docs-json').expect(200);
    expect(doc.body.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.body.paths)).toContain('/v1/user');
  });

  it('exposes Prometheus metrics at /metrics', async () => {
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(res.text).toContain('karya_executor_task_success_execution_count');
  });

  it('boots every feature module', () => {
    for (const m of [UsersModule, PlansModule, HooksModule, SchedulerModule, ExecutorModule]) {
      expect(hasModule(app, m)).toBe(true);
    }
  });

  it('collapses repeated slashes (the JS client calls //v1/...) and returns exactly the User keys', async () => {
    const created = await request(app.getHttpServer()).post('//v1/user').send({ name: 'alice' }).expect(200);
    expect(Object.keys(created.body).sort()).toEqual(['created_at', 'id', 'name']);
    expect(created.body.name).toBe('alice');
    expect(typeof created.body.created_at).toBe('number');
    const found = await request(app.getHttpServer()).get('//v1//user?username=alice').expect(200);
    expect(found.body).toEqual(created.body);
  });

  it('answers errors in plain text naming the problem', async () => {
    const missing = await request(app.getHttpServer()).get('/v1/user?username=nobody').expect(404);
    expect(missing.headers['content-type']).toMatch(/^text\/plain/);
    expect(missing.text).toBe('User (nobody) not found');

    const bad = await request(app.getHttpServer()).post('/v1/user').send({ name: 42 }).expect(400);
    expect(bad.headers['content-type']).toMatch(/^text\/plain/);
    expect(bad.text).toMatch(/^name: must be a string.*got 42$/);

    const malformed = await request(app.getHttpServer())
      .post('/v1/user')
      .set('content-type', 'application/json')
      .send('{"name": ')
      .expect(400);
    expect(malformed.text).toMatch(/^Malformed JSON body/);
  });

  it('answers CORS preflight with 200 for any origin', async () => {
    const res = await request(app.getHttpServer())
      .options('/v1/user')
      .set('Origin', 'http://karya-ui.example')
      .set('Access-Control-Request-Method', 'POST')
      .expect(200);
    expect(res.headers['access-control-allow-origin']).toBe('http://karya-ui.example');
    expect(res.headers['access-control-allow-methods']).toContain('PATCH');
  });
});

describe('role composition on real PostgreSQL, Redis and RabbitMQ', () => {
  let db: TestDatabase;
  const tmp = new TempDir();
  let providers: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    providers = writeRealProviders(tmp, { pgUrl: db.url });
  });
  afterAll(async () => {
    await db?.drop();
    tmp.cleanup();
  });

  async function withRole<T>(role: string, fn: (app: INestApplication) => Promise<T>): Promise<T> {
    const { config } = loadConfig({ KARYA_ROLE: role, KARYA_PROVIDERS_CONFIG_PATH: providers });
    const app = await createApp(config, { logger: false });
    try {
      return await fn(app);
    } finally {
      await app.close();
    }
  }

  it('scheduler: no /v1 routes, no docs, no server or executor modules; /health covers its connectors', () =>
    withRole('scheduler', async (app) => {
      await request(app.getHttpServer()).post('/v1/user').send({ name: 'x' }).expect(404);
      await request(app.getHttpServer()).get('/v1/user?username=x').expect(404);
      await request(app.getHttpServer()).get('/docs-json').expect(404);
      expect(hasModule(app, SchedulerModule)).toBe(true);
      for (const m of [UsersModule, PlansModule, HooksModule, ExecutorModule]) expect(hasModule(app, m)).toBe(false);
      // No queue transport, so no consumer on the executor or hooks queue.
      expect(app.getMicroservices()).toHaveLength(0);
      const health = await request(app.getHttpServer()).get('/health').expect(200);
      expect(health.body.info).toEqual({
        repo: expect.objectContaining({ status: 'up', provider: 'psql' }),
        lock: expect.objectContaining({ status: 'up', provider: 'redis' }),
        queue: expect.objectContaining({ status: 'up', provider: 'rabbitmq' }),
      });
    }));

  it('executor: no /v1 routes; executor and hooks modules only', () =>
    withRole('executor', async (app) => {
      await request(app.getHttpServer()).post('/v1/user').send({ name: 'x' }).expect(404);
      expect(hasModule(app, ExecutorModule)).toBe(true);
      expect(hasModule(app, HooksModule)).toBe(true);
      for (const m of [UsersModule, PlansModule, SchedulerModule]) expect(hasModule(app, m)).toBe(false);
      expect(app.getMicroservices()).toHaveLength(1);
    }));

  it('server: the API and docs, without scheduler or executor', () =>
    withRole('server', async (app) => {
      await request(app.getHttpServer()).post('/v1/user').send({ name: 'bob' }).expect(200);
      await request(app.getHttpServer()).get('/docs-json').expect(200);
      expect(hasModule(app, UsersModule)).toBe(true);
      // Hooks run (and their retries are moved) by executors only; the API side validates hook rules in PlansModule.
      for (const m of [SchedulerModule, ExecutorModule, HooksModule]) expect(hasModule(app, m)).toBe(false);
      expect(app.getMicroservices()).toHaveLength(0);
    }));

  it('a comma list combines roles', () =>
    withRole('scheduler,executor', async (app) => {
      expect(hasModule(app, SchedulerModule)).toBe(true);
      expect(hasModule(app, ExecutorModule)).toBe(true);
      expect(hasModule(app, UsersModule)).toBe(false);
    }));
});

describe('metricsEnabled: false in every role file', () => {
  const tmp = new TempDir();
  let app: INestApplication;
  afterAll(async () => {
    await app?.close();
    tmp.cleanup();
  });

  it('turns /metrics off', async () => {
    const off = 'application:\n  metricsEnabled: false\n';
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write('p.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
      KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', off),
      KARYA_SCHEDULER_CONFIG_PATH: tmp.write('scheduler.yml', off),
      KARYA_EXECUTOR_CONFIG_PATH: tmp.write('executor.yml', off),
    });
    app = await createApp(config, { logger: false });
    await request(app.getHttpServer()).get('/metrics').expect(404);
    await request(app.getHttpServer()).get('/health').expect(200);
  });
});
