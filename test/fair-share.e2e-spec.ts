import { connect as amqpConnect } from 'amqplib';
import { Client } from 'pg';
import { TcpProxy } from './support/tcp-proxy';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { freePort, KaryaProcess } from './support/karya-process';
import { HttpSink, waitFor } from './support/http-sink';
import { RABBIT, writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * An executor's prefetch bounds the tasks it holds, not the messages (executorPrefetch): a burst's tasks
 * travel 50 to a message, and with a prefetch of `concurrency` messages one executor took the whole burst
 * (100 messages × 50 tasks) while a second one, joining a moment later, found nothing left to do.
 *
 * Real processes on PostgreSQL, Redis and RabbitMQ: a server, a scheduler and two executors
 * (concurrency 100). Executor B reaches RabbitMQ through a proxy that is not listening yet, so it is up but
 * cannot consume; A alone starts on a burst of 5,000 tasks (a target that answers in 400 ms keeps the drain
 * long enough to matter). Then B's link opens, and each executor must have run 30-70 % of the burst,
 * counted by its own /metrics.
 */
const PLANS = 5000;
const CONCURRENCY = 100;
const SINK_DELAY_MS = 400;
/** From the insert to the due time: the scheduler claims ahead, so the whole burst is published at once. */
const LEAD_MS = 3000;

describe('fair share of a burst between two executors (real processes, PostgreSQL, Redis, RabbitMQ)', () => {
  const tmp = new TempDir();
  const tmpB = new TempDir();
  const sink = new HttpSink();
  const proxy = new TcpProxy(RABBIT.host, RABBIT.port);
  let db: TestDatabase;
  let pg: Client;
  const all: KaryaProcess[] = [];

  beforeAll(async () => {
    await sink.start();
    db = await createTestDatabase();
    pg = new Client({ connectionString: db.url });
    await pg.connect();
  });
  afterAll(async () => {
    await Promise.all(all.map((p) => p.kill()));
    await proxy.stop();
    await pg?.end();
    await db?.drop();
    await sink.stop();
    tmp.cleanup();
    tmpB.cleanup();
  });

  async function start(env: Record<string, string>): Promise<{ p: KaryaProcess; port: number }> {
    const port = await freePort();
    const p = new KaryaProcess({ PORT: String(port), ...env }).start();
    all.push(p);
    return { p, port };
  }

  async function executions(port: number): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const ok = /^karya_executor_task_success_execution_count(?:\{[^}]*\})? (\d+)/m.exec(text);
    const failed = /^karya_executor_task_failed_execution_count(?:\{[^}]*\})? (\d+)/m.exec(text);
    return Number(ok?.[1] ?? 0) + Number(failed?.[1] ?? 0);
  }

  it(`gives each of two executors 30-70 % of a ${PLANS}-task burst, although one of them joins late`, async () => {
    proxy.port = await freePort();
    const providers = writeRealProviders(tmp, { pgUrl: db.url, partitions: 5 });
    const providersB = writeRealProviders(tmpB, { pgUrl: db.url, partitions: 5, rabbitPort: proxy.port });
    // The sink listens on 127.0.0.1, which the real stack's default egress policy denies.
    const egress = '  egress:\n    allowPrivateNetworks: true\n';
    const executorYml = tmp.write(
      'executor.yml',
      `application:\n  concurrency: ${CONCURRENCY}\n${egress}  connectors:\n    - type: restapi\n      configs: {}\n`,
    );
    // A lease longer than the drain: a re-dispatch would blur what each executor was handed.
    const schedulerYml = tmp.write(
      'scheduler.yml',
      'application:\n  leaseTime: 60000\n  workers: 2\n  fetcher:\n    pollFrequency: 200\n    channelCapacity: 1000\n',
    );
    const server = await start({ KARYA_ROLE: 'server', KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', `application:\n${egress}`) });
    const scheduler = await start({ KARYA_ROLE: 'scheduler', KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_SCHEDULER_CONFIG_PATH: schedulerYml });
    const a = await start({ KARYA_ROLE: 'executor', KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_EXECUTOR_CONFIG_PATH: executorYml });
    await Promise.all([server, scheduler, a].map(({ p, port }) => p.waitForHealthy(port)));
    // Started only now, after A has migrated the schema; it waits for its broker link.
    const b = await start({ KARYA_ROLE: 'executor', KARYA_PROVIDERS_CONFIG_PATH: providersB, KARYA_EXECUTOR_CONFIG_PATH: executorYml });

    const user = (await (await fetch(`http://127.0.0.1:${server.port}/v1/user`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fair' }),
    })).json()) as { id: string };
    // Stored with SQL, as bench/probe.mjs does: 5,000 API submissions would take most of the time budget,
    // and the submission path is not what this test is about.
    const due = Date.now() + LEAD_MS;
    const action = { type: T.Rest, base_url: `${sink.baseUrl}/slow/${SINK_DELAY_MS}`, method: 'POST', timeout: 5000 };
    await pg.query(
      `WITH ids AS (SELECT gen_random_uuid() AS plan_id, gen_random_uuid() AS task_id, g FROM generate_series(1, $1::int) g),
       p AS (INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
             SELECT plan_id, $2, 'fair', 'PT1S', $3::jsonb, 'CREATED', 0, $4::jsonb, '[]'::jsonb, NULL, now(), now() FROM ids)
       INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, next_execution_at)
       SELECT task_id, 1 + (g % 5), plan_id, 'CREATED', 0, now(), to_timestamp($5::float8 / 1000) FROM ids`,
      [PLANS, user.id, JSON.stringify({ type: T.OneTime }), JSON.stringify(action), due],
    );
    const burst = () => sink.hits.filter((h) => h.path === `/slow/${SINK_DELAY_MS}`);
    await waitFor(() => burst().length >= 200, 30_000, 'executor A under way with the burst');

    // A holds at most its prefetch; the rest of the burst still waits in the broker for anyone with room.
    const admin = await amqpConnect(`amqp://guest:guest@${RABBIT.host}:${RABBIT.port}/${encodeURIComponent(RABBIT.vhost)}`);
    try {
      const channel = await admin.createChannel();
      const { messageCount } = await channel.checkQueue('karya-executor-batch-queue');
      expect(messageCount).toBeGreaterThanOrEqual(60); // ≥ 3,000 of the 5,000 tasks
    } finally {
      await admin.close();
    }

    await proxy.start();
    await b.p.waitForHealthy(b.port);
    await waitFor(async () => {
      const { rows } = await pg.query(`SELECT count(*)::int AS n FROM tasks WHERE status = 'SUCCESS'`);
      return rows[0].n === PLANS;
    }, 60_000, `all ${PLANS} tasks SUCCESS`);

    expect(new Set(burst().map((h) => h.key)).size).toBe(PLANS);
    const [byA, byB] = [await executions(a.port), await executions(b.port)];
    expect(byA + byB).toBeGreaterThanOrEqual(PLANS);
    for (const share of [byA / (byA + byB), byB / (byA + byB)]) {
      expect(share).toBeGreaterThanOrEqual(0.3);
      expect(share).toBeLessThanOrEqual(0.7);
    }
  }, 90_000);
});
