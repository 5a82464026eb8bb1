import { INestApplication } from '@nestjs/common';
import { Client } from 'pg';
import request from 'supertest';
import { Delivery, QueueName } from '../src/connectors/queue/queue.port';
import { HttpSink, SinkHit, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { freePort, KaryaProcess } from './support/karya-process';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

const rest = (sink: HttpSink, path: string) => ({ type: T.Rest, base_url: `${sink.baseUrl}${path}`, method: 'POST' });
const EGRESS = '  egress:\n    allowPrivateNetworks: true\n';

/**
 * A failed hook's next try waits in the repository (hook_retries), not in the hands of a hooks-queue
 * consumer: however many hooks fail, on however long a backoff, the others run at once. Every role in one
 * process, on both stacks. Concurrency 8 makes the hooks queue's prefetch 8, far fewer than the failing
 * hooks, so holding failed deliveries through their 10 s backoff would keep the healthy hook waiting for
 * minutes.
 */
describe.each(stacks())('failing hooks on a long backoff on $name', (target) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userId: string;
  const deadLetters: Delivery[] = [];

  beforeAll(async () => {
    await sink.start();
    ({ app, http, userId } = await startInProcessKarya(target, tmp, {
      executorYml: `application:\n  concurrency: 8\n${EGRESS}  retry:\n    initialDelay: 10000\n    jitter: 0\n`,
      userName: 'hook-retries',
      deadLetters,
    }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const submit = async (body: Record<string, unknown>) =>
    (await request(http).post('/v1/plan').send({ user_id: userId, description: 'hr', period_time: 'PT0.5S', plan_type: { type: T.OneTime }, max_failure_retry: 0, ...body }).expect(200)).body;
  const at = (prefix: string): SinkHit[] => sink.hits.filter((h) => h.path.startsWith(prefix));

  it('calls a healthy hook within 2 s while 99 failing hooks of the same instant (49 on its own plan) wait out a 10 s backoff', async () => {
    // A plan allows 50 hooks: 49 failing ones and the healthy one (last, so behind every failing one of its plan)
    // on the plan under test, and 50 more failing ones on a plan that fails at the same moment.
    const failing = (plan: string, n: number) =>
      Array.from({ length: n }, (_, i) => ({ trigger: 'ON_FAILURE', max_retry: 1, action: rest(sink, `/fail/hook/${plan}/${i}`) }));
    const noise = await submit({ action: rest(sink, '/fail/task/noise'), hooks: failing('noise', 50) });
    const plan = await submit({
      action: rest(sink, '/fail/task/target'),
      hooks: [...failing('target', 49), { trigger: 'ON_FAILURE', max_retry: 1, action: rest(sink, '/healthy-hook') }],
    });

    await waitFor(() => at('/healthy-hook').length === 1, 15_000, 'the healthy hook');
    const trigger = at('/fail/task/target')[0].receivedAt;
    expect(at('/healthy-hook')[0].receivedAt - trigger).toBeLessThan(2000);
    expect(at('/healthy-hook')[0].headers).toMatchObject({ 'x-karya-plan-id': plan.id, 'x-karya-trigger': 'ON_FAILURE' });

    // Every failing hook had its first try at once, and logged it.
    await waitFor(() => at('/fail/hook/').length >= 99, 10_000, 'the first try of each failing hook');
    const logs = async (id: string) =>
      ((await request(http).get(`/v1/plan/${id}/summary`).expect(200)).body.error_logs as { type: { type: string } }[])
        .filter((e) => e.type.type === 'karya.core.entities.ErrorLogType.HookErrorLog');
    await waitFor(async () => (await logs(plan.id)).length === 49 && (await logs(noise.id)).length === 50, 10_000, '99 HookErrorLogs');

    // Their second (last) tries come after the 10 s backoff, then each is dead-lettered once.
    const isHookLetter = (d: Delivery) => d.originalQueue === QueueName.Hooks && [plan.id, noise.id].includes(d.message.planId as string);
    await waitFor(() => deadLetters.filter(isHookLetter).length === 99, 25_000, '99 hook dead letters');
    const tries = new Map<string, SinkHit[]>();
    for (const h of at('/fail/hook/')) tries.set(h.path, [...(tries.get(h.path) ?? []), h]);
    expect(tries.size).toBe(99);
    for (const [, [first, second, ...more]] of tries) {
      expect([first.attempt, second?.attempt, more.length]).toEqual([1, 2, 0]);
      expect(second.receivedAt - first.receivedAt).toBeGreaterThanOrEqual(10_000 - 50);
      expect(second.receivedAt - first.receivedAt).toBeLessThan(10_000 + 3000);
    }
    for (const d of deadLetters.filter(isHookLetter)) {
      expect(d.deadLetterReason).toMatch(/^Hook failed after 2 attempt\(s\): REST call failed --- \[500/);
    }
    expect(at('/healthy-hook')).toHaveLength(1);
    expect(await logs(plan.id)).toHaveLength(98);
  }, 60_000);
});

/**
 * A parked try belongs to no process: it outlives the executor that parked it. A real `node dist/main.js`
 * (every role) is killed -9 while a failed hook waits out its backoff, and started again; the hook's next
 * try still runs, once, after the backoff.
 */
describe('a parked hook retry survives a crash of the process that parked it', () => {
  const sink = new HttpSink();
  const running: KaryaProcess[] = [];
  beforeAll(async () => void (await sink.start()));
  afterAll(async () => {
    await Promise.all(running.map((p) => p.kill()));
    await sink.stop();
  });

  const cases: { name: string; providers(tmp: TempDir): Promise<{ path: string; parked?: () => Promise<number>; done(): Promise<void> }> }[] = [
    {
      name: 'PostgreSQL, Redis and RabbitMQ',
      providers: async (tmp) => {
        const db: TestDatabase = await createTestDatabase();
        const pg = new Client({ connectionString: db.url });
        await pg.connect();
        return {
          path: writeRealProviders(tmp, { pgUrl: db.url }),
          parked: async () => (await pg.query(`SELECT count(*)::int AS n FROM hook_retries`)).rows[0].n as number,
          done: async () => {
            await pg.end();
            await db.drop();
          },
        };
      },
    },
    {
      name: 'the embedded stack (PGlite on disk, memory queue)',
      providers: async (tmp) => ({
        path: tmp.write('providers.yml', `repo:\n  provider: pglite\n  partitions: 5\n  properties:\n    dataDir: ${tmp.path}/data\n`),
        done: async () => undefined,
      }),
    },
  ];

  it.each(cases)('on $name', async (c) => {
    const tmp = new TempDir();
    const stack = await c.providers(tmp);
    try {
      const port = await freePort();
      const env = {
        PORT: String(port),
        KARYA_PROVIDERS_CONFIG_PATH: stack.path,
        KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', `application:\n${EGRESS}`),
        KARYA_SCHEDULER_CONFIG_PATH: tmp.write('scheduler.yml', 'application:\n  fetcher:\n    pollFrequency: 100\n'),
        KARYA_EXECUTOR_CONFIG_PATH: tmp.write('executor.yml', `application:\n${EGRESS}  retry:\n    initialDelay: 6000\n    jitter: 0\n`),
      };
      const first = new KaryaProcess(env, tmp.path).start();
      running.push(first);
      await first.waitForHealthy(port);
      const post = async (path: string, body: unknown) =>
        (await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json() as Promise<{ id: string }>;
      const user = await post('/v1/user', { name: 'restart' });
      const key = `${Date.now()}`;
      const plan = await post('/v1/plan', {
        user_id: user.id, description: 'restart', period_time: 'PT0.5S', plan_type: { type: T.OneTime },
        action: rest(sink, `/ok/${key}`),
        hooks: [{ trigger: 'ON_COMPLETION', max_retry: 1, action: rest(sink, `/fail/restart/${key}`) }],
      });
      const tries = () => sink.hits.filter((h) => h.path === `/fail/restart/${key}`);
      await waitFor(() => tries().length === 1, 15_000, 'the first try of the hook');
      // Its HookErrorLog and the parked next try are written in one statement: once the log shows, so has the row.
      await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/v1/plan/${plan.id}/summary`);
        return ((await res.json()) as { error_logs: unknown[] }).error_logs.length === 1;
      }, 5000, 'the HookErrorLog of the first try');
      first.signal('SIGKILL');
      await first.waitForExit(5000);
      if (stack.parked) expect(await stack.parked()).toBe(1);

      const second = new KaryaProcess(env, tmp.path).start();
      running.push(second);
      await second.waitForHealthy(port);
      await waitFor(() => tries().length === 2, 20_000, 'the second try, after the restart');
      const [one, two] = tries();
      expect(two.attempt).toBe(2);
      expect(two.receivedAt - one.receivedAt).toBeGreaterThanOrEqual(6000 - 50);
      await new Promise((r) => setTimeout(r, 1500)); // a duplicate would be moved by the next relay pass
      expect(tries()).toHaveLength(2);
      if (stack.parked) expect(await stack.parked()).toBe(0);
      second.signal('SIGTERM');
      await second.waitForExit(15_000);
    } finally {
      await stack.done();
      tmp.cleanup();
    }
  }, 120_000);
});
