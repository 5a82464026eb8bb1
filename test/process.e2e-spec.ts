import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { freePort, KaryaProcess, PROJECT_ROOT } from './support/karya-process';
import { writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';

/**
 * Karya as users run it: `node dist/main.js` (what `npm start` runs after building), separate processes,
 * real signals. `npm test` builds dist/ first (pretest).
 */
const running: KaryaProcess[] = [];
function karya(env: Record<string, string>, cwd?: string): KaryaProcess {
  const p = new KaryaProcess(env, cwd).start();
  running.push(p);
  return p;
}
afterAll(async () => {
  await Promise.all(running.map((p) => p.kill()));
});

async function getJson(port: number, path: string, init?: RequestInit): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

describe('the embedded default (no configuration at all)', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it('serves /health and /docs with no database, broker or Redis, shuts down on SIGTERM and keeps its data across a restart', async () => {
    const port = await freePort();
    const first = karya({ PORT: String(port) }, tmp.path);
    await first.waitForHealthy(port);
    const health = await getJson(port, '/health');
    expect(health.body).toMatchObject({
      status: 'ok',
      info: { repo: { status: 'up', provider: 'pglite' }, lock: { status: 'up', provider: 'memory' }, queue: { status: 'up', provider: 'memory' } },
    });
    expect((await getJson(port, '/docs')).status).toBe(200);
    expect((await getJson(port, '/')).body).toEqual({});
    expect(first.stdout).toContain('role=all');
    expect(existsSync(join(tmp.path, '.karya/data'))).toBe(true);

    const created = await getJson(port, '//v1/user', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'survivor' }),
    });
    expect(created.status).toBe(200);

    first.signal('SIGTERM');
    expect(await first.waitForExit(15_000)).toEqual({ code: 0, signal: null });

    const second = karya({ PORT: String(port) }, tmp.path);
    await second.waitForHealthy(port);
    const found = await getJson(port, '/v1/user?username=survivor');
    expect(found.status).toBe(200);
    expect(found.body).toEqual(created.body);
    second.signal('SIGTERM');
    expect((await second.waitForExit(15_000)).code).toBe(0);
  });
});

describe('start-up errors exit 1 with a message', () => {
  it('an unknown KARYA_ROLE lists the valid roles', async () => {
    const p = karya({ KARYA_ROLE: 'worker' });
    expect((await p.waitForExit()).code).toBe(1);
    expect(p.stderr).toMatch(/Unknown KARYA_ROLE value "worker".*valid roles are server, scheduler, executor, all/);
  });

  it('embedded providers with a split role say why', async () => {
    const p = karya({ KARYA_ROLE: 'executor' });
    expect((await p.waitForExit()).code).toBe(1);
    expect(p.stderr).toMatch(/KARYA_ROLE=executor cannot use the embedded provider\(s\).*inside one process/);
  });

  it('every config problem at once', async () => {
    const tmp = new TempDir();
    try {
      const server = tmp.write('server.yml', 'application:\n  port: "x"\n  strictMode: 3\n');
      const p = karya({ KARYA_SERVER_CONFIG_PATH: server, KARYA_SCHEDULER_CONFIG_PATH: join(tmp.path, 'missing.yml') });
      expect((await p.waitForExit()).code).toBe(1);
      expect(p.stderr).toContain('Invalid Karya configuration (3 problems)');
      expect(p.stderr).toMatch(/server\.yml .*application\.port: expected an integer/);
      expect(p.stderr).toMatch(/server\.yml .*application\.strictMode: expected a boolean/);
      expect(p.stderr).toMatch(/scheduler\.yml .*cannot read file: ENOENT/);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('three roles side by side on real PostgreSQL, Redis and RabbitMQ', () => {
  let db: TestDatabase;
  const tmp = new TempDir();
  beforeAll(async () => (db = await createTestDatabase()));
  afterAll(async () => {
    await db?.drop();
    tmp.cleanup();
  });

  it('each process boots only its role, answers /health, and exits cleanly on SIGTERM', async () => {
    const providers = writeRealProviders(tmp, { pgUrl: db.url });
    const roles = ['server', 'scheduler', 'executor'] as const;
    const ports = await Promise.all(roles.map(() => freePort()));
    const procs = roles.map((role, i) =>
      karya({ KARYA_ROLE: role, KARYA_PROVIDERS_CONFIG_PATH: providers, PORT: String(ports[i]) }),
    );
    await Promise.all(procs.map((p, i) => p.waitForHealthy(ports[i])));

    const [serverPort, schedulerPort, executorPort] = ports;
    const user = await getJson(serverPort, '/v1/user', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'split' }),
    });
    expect(user.status).toBe(200);
    for (const port of [schedulerPort, executorPort]) {
      expect((await getJson(port, '/v1/user?username=split')).status).toBe(404);
      expect((await getJson(port, '/docs-json')).status).toBe(404);
      expect((await getJson(port, '/health')).body).toMatchObject({
        info: { repo: { provider: 'psql' }, lock: { provider: 'redis' }, queue: { provider: 'rabbitmq' } },
      });
    }

    procs.forEach((p) => p.signal('SIGTERM'));
    const exits = await Promise.all(procs.map((p) => p.waitForExit(15_000)));
    expect(exits).toEqual(roles.map(() => ({ code: 0, signal: null })));
  });
});

describe('npm run migrate', () => {
  let db: TestDatabase;
  const tmp = new TempDir();
  beforeAll(async () => (db = await createTestDatabase()));
  afterAll(async () => {
    await db?.drop();
    tmp.cleanup();
  });

  it('applies the schema to a fresh database, then has nothing to do', async () => {
    const providers = writeRealProviders(tmp, { pgUrl: db.url, partitions: 4 });
    const env = { KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_ROLE: 'server' };
    const first = new KaryaProcess(env, PROJECT_ROOT, join(PROJECT_ROOT, 'dist/migrate.js')).start();
    expect((await first.waitForExit()).code).toBe(0);
    expect(first.stdout).toContain('migrations applied (psql, 4 partitions)');
    const second = new KaryaProcess(env, PROJECT_ROOT, join(PROJECT_ROOT, 'dist/migrate.js')).start();
    expect((await second.waitForExit()).code).toBe(0);
    expect(second.stdout).toContain('already up to date');
  });
});
