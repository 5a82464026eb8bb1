import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { DistributedLock } from '../src/connectors/lock/lock.port';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * The v1 plans API against the wire contract (shared/spec/api-v1.md), on the embedded stack (PGlite +
 * memory lock) and on real PostgreSQL + Redis + RabbitMQ. Every row of the endpoint table, every error
 * text, every validation rule, paging, cascading cancel, lock contention and the exact key sets.
 */


const PLAN_KEYS = [
  'action', 'created_at', 'description', 'hook', 'id', 'max_failure_retry', 'parent_plan_id', 'period_time', 'status',
  'type', 'updated_at', 'user_id',
];
const TASK_KEYS = ['created_at', 'executed_at', 'id', 'next_execution_at', 'partition_key', 'plan_id', 'status'];
const keys = (o: object) => Object.keys(o).sort();

type Json = Record<string, unknown>;

const rest = (extra: Json = {}): Json => ({ type: T.Rest, base_url: 'sink.local:8080/hook', ...extra });
const chained = (request: Json): Json => ({ type: T.Chained, request });

describe.each(stacks({ partitions: 3, lockWaitTime: 300 }))('v1 plans API on $name', (target) => {
  const tmp = new TempDir();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;

  beforeAll(async () => {
    const { config } = loadConfig({ KARYA_ROLE: 'all', KARYA_PROVIDERS_CONFIG_PATH: await target.providers(tmp) });
    app = await createApp(config, { logger: false });
    http = app.getHttpServer();
    ds = app.get(DataSource);
    userId = (await request(http).post('/v1/user').send({ name: `owner-${randomUUID()}` }).expect(200)).body.id;
  });
  afterAll(async () => {
    await app?.close();
    await target.cleanup();
    tmp.cleanup();
  });

  const plan = (extra: Json = {}): Json => ({
    user_id: userId,
    description: 'a plan',
    period_time: 'PT10S',
    plan_type: { type: T.OneTime },
    action: rest(),
    ...extra,
  });
  const submit = (body: unknown) => request(http).post('//v1/plan').send(body as object);
  async function submitOk(body: Json): Promise<Json> {
    const res = await submit(body);
    if (res.status !== 200) throw new Error(`submit failed: ${res.status} ${res.text}`);
    return res.body as Json;
  }
  async function expect400(res: request.Response, message: string | RegExp): Promise<void> {
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    if (typeof message === 'string') expect(res.text).toBe(message);
    else expect(res.text).toMatch(message);
  }

  describe('POST /v1/plan', () => {
    it('creates the plan (CREATED) with every default filled, and its first task one period later, in one go', async () => {
      const before = Date.now();
      const p = await submitOk(plan({ period_time: 'PT7S' }));
      const after = Date.now();
      expect(keys(p)).toEqual(PLAN_KEYS);
      expect(p).toMatchObject({
        user_id: userId,
        description: 'a plan',
        period_time: 'PT7S',
        type: { type: T.OneTime },
        status: 'CREATED',
        max_failure_retry: 3,
        hook: [],
        parent_plan_id: null,
        action: {
          type: T.Rest,
          base_url: 'sink.local:8080/hook',
          protocol: 'HTTP',
          method: 'GET',
          headers: { 'content-type': 'application/json' },
          body: { type: T.EmptyBody },
          timeout: 2000,
        },
      });
      expect(p.created_at).toBeGreaterThanOrEqual(before);
      expect(p.created_at).toBeLessThanOrEqual(after);
      expect(p.updated_at).toBe(p.created_at);

      const got = await request(http).get(`/v1/plan/${p.id}`).expect(200);
      expect(keys(got.body)).toEqual(['latest_task', 'plan']);
      expect(got.body.plan).toEqual(p);
      const task = got.body.latest_task as Json;
      expect(keys(task)).toEqual(TASK_KEYS);
      expect(task).toMatchObject({ plan_id: p.id, status: 'CREATED', executed_at: null });
      expect(task.next_execution_at).toBe((p.created_at as number) + 7000);
      expect(task.partition_key).toBeGreaterThanOrEqual(1);
      expect(task.partition_key).toBeLessThanOrEqual(3);
    });

    it('accepts a Recurring plan without end_at (the JS client omits it) as unbounded, and keeps an end_at', async () => {
      const unbounded = await submitOk(plan({ plan_type: { type: T.Recurring } }));
      expect(unbounded.type).toEqual({ type: T.Recurring, end_at: null });
      const bounded = await submitOk(plan({ plan_type: { end_at: 1_900_000_000_000, type: T.Recurring } }));
      expect(bounded.type).toEqual({ type: T.Recurring, end_at: 1_900_000_000_000 });
    });

    it('accepts every action type and both bodies, enums in any case, and ignores unknown keys', async () => {
      const p = await submitOk(
        plan({
          unknown_top_level: true,
          action: rest({ protocol: 'https', method: 'post', body: { type: T.JsonBody, json_string: '{"a":1}' }, timeout: 500, headers: { 'x-a': 'b' }, extra: 1 }),
          hooks: [
            { trigger: 'on_failure', action: { type: T.Slack, channel: '#ops', message: '[]' } },
            { trigger: 'ON_COMPLETION', max_retry: 0, action: { type: T.Email, recipient: 'a@b.c', subject: 's', message: 'm' } },
            { trigger: 'On_Failure', action: { type: T.Kafka, topic: 't', message: 'm' } },
          ],
          max_failure_retry: 0,
        }),
      );
      expect(p).not.toHaveProperty('unknown_top_level');
      expect(p.action).toEqual({
        type: T.Rest,
        base_url: 'sink.local:8080/hook',
        protocol: 'HTTPS',
        method: 'POST',
        headers: { 'x-a': 'b' },
        body: { type: T.JsonBody, json_string: '{"a":1}' },
        timeout: 500,
      });
      expect(p.hook).toEqual([
        { trigger: 'ON_FAILURE', max_retry: 3, action: { type: T.Slack, channel: '#ops', message: '[]' } },
        { trigger: 'ON_COMPLETION', max_retry: 0, action: { type: T.Email, recipient: 'a@b.c', subject: 's', message: 'm' } },
        { trigger: 'ON_FAILURE', max_retry: 3, action: { type: T.Kafka, topic: 't', message: 'm', key: null } },
      ]);
      expect(p.max_failure_retry).toBe(0);
    });

    it('accepts a chained action up to maxChainedDepth (2) and echoes the nested request with defaults', async () => {
      const inner = plan({ description: 'inner', action: rest() });
      const p = await submitOk(plan({ action: chained(plan({ action: chained(inner) })) }));
      const level1 = (p.action as { request: Json }).request;
      expect(level1).toMatchObject({ user_id: userId, hooks: [], max_failure_retry: 3 });
      expect(((level1.action as { request: Json }).request.action as Json).protocol).toBe('HTTP');
    });

    it.each([
      ['PT7S', 7000], ['pt1m', 60_000], ['P1D', 86_400_000], ['P1DT2H', 93_600_000], ['PT0.25S', 250], ['P1W', 604_800_000],
    ])('accepts period_time %s (due %d ms later)', async (period, ms) => {
      const p = await submitOk(plan({ period_time: period }));
      const t = (await request(http).get(`/v1/plan/${p.id}`).expect(200)).body.latest_task;
      expect(t.next_execution_at - (p.created_at as number)).toBe(ms);
    });

    it('answers 404 for an unknown user and writes nothing', async () => {
      const ghost = randomUUID();
      const res = await submit(plan({ user_id: ghost })).expect(404);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.text).toBe(`User (${ghost}) not found`);
      const rows: { n: number }[] = await ds.query(`SELECT count(*)::int AS n FROM plans WHERE user_id = $1`, [ghost]);
      expect(rows[0].n).toBe(0);
    });

    describe('validation (400, plain text naming the field and the value)', () => {
      it('malformed JSON', async () => {
        const res = await request(http).post('/v1/plan').set('content-type', 'application/json').send('{"user_id": ');
        await expect400(res, /^Malformed JSON body/);
      });

      it('a body that is not an object', async () => {
        await expect400(await submit([plan()]), 'request body: must be a JSON object, got a list');
      });

      it.each(['user_id', 'description', 'period_time', 'plan_type', 'action'])('missing %s', async (field) => {
        const body = plan();
        delete body[field];
        await expect400(await submit(body), `${field}: required, got nothing`);
      });

      it.each([
        [{ user_id: 'not-a-uuid' }, 'user_id: must be a UUID, got "not-a-uuid"'],
        [{ user_id: 42 }, 'user_id: must be a UUID string, got 42'],
        [{ description: 7 }, 'description: must be a string, got 7'],
        [{ description: 'x'.repeat(256) }, /^description: must be at most 255 characters, got "x{20,}/],
        [{ max_failure_retry: -1 }, 'max_failure_retry: must be at least 0, got -1'],
        [{ max_failure_retry: 101 }, 'max_failure_retry: must be at most 100, got 101'],
        [{ max_failure_retry: 1.5 }, 'max_failure_retry: must be an integer, got 1.5'],
        // A quoted integer is read as the number (karya-ui); any other string is still no integer.
        [{ max_failure_retry: '5.5' }, 'max_failure_retry: must be an integer, got "5.5"'],
        [{ max_failure_retry: 'five' }, 'max_failure_retry: must be an integer, got "five"'],
        [{ max_failure_retry: '' }, 'max_failure_retry: must be an integer, got ""'],
        [{ max_failure_retry: ' 5' }, 'max_failure_retry: must be an integer, got " 5"'],
        [{ max_failure_retry: '101' }, 'max_failure_retry: must be at most 100, got "101"'],
        [{ hooks: {} }, 'hooks: must be a list of hooks, got {}'],
        [{ hooks: [1] }, 'hooks: must be a list of hook objects, got [1]'],
      ])('wrong type or range %j', async (patch, message) => {
        await expect400(await submit(plan(patch)), message);
      });

      it.each([
        ['P1M', 'months and years are calendar-dependent'],
        ['P1Y', 'months and years are calendar-dependent'],
        ['-PT5S', 'must not be negative'],
        ['PT-5S', 'must not be negative'],
        ['5 seconds', 'must be an ISO-8601 duration'],
        ['', 'must be an ISO-8601 duration'],
      ])('period_time %p', async (period, why) => {
        const res = await submit(plan({ period_time: period }));
        await expect400(res, new RegExp(`^period_time: ${why}.*got ${JSON.stringify(period).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
      });

      it('period_time that is not a string', async () => {
        await expect400(await submit(plan({ period_time: 30 })), 'period_time: must be an ISO-8601 duration string such as PT30S, got 30');
      });

      it('a Recurring period below the minimum (1 s); the same period is fine for OneTime', async () => {
        await expect400(
          await submit(plan({ period_time: 'PT0.5S', plan_type: { type: T.Recurring } })),
          `period_time: a Recurring plan's period must be at least 1000 ms (server.yml minRecurringPeriod), got "PT0.5S"`,
        );
        await submitOk(plan({ period_time: 'PT0.5S' }));
      });

      it.each([
        [{ plan_type: { type: 'karya.core.entities.PlanType.Monthly' } }, /^plan_type: unknown plan type type "karya\.core\.entities\.PlanType\.Monthly"; expected one of karya\.core\.entities\.PlanType\.OneTime, karya\.core\.entities\.PlanType\.Recurring/],
        [{ plan_type: {} }, /^plan_type: must carry a "type" naming the plan type/],
        [{ plan_type: 'OneTime' }, /^plan_type: must be an object with a "type" naming the plan type, got "OneTime"$/],
        [{ plan_type: { type: T.Recurring, end_at: 'tomorrow' } }, 'plan_type.end_at: must be an integer epoch ms or null, got "tomorrow"'],
        [{ action: { type: 'karya.core.entities.Action.SmsRequest' } }, /^action: unknown action type "karya\.core\.entities\.Action\.SmsRequest"; expected one of .*RestApiRequest/],
        [{ action: { base_url: 'x' } }, /^action: must carry a "type" naming the action/],
        [{ action: rest({ body: { type: 'karya.core.entities.http.Body.XmlBody' } }) }, /^action\.body: unknown body type "karya\.core\.entities\.http\.Body\.XmlBody"/],
        [{ action: rest({ body: { type: T.JsonBody } }) }, 'action.body.json_string: required, got nothing'],
        [{ action: rest({ base_url: 'https://sink.local/x' }) }, /^action\.base_url: must be host\[:port\]\[\/path\] without a scheme .*got "https:\/\/sink\.local\/x"$/],
        [{ action: rest({ base_url: undefined }) }, 'action.base_url: required, got nothing'],
        [{ action: rest({ protocol: 'FTP' }) }, 'action.protocol: must be one of HTTP, HTTPS, got "FTP"'],
        [{ action: rest({ method: 'TRACE' }) }, 'action.method: must be one of GET, POST, PATCH, PUT, DELETE, got "TRACE"'],
        [{ action: rest({ headers: { a: 1 } }) }, 'action.headers: must be an object of string values, got {"a":1}'],
        [{ action: rest({ timeout: 0 }) }, 'action.timeout: must be at least 1 ms, got 0'],
        [{ action: { type: T.Slack, channel: '#c' } }, 'action.message: required, got nothing'],
        [{ action: { type: T.Email, recipient: 'a@b.c', subject: 's', message: 5 } }, 'action.message: must be a string, got 5'],
        [{ action: { type: T.Kafka, topic: '', message: 'm' } }, 'action.topic: must not be empty, got ""'],
        [{ action: { type: T.Chained } }, 'action.request: required, got nothing'],
        [{ action: chained({ user_id: randomUUID() }) }, /^action\.request\.description: required, got nothing; action\.request\.period_time: required/],
        [{ hooks: [{ trigger: 'ON_SUCCESS', action: rest() }] }, 'hooks[0].trigger: must be one of ON_FAILURE, ON_COMPLETION, got "ON_SUCCESS"'],
        [{ hooks: [{ trigger: 'ON_FAILURE' }] }, /^hooks\[0\]\.action: required, got nothing/],
        [{ hooks: [{ trigger: 'ON_FAILURE', action: rest(), max_retry: 101 }] }, 'hooks[0].max_retry: must be at most 100, got 101'],
        [{ hooks: [{ trigger: 'ON_FAILURE', action: { type: 'nope' } }] }, /^hooks\[0\]\.action: unknown action type "nope"/],
      ])('%j', async (patch, message) => {
        await expect400(await submit(plan(patch as Json)), message);
      });

      it('reports several bad fields at once', async () => {
        const res = await submit(plan({ user_id: 'u', description: 1, period_time: 'P1M' }));
        expect(res.status).toBe(400);
        expect(res.text.split('; ').map((m) => m.split(':')[0])).toEqual(['user_id', 'description', 'period_time']);
      });
    });

    describe('chain rules (strictMode true, maxChainedDepth 2)', () => {
      const deep = (levels: number): Json => {
        let action: Json = rest();
        for (let i = 0; i < levels; i++) action = chained(plan({ action }));
        return action;
      };

      it('rejects a top-level chained action on a Recurring plan', async () => {
        await expect400(
          await submit(plan({ plan_type: { type: T.Recurring }, action: deep(1) })),
          'Chained requests cannot be recurring',
        );
      });

      it('rejects nesting deeper than maxChainedDepth with the original text (N = M + 1)', async () => {
        await submitOk(plan({ action: deep(2) }));
        await expect400(await submit(plan({ action: deep(3) })), 'Depth exceeded for chained request --- passed: 3 | allowed: 2');
        await expect400(await submit(plan({ action: deep(10) })), 'Depth exceeded for chained request --- passed: 3 | allowed: 2');
      });

      it('applies the rules to nested requests (fix)', async () => {
        const nestedRecurringChain = chained(plan({ plan_type: { type: T.Recurring }, action: deep(1) }));
        await expect400(
          await submit(plan({ action: nestedRecurringChain })),
          'Chained requests cannot be recurring (at action.request.)',
        );
      });

      it("applies the rules to hooks' chained actions (fix)", async () => {
        await expect400(
          await submit(plan({ hooks: [{ trigger: 'ON_COMPLETION', action: deep(3) }] })),
          'Depth exceeded for chained request --- passed: 3 | allowed: 2 (at hooks[0].action)',
        );
        await expect400(
          await submit(plan({ hooks: [{ trigger: 'ON_FAILURE', action: chained(plan({ plan_type: { type: T.Recurring }, action: deep(1) })) }] })),
          'Chained requests cannot be recurring (at hooks[0].action.request.)',
        );
        await expect400(
          await submit(plan({ action: chained(plan({ period_time: 'PT0.1S', plan_type: { type: T.Recurring } })) })),
          /^action\.request\.period_time: a Recurring plan's period must be at least 1000 ms/,
        );
      });
    });
  });

  describe('GET /v1/plan (list)', () => {
    let lister: string;
    const ids: string[] = [];
    beforeAll(async () => {
      lister = (await request(http).post('/v1/user').send({ name: 'lister' }).expect(200)).body.id;
      for (let i = 0; i < 45; i++) {
        ids.push((await submitOk(plan({ user_id: lister, description: `p${i}` }))).id as string);
        // Distinct created_at values make "newest first" observable.
        await new Promise((r) => setTimeout(r, 2));
      }
    });

    it('pages by index, 20 a page, newest first, with the exact total and offset echoing page', async () => {
      const newestFirst = [...ids].reverse();
      const page0 = await request(http).get(`//v1/plan?user_id=${lister}&page=0`).expect(200);
      expect(keys(page0.body)).toEqual(['offset', 'plans', 'total']);
      expect(page0.body.total).toBe(45);
      expect(page0.body.offset).toBe(0);
      expect(page0.body.plans.map((p: Json) => p.id)).toEqual(newestFirst.slice(0, 20));
      page0.body.plans.forEach((p: Json) => expect(keys(p)).toEqual(PLAN_KEYS));
      const page2 = await request(http).get(`/v1/plan?user_id=${lister}&page=2`).expect(200);
      expect(page2.body.plans.map((p: Json) => p.id)).toEqual(newestFirst.slice(40, 45));
      expect(page2.body.offset).toBe(2);
      const page3 = await request(http).get(`/v1/plan?user_id=${lister}&page=3`).expect(200);
      expect(page3.body).toEqual({ plans: [], total: 45, offset: 3 });
    });

    it('defaults page to 0 and counts a new plan at once (not cached)', async () => {
      const res = await request(http).get(`/v1/plan?user_id=${lister}`).expect(200);
      expect(res.body.offset).toBe(0);
      const total = res.body.total as number;
      await submitOk(plan({ user_id: lister }));
      expect((await request(http).get(`/v1/plan?user_id=${lister}`).expect(200)).body.total).toBe(total + 1);
    });

    it('answers an unknown user with an empty page', async () => {
      const res = await request(http).get(`/v1/plan?user_id=${randomUUID()}&page=4`).expect(200);
      expect(res.body).toEqual({ plans: [], total: 0, offset: 4 });
    });

    it.each([
      ['user_id=nope&page=0', 'user_id: must be a UUID, got "nope"'],
      ['page=0', 'user_id: required, got nothing'],
      [`user_id=${randomUUID()}&page=-1`, 'page: must be an integer from 0 to 100000000, got "-1"'],
      [`user_id=${randomUUID()}&page=1.5`, 'page: must be an integer from 0 to 100000000, got "1.5"'],
      [`user_id=${randomUUID()}&page=two`, 'page: must be an integer from 0 to 100000000, got "two"'],
      [`user_id=${randomUUID()}&page=1&page=2`, 'page: must be an integer from 0 to 100000000, got ["1","2"]'],
    ])('400 for %s', async (query, message) => {
      await expect400(await request(http).get(`/v1/plan?${query}`), message);
    });
  });

  describe('GET /v1/plan/{id} and /summary', () => {
    it('404 and 400 texts', async () => {
      const ghost = randomUUID();
      const res = await request(http).get(`/v1/plan/${ghost}`).expect(404);
      expect(res.text).toBe(`Plan not found --- ${ghost}`);
      expect((await request(http).get(`/v1/plan/${ghost}/summary`).expect(404)).text).toBe(`Plan not found --- ${ghost}`);
      await expect400(await request(http).get('/v1/plan/not-a-uuid'), 'plan_id: must be a UUID, got "not-a-uuid"');
      await expect400(await request(http).get('/v1/plan/not-a-uuid/summary'), 'plan_id: must be a UUID, got "not-a-uuid"');
    });

    it('summary: the plan, all tasks oldest first, all error logs oldest first, exact keys', async () => {
      const p = await submitOk(plan({ plan_type: { type: T.Recurring } }));
      const planId = p.id as string;
      // Tasks and error logs are written by schedulers and executors; stand in for them here.
      const first: { id: string }[] = await ds.query(`SELECT id FROM tasks WHERE plan_id = $1`, [planId]);
      const secondId = randomUUID();
      await ds.query(
        `INSERT INTO tasks (id, plan_id, partition_key, status, created_at, next_execution_at)
         VALUES ($1, $2, 1, 'CREATED', now() + interval '1 second', now() + interval '20 seconds')`,
        [secondId, planId],
      );
      await ds.query(`UPDATE tasks SET status = 'FAILURE', executed_at = now() WHERE id = $1`, [first[0].id]);
      const longError = `REST call failed --- [500 | http://sink.local:8080/hook] | ${'x'.repeat(1000)}`;
      await ds.query(
        `INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES
           ($1, $2, 'EXECUTOR', $3, now()), ($1, NULL, 'HOOK', 'hook failed', now() + interval '1 ms')`,
        [planId, first[0].id, longError],
      );

      const res = await request(http).get(`//v1/plan/${planId}/summary`).expect(200);
      expect(keys(res.body)).toEqual(['error_logs', 'plan', 'tasks']);
      expect(keys(res.body.plan)).toEqual(PLAN_KEYS);
      expect(res.body.tasks.map((t: Json) => t.id)).toEqual([first[0].id, secondId]);
      res.body.tasks.forEach((t: Json) => expect(keys(t)).toEqual(TASK_KEYS));
      expect(res.body.tasks[0]).toMatchObject({ status: 'FAILURE', executed_at: expect.any(Number) });
      expect(res.body.error_logs).toEqual([
        {
          plan_id: planId,
          error: longError,
          type: { type: 'karya.core.entities.ErrorLogType.ExecutorErrorLog', task_id: first[0].id },
          timestamp: expect.any(Number),
        },
        { plan_id: planId, error: 'hook failed', type: { type: 'karya.core.entities.ErrorLogType.HookErrorLog' }, timestamp: expect.any(Number) },
      ]);
      const latest = await request(http).get(`/v1/plan/${planId}`).expect(200);
      expect(latest.body.latest_task.id).toBe(secondId);
    });
  });

  describe('quoted integers (karya-ui sends its form numbers as strings, which the original accepted)', () => {
    it('submit reads them as numbers: stored, echoed and read back as numbers', async () => {
      const hook = { trigger: 'ON_FAILURE', action: rest({ timeout: '250' }), max_retry: '4' };
      const p = await submitOk(plan({
        plan_type: { type: T.Recurring, end_at: '4102444800000' },
        action: rest({ timeout: '1500' }),
        hooks: [hook],
        max_failure_retry: '5',
      }));
      expect(p.max_failure_retry).toBe(5);
      expect(p.type).toEqual({ type: T.Recurring, end_at: 4_102_444_800_000 });
      expect((p.action as Json).timeout).toBe(1500);
      expect(p.hook).toEqual([expect.objectContaining({ max_retry: 4, action: expect.objectContaining({ timeout: 250 }) })]);
      expect((await request(http).get(`/v1/plan/${p.id as string}`).expect(200)).body.plan).toEqual(p);
      const [row] = await ds.query('SELECT max_failure_retry, type, action, hook FROM plans WHERE id = $1', [p.id]);
      expect(row.max_failure_retry).toBe(5);
      expect(row.type.end_at).toBe(4_102_444_800_000);
      expect(row.action.timeout).toBe(1500);
      expect(row.hook[0].max_retry).toBe(4);

      const cronType = 'karya.core.entities.PlanType.Cron';
      const cron = await submitOk(plan({ period_time: undefined, plan_type: { type: cronType, expression: '0 9 * * *', end_at: '0' } }));
      expect((cron.type as Json).end_at).toBe(0);
    });

    it('PATCH reads a quoted max_failure_retry and hook max_retry as numbers', async () => {
      const p = await submitOk(plan());
      const res = await request(http).patch('//v1/plan')
        .send({ plan_id: p.id, max_failure_retry: '7', hooks: [{ trigger: 'ON_COMPLETION', action: rest(), max_retry: '0' }] })
        .expect(200);
      expect(res.body.max_failure_retry).toBe(7);
      expect(res.body.hook[0].max_retry).toBe(0);
      expect((await request(http).get(`/v1/plan/${p.id as string}`).expect(200)).body.plan).toEqual(res.body);
    });

    it.each([
      [{ action: rest({ timeout: '2s' }) }, 'action.timeout: must be an integer number of milliseconds, got "2s"'],
      [{ action: rest({ timeout: '0' }) }, 'action.timeout: must be at least 1 ms, got "0"'],
      [{ plan_type: { type: T.Recurring, end_at: '1.5' } }, 'plan_type.end_at: must be an integer epoch ms or null, got "1.5"'],
      [{ plan_type: { type: T.Recurring, end_at: '-1' } }, 'plan_type.end_at: must be a non-negative epoch ms, got "-1"'],
      [{ hooks: [{ trigger: 'ON_FAILURE', action: rest(), max_retry: '3.0' }] }, 'hooks[0].max_retry: must be an integer, got "3.0"'],
      [{ hooks: [{ trigger: 'ON_FAILURE', action: rest(), max_retry: '101' }] }, 'hooks[0].max_retry: must be at most 100, got "101"'],
    ])('a quoted non-integer or out-of-range value is still a 400 naming the field and the value: %j', async (patch, message) => {
      await expect400(await submit(plan(patch)), message);
    });

    it('PATCH refuses a quoted non-integer max_failure_retry, naming it', async () => {
      const p = await submitOk(plan());
      await expect400(await request(http).patch('/v1/plan').send({ plan_id: p.id, max_failure_retry: '5.5' }), 'max_failure_retry: must be an integer, got "5.5"');
      await expect400(await request(http).patch('/v1/plan').send({ plan_id: p.id, max_failure_retry: '' }), 'max_failure_retry: must be an integer, got ""');
    });
  });

  describe('PATCH /v1/plan', () => {
    it('replaces non-null fields, keeps the rest, bumps updated_at; hooks [] clears', async () => {
      const p = await submitOk(plan({ plan_type: { type: T.Recurring }, hooks: [{ trigger: 'ON_FAILURE', action: rest() }] }));
      await new Promise((r) => setTimeout(r, 5));
      const a = await request(http).patch('//v1/plan').send({ plan_id: p.id, period_time: 'PT1M', max_failure_retry: null }).expect(200);
      expect(keys(a.body)).toEqual(PLAN_KEYS);
      expect(a.body).toMatchObject({ period_time: 'PT1M', max_failure_retry: 3, hook: p.hook, status: 'CREATED' });
      expect(a.body.updated_at).toBeGreaterThan(p.updated_at as number);
      expect(a.body.created_at).toBe(p.created_at);

      const b = await request(http).patch('/v1/plan').send({ plan_id: p.id, max_failure_retry: 7, hooks: [] }).expect(200);
      expect(b.body).toMatchObject({ period_time: 'PT1M', max_failure_retry: 7, hook: [] });
      expect((await request(http).get(`/v1/plan/${p.id}`).expect(200)).body.plan).toEqual(b.body);
    });

    it('validates like submit (fix: the original validated nothing)', async () => {
      const p = await submitOk(plan({ plan_type: { type: T.Recurring } }));
      await expect400(await request(http).patch('/v1/plan').send({ plan_id: p.id, period_time: 'P1M' }), /^period_time: months and years/);
      await expect400(
        await request(http).patch('/v1/plan').send({ plan_id: p.id, period_time: 'PT0.2S' }),
        /^period_time: a Recurring plan's period must be at least 1000 ms/,
      );
      await expect400(await request(http).patch('/v1/plan').send({ plan_id: p.id, max_failure_retry: -2 }), 'max_failure_retry: must be at least 0, got -2');
      await expect400(
        await request(http).patch('/v1/plan').send({ plan_id: p.id, hooks: [{ trigger: 'ON_FAILURE', action: { type: T.Chained, request: plan({ action: chained(plan({ action: chained(plan()) })) }) } }] }),
        'Depth exceeded for chained request --- passed: 3 | allowed: 2 (at hooks[0].action)',
      );
      await expect400(await request(http).patch('/v1/plan').send({ period_time: 'PT1M' }), 'plan_id: required, got nothing');
      await expect400(await request(http).patch('/v1/plan').send({ plan_id: 'x' }), 'plan_id: must be a UUID, got "x"');
    });

    it('404 for an unknown plan', async () => {
      const ghost = randomUUID();
      const res = await request(http).patch('/v1/plan').send({ plan_id: ghost, max_failure_retry: 1 }).expect(404);
      expect(res.text).toBe(`Plan not found --- ${ghost}`);
    });
  });

  describe('POST /v1/plan/{id} (cancel)', () => {
    /** Child plans are created by executors running chained actions; insert them as those would. */
    async function child(parentId: string, status = 'RUNNING'): Promise<string> {
      const id = randomUUID();
      await ds.query(
        `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
         VALUES ($1, $2, 'child', 'PT10S', $3, $4, 3, $5, '[]', $6, now(), now())`,
        [id, userId, JSON.stringify({ type: T.Recurring, end_at: null }), status, JSON.stringify(rest()), parentId],
      );
      await ds.query(
        `INSERT INTO tasks (id, plan_id, partition_key, status, created_at, next_execution_at) VALUES ($1, $2, 2, 'CREATED', now(), now() + interval '1 hour')`,
        [randomUUID(), id],
      );
      return id;
    }
    const statusOf = async (id: string) => (await request(http).get(`/v1/plan/${id}`).expect(200)).body.plan.status as string;
    const pendingTasks = async (ids: string[]) =>
      ((await ds.query(`SELECT count(*)::int AS n FROM tasks WHERE status = 'CREATED' AND plan_id = ANY($1::uuid[])`, [ids])) as { n: number }[])[0].n;

    it('cancels the plan and every descendant (recursively), with an empty form-encoded body like the JS client', async () => {
      const root = (await submitOk(plan({ plan_type: { type: T.Recurring } }))).id as string;
      const a = await child(root);
      const b = await child(a);
      const c = await child(b, 'CREATED');
      const done = await child(a, 'COMPLETED');
      const unrelated = (await submitOk(plan())).id as string;

      const res = await request(http).post(`//v1/plan/${root}`).set('content-type', 'application/x-www-form-urlencoded').send('').expect(200);
      expect(keys(res.body)).toEqual(PLAN_KEYS);
      expect(res.body.status).toBe('CANCELLED');
      expect(res.body.updated_at).toBeGreaterThanOrEqual(res.body.created_at);
      for (const id of [root, a, b, c]) expect(await statusOf(id)).toBe('CANCELLED');
      expect(await statusOf(done)).toBe('COMPLETED');
      expect(await statusOf(unrelated)).toBe('CREATED');
      expect(await pendingTasks([root, a, b, c])).toBe(0);
      expect(await pendingTasks([unrelated])).toBe(1);
    });

    it('returns an already final plan unchanged, yet still cancels its live descendants', async () => {
      const root = (await submitOk(plan())).id as string;
      await ds.query(`UPDATE plans SET status = 'COMPLETED' WHERE id = $1`, [root]);
      const before = (await request(http).get(`/v1/plan/${root}`).expect(200)).body.plan;
      const kid = await child(root);
      const res = await request(http).post(`/v1/plan/${root}`).expect(200);
      expect(res.body).toEqual(before);
      expect(await statusOf(kid)).toBe('CANCELLED');

      const again = await request(http).post(`/v1/plan/${kid}`).expect(200);
      expect(again.body.status).toBe('CANCELLED');
      expect((await request(http).post(`/v1/plan/${kid}`).expect(200)).body).toEqual(again.body);
    });

    it('404 and 400', async () => {
      const ghost = randomUUID();
      expect((await request(http).post(`/v1/plan/${ghost}`).expect(404)).text).toBe(`Plan not found --- ${ghost}`);
      await expect400(await request(http).post('/v1/plan/zzz'), 'plan_id: must be a UUID, got "zzz"');
    });
  });

  describe('the per-plan lock', () => {
    it('answers 503 when update or cancel cannot get the lock within the configured wait, and works once it is free', async () => {
      const p = await submitOk(plan());
      const id = p.id as string;
      const lock = app.get(DistributedLock);
      const lease = await lock.acquire(id, { leaseTime: 10_000 });
      expect(lease).not.toBeNull();
      try {
        const started = Date.now();
        const patch = await request(http).patch('/v1/plan').send({ plan_id: id, max_failure_retry: 1 });
        expect(Date.now() - started).toBeGreaterThanOrEqual(250);
        expect(patch.status).toBe(503);
        expect(patch.headers['content-type']).toMatch(/^text\/plain/);
        expect(patch.text).toBe(`Unable to acquire lock on --- ${id} | Try again later`);
        const cancel = await request(http).post(`/v1/plan/${id}`);
        expect(cancel.status).toBe(503);
        expect(cancel.text).toBe(`Unable to acquire lock on --- ${id} | Try again later`);
        expect(await (await request(http).get(`/v1/plan/${id}`)).body.plan.status).toBe('CREATED');
      } finally {
        await lock.release(lease!);
      }
      await request(http).patch('/v1/plan').send({ plan_id: id, max_failure_retry: 1 }).expect(200);
      expect((await request(http).post(`/v1/plan/${id}`).expect(200)).body.status).toBe('CANCELLED');
    });
  });

  describe('users', () => {
    it('POST always creates (names are not unique); GET returns the first with exactly that name', async () => {
      const name = `dup-${randomUUID()}`;
      const first = (await request(http).post('/v1/user').send({ name }).expect(200)).body;
      await new Promise((r) => setTimeout(r, 5));
      const second = (await request(http).post('/v1/user').send({ name }).expect(200)).body;
      expect(second.id).not.toBe(first.id);
      expect((await request(http).get(`/v1/user?username=${encodeURIComponent(name)}`).expect(200)).body).toEqual(first);
      await request(http).get(`/v1/user?username=${encodeURIComponent(name.toUpperCase())}`).expect(404);
    });

    it('400 for a bad body, 400 for a missing or repeated username', async () => {
      await expect400(await request(http).post('/v1/user').send({}), 'name: required, got nothing');
      await expect400(await request(http).get('/v1/user'), 'username: must be given once as a query parameter, got null');
      await expect400(await request(http).get('/v1/user?username=a&username=b'), 'username: must be given once as a query parameter, got ["a","b"]');
    });
  });
});

describe('chain rules follow server.yml', () => {
  const tmp = new TempDir();
  let app: INestApplication;
  afterAll(async () => {
    await app?.close();
    tmp.cleanup();
  });

  it('strictMode false allows a recurring chained plan; maxChainedDepth 1 rejects depth 2', async () => {
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: tmp.write('p.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n'),
      KARYA_SERVER_CONFIG_PATH: tmp.write('s.yml', 'application:\n  strictMode: false\n  chainedDepth: 1\n  minRecurringPeriod: 100\n'),
    });
    app = await createApp(config, { logger: false });
    const http = app.getHttpServer();
    const user = (await request(http).post('/v1/user').send({ name: 'u' }).expect(200)).body.id;
    const base = { user_id: user, description: 'd', period_time: 'PT0.2S', plan_type: { type: T.Recurring } };
    await request(http).post('/v1/plan').send({ ...base, action: chained({ ...base, plan_type: { type: T.OneTime }, action: rest() }) }).expect(200);
    const res = await request(http)
      .post('/v1/plan')
      .send({ ...base, action: chained({ ...base, action: chained({ ...base, action: rest() }) }) })
      .expect(400);
    expect(res.text).toBe('Depth exceeded for chained request --- passed: 2 | allowed: 1');
  });
});
