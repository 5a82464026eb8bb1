import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import {
  Action,
  ChainedRequest,
  clientError,
  ClientConfig,
  CreateUserRequest,
  EmailRequest,
  GetPlanResponse,
  GetSummaryResponse,
  Hook,
  KafkaProducerRequest,
  KaryaRestClient,
  ListPlanResponse,
  Method,
  OneTime,
  Plan,
  PlanStatus,
  Protocol,
  Recurring,
  RestApiRequest,
  SlackMessageRequest,
  SubmitPlanRequest,
  TaskStatus,
  Trigger,
  UpdatePlanRequest,
  User,
} from './support/karya-client-facade';
import { runNativeClient, runNativeReader } from './support/karya-client-native';
import { Exchange, RecordingProxy } from './support/karya-client-recorder';
import { TempDir } from './support/temp-files';

/*
 * Compatibility with the published JS client, karya-client@1.1.7 from npm: every call goes through the
 * client's own classes, over real HTTP, through a recording proxy that keeps the raw bytes on both sides.
 * Responses are checked field by field on the raw JSON (the client's classes would hide extra or missing
 * keys) and compared with what the client returned and with what it actually sent.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ANY_UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const USER_KEYS = ['created_at', 'id', 'name'];
const PLAN_KEYS = [
  'action',
  'created_at',
  'description',
  'hook',
  'id',
  'max_failure_retry',
  'parent_plan_id',
  'period_time',
  'status',
  'type',
  'updated_at',
  'user_id',
];
const TASK_KEYS = ['created_at', 'executed_at', 'id', 'next_execution_at', 'partition_key', 'plan_id', 'status'];
const ONE_TIME = 'karya.core.entities.PlanType.OneTime';
const RECURRING = 'karya.core.entities.PlanType.Recurring';
const CRON = 'karya.core.entities.PlanType.Cron';
const KAFKA = 'karya.core.entities.Action.KafkaProducerRequest';
const HOUR = 3_600_000;

type Json = Record<string, unknown>;
interface Window {
  from: number;
  to: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const keysOf = (value: unknown): string[] => Object.keys(value as object).sort();

function asObject(value: unknown): Json {
  expect(value).toEqual(expect.any(Object));
  expect(Array.isArray(value)).toBe(false);
  return value as Json;
}

/** Runs a client call and returns its result with the time window around it. */
async function timed<T>(call: () => Promise<T>): Promise<{ result: T; window: Window }> {
  const from = Date.now();
  const result = await call();
  return { result, window: { from, to: Date.now() } };
}

/** The recorded exchange was a 200 with a JSON body; returns that body. */
function okJson(ex: Exchange, method: string, url: string): Json {
  expect({ method: ex.method, url: ex.url, status: ex.status }).toEqual({ method, url, status: 200 });
  expect(ex.responseHeaders['content-type']).toMatch(/^application\/json/);
  return asObject(JSON.parse(ex.responseBody));
}

/** The JSON the client put on the wire. */
function sentJson(ex: Exchange): Json {
  expect(ex.requestHeaders['content-type']).toMatch(/^application\/json/);
  return asObject(JSON.parse(ex.requestBody));
}

function expectEpochMs(value: unknown, window: Window): void {
  expect(typeof value).toBe('number');
  expect(Number.isInteger(value)).toBe(true);
  expect(value).toBeGreaterThanOrEqual(window.from);
  expect(value).toBeLessThanOrEqual(window.to);
}

function expectUser(raw: unknown, name: string, window: Window): Json {
  const user = asObject(raw);
  expect(keysOf(user)).toEqual(USER_KEYS);
  expect(user.id).toMatch(UUID);
  expect(user.name).toBe(name);
  expectEpochMs(user.created_at, window);
  return user;
}

interface ExpectedPlan {
  user_id: string;
  description: string;
  period_time: string;
  type: Json;
  status: string;
  max_failure_retry: number;
  /** What the action must contain (nested objects may carry extra keys, per the contract). */
  action: object;
  hook: object[];
}

/** A raw Plan: exactly the contract's keys, JSON types right, values as expected; timestamps in `window`. */
function expectPlan(raw: unknown, expected: ExpectedPlan, window: Window): Json {
  const plan = asObject(raw);
  expect(keysOf(plan)).toEqual(PLAN_KEYS);
  expect(plan.id).toMatch(UUID);
  expect({
    user_id: plan.user_id,
    description: plan.description,
    period_time: plan.period_time,
    status: plan.status,
    max_failure_retry: plan.max_failure_retry,
    parent_plan_id: plan.parent_plan_id,
  }).toEqual({
    user_id: expected.user_id,
    description: expected.description,
    period_time: expected.period_time,
    status: expected.status,
    max_failure_retry: expected.max_failure_retry,
    parent_plan_id: null,
  });
  expect(plan.type).toEqual(expected.type);
  expect(asObject(plan.action)).toMatchObject(expected.action);
  expect(Array.isArray(plan.hook)).toBe(true);
  expect(plan.hook).toMatchObject(expected.hook);
  expectEpochMs(plan.created_at, window);
  expectEpochMs(plan.updated_at, window);
  return plan;
}

/** A raw Task: exactly the contract's keys and JSON types. */
function expectTask(raw: unknown, planId: string): Json {
  const task = asObject(raw);
  expect(keysOf(task)).toEqual(TASK_KEYS);
  expect(task.id).toMatch(UUID);
  expect(task.plan_id).toBe(planId);
  expect(Number.isInteger(task.partition_key)).toBe(true);
  expect(Object.values(TaskStatus)).toContain(task.status);
  expect(Number.isInteger(task.created_at)).toBe(true);
  expect(task.executed_at === null || Number.isInteger(task.executed_at)).toBe(true);
  expect(task.next_execution_at === null || Number.isInteger(task.next_execution_at)).toBe(true);
  return task;
}

/** The first task of a just-submitted plan: pending, never run, due one period after the plan's created_at. */
function expectFirstTask(raw: unknown, plan: Json, periodMs: number, window: Window): Json {
  const task = expectTask(raw, plan.id as string);
  expect(task.status).toBe(TaskStatus.CREATED);
  expect(task.executed_at).toBeNull();
  expectEpochMs(task.created_at, window);
  expect(task.next_execution_at).toBe((plan.created_at as number) + periodMs);
  return task;
}

/** An instant on Berlin's wall clock, as `Mon 09:00:00`. */
function berlinClock(ms: number): string {
  const parts = new Intl.DateTimeFormat('en-GB', {
    timeZone: 'Europe/Berlin',
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(ms);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)?.value;
  return `${part('weekday')} ${part('hour')}:${part('minute')}:${part('second')}`;
}
const isBerlinWeekdayNine = (ms: number): boolean => /^(Mon|Tue|Wed|Thu|Fri) 09:00:00$/.test(berlinClock(ms));

/**
 * `due` is the first fire of `0 9 * * 1-5` in Europe/Berlin after `from`, worked out here from the zone
 * database (Intl), not by the server's cron library. Berlin's offsets are whole hours, so every 09:00 there
 * is a whole UTC hour: checking each whole hour in between is exhaustive.
 */
function expectFirstBerlinWeekdayNine(due: number, from: number): void {
  expect(isBerlinWeekdayNine(due)).toBe(true);
  expect(due).toBeGreaterThan(from);
  // Friday 09:00 to Monday 09:00, plus an hour for a DST change over that weekend.
  expect(due - from).toBeLessThanOrEqual(73 * HOUR);
  const earlier: string[] = [];
  for (let h = Math.ceil(from / HOUR) * HOUR; h < due; h += HOUR) if (isBerlinWeekdayNine(h)) earlier.push(new Date(h).toISOString());
  expect(earlier).toEqual([]);
}

describe('compatibility with the published JS client (karya-client@1.1.7 from npm)', () => {
  let app: INestApplication;
  let proxy: RecordingProxy;
  let client: KaryaRestClient;
  let user: User;
  const tmp = new TempDir();

  beforeAll(async () => {
    const providers = tmp.write('providers.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n');
    const { config } = loadConfig({ KARYA_PROVIDERS_CONFIG_PATH: providers });
    app = await createApp(config, { logger: false });
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    proxy = await new RecordingProxy(port).start();
    client = new KaryaRestClient(new ClientConfig(proxy.url));
    user = await client.createUser(new CreateUserRequest(`owner-${randomUUID()}`));
    proxy.take();
  });

  afterAll(async () => {
    await client?.close();
    await proxy?.stop();
    await app?.close();
    tmp.cleanup();
  });

  /** Submits through the client and returns the raw plan the server answered, checked for the basics. */
  async function submit(request: SubmitPlanRequest): Promise<{ plan: Plan; raw: Json; sent: Json; window: Window }> {
    const { result: plan, window } = await timed(() => client.submitPlan(request));
    const ex = proxy.takeOne();
    const raw = okJson(ex, 'POST', '//v1/plan');
    expect(plan).toBeInstanceOf(Plan);
    expect(plan).toEqual(raw);
    return { plan, raw, sent: sentJson(ex), window };
  }

  it('is the npm package: version 1.1.7, ESM only, no typings, deep imports; its base URL makes paths start with //v1', () => {
    const pkg = asObject(JSON.parse(readFileSync(join(__dirname, '../node_modules/karya-client/package.json'), 'utf8')));
    expect(pkg).toMatchObject({ name: 'karya-client', version: '1.1.7', type: 'module' });
    expect(pkg.main).toBeUndefined();
    expect(pkg.exports).toBeUndefined();
    expect(pkg.types).toBeUndefined();
    // new URL('http://host:port').toString() ends with '/', and the client appends '/v1/...'.
    expect(client.baseUrl).toBe(`http://127.0.0.1:${proxy.port}/`);
  });

  it('creates a user and gets it back by name (query string encoded by axios)', async () => {
    const name = `Ada Lovelace+${randomUUID()} & ü`;
    const { result: created, window } = await timed(() => client.createUser(new CreateUserRequest(name)));
    const createEx = proxy.takeOne();
    expect(sentJson(createEx)).toEqual({ name });
    const raw = expectUser(okJson(createEx, 'POST', '//v1/user'), name, window);
    expect(created).toBeInstanceOf(User);
    expect(created).toEqual(raw);

    const found = await client.getUser(name);
    const getEx = proxy.takeOne();
    expect(getEx.url).toMatch(/^\/\/v1\/user\?username=/);
    expect(new URLSearchParams(getEx.url.split('?')[1]).get('username')).toBe(name);
    expect(okJson(getEx, 'GET', getEx.url)).toEqual(raw);
    expect(found).toBeInstanceOf(User);
    expect(found).toEqual(raw);

    // Names are not unique: a second user with the same name is a new user, and getUser finds the first.
    await sleep(3);
    const twin = await client.createUser(new CreateUserRequest(name));
    expect(twin.id).not.toBe(created.id);
    expect(await client.getUser(name)).toEqual(raw);
    proxy.take();
  });

  it('answers errors as AxiosErrors carrying the status and the plain-text message', async () => {
    const expectError = async (call: Promise<unknown>, status: number, message: string | RegExp) => {
      const err = await clientError(call);
      expect(err.name).toBe('AxiosError');
      expect(err.isAxiosError).toBe(true);
      expect(err.response.status).toBe(status);
      if (typeof message === 'string') expect(err.response.data).toBe(message);
      else expect(err.response.data).toMatch(message);
      const ex = proxy.takeOne();
      expect(ex.status).toBe(status);
      expect(ex.responseHeaders['content-type']).toMatch(/^text\/plain/);
      expect(ex.responseBody).toBe(err.response.data);
      return ex;
    };

    const nobody = `nobody ${randomUUID()} & ü`;
    const userEx = await expectError(client.getUser(nobody), 404, `User (${nobody}) not found`);
    expect(userEx.method).toBe('GET');
    expect(userEx.url).toMatch(/^\/\/v1\/user\?username=/);

    const unknown = randomUUID();
    const planEx = await expectError(client.getPlan(unknown), 404, `Plan not found --- ${unknown}`);
    expect([planEx.method, planEx.url]).toEqual(['GET', `//v1/plan/${unknown}`]);
    await expectError(client.getSummary(unknown), 404, `Plan not found --- ${unknown}`);
    await expectError(client.cancelPlan(unknown), 404, `Plan not found --- ${unknown}`);
    await expectError(client.updatePlan(new UpdatePlanRequest(unknown, undefined, 1)), 404, `Plan not found --- ${unknown}`);

    const stranger = randomUUID();
    const kafka = new KafkaProducerRequest('orders', 'hello');
    await expectError(
      client.submitPlan(new SubmitPlanRequest(stranger, 'no such user', 'PT1H', new OneTime(), kafka)),
      404,
      `User (${stranger}) not found`,
    );
    // Months are calendar-dependent and rejected; the 400 names the field and the value.
    await expectError(
      client.submitPlan(new SubmitPlanRequest(user.id, 'monthly', 'P1M', new OneTime(), kafka)),
      400,
      /period_time[\s\S]*P1M/,
    );
    await expectError(client.getPlan('not-a-uuid'), 400, /not-a-uuid/);
  });

  it('submits a OneTime plan with a RestApiRequest built with the client defaults; get and summary echo it', async () => {
    const action = new RestApiRequest('example.com/jobs/run');
    const { raw, sent, window } = await submit(new SubmitPlanRequest(user.id, 'one-time rest call', 'PT1H', new OneTime(), action));

    // What the client really sent: every RestApiRequest default filled in by the client itself.
    expect(sent).toEqual({
      user_id: user.id,
      description: 'one-time rest call',
      period_time: 'PT1H',
      plan_type: { type: ONE_TIME },
      action: {
        type: 'karya.core.entities.Action.RestApiRequest',
        base_url: 'example.com/jobs/run',
        protocol: 'HTTP',
        method: 'GET',
        headers: { 'content-type': 'application/json' },
        body: { type: 'karya.core.entities.http.Body.EmptyBody' },
        timeout: 2000,
      },
      hooks: [],
      max_failure_retry: 3,
    });
    const plan = expectPlan(
      raw,
      {
        user_id: user.id,
        description: 'one-time rest call',
        period_time: 'PT1H',
        type: { type: ONE_TIME },
        status: PlanStatus.CREATED,
        max_failure_retry: 3,
        action: sent.action as object,
        hook: [],
      },
      window,
    );
    expect(plan.action).toEqual(sent.action);
    expect(plan.updated_at).toBe(plan.created_at);

    const got = await client.getPlan(plan.id as string);
    const getRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${plan.id}`);
    expect(keysOf(getRaw)).toEqual(['latest_task', 'plan']);
    expect(getRaw.plan).toEqual(plan);
    const task = expectFirstTask(getRaw.latest_task, plan, HOUR, window);
    expect(got).toBeInstanceOf(GetPlanResponse);
    expect(got).toEqual(getRaw);

    const summary = await client.getSummary(plan.id as string);
    const summaryRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${plan.id}/summary`);
    expect(keysOf(summaryRaw)).toEqual(['error_logs', 'plan', 'tasks']);
    expect(summaryRaw.plan).toEqual(plan);
    expect(summaryRaw.tasks).toEqual([task]);
    expect(summaryRaw.error_logs).toEqual([]);
    expect(summary).toBeInstanceOf(GetSummaryResponse);
    expect(summary).toEqual(summaryRaw);
  });

  it('submits a Recurring plan (no end_at) with a keyless Kafka action and hooks built with Hook and JsonBody', async () => {
    const restHook = new Hook(
      Trigger.ON_FAILURE,
      new RestApiRequest(
        'hooks.example.com:8443/failed',
        new RestApiRequest.JsonBody({ plan: 'nightly', attempt: 1, tags: ['a', 'b'] }),
        Protocol.HTTPS,
        Method.POST,
        { 'content-type': 'application/json', 'x-token': 'secret' },
        5000,
      ),
    );
    const emailHook = new Hook(Trigger.ON_COMPLETION, new EmailRequest('ops@example.com', 'nightly done', '<b>ok</b>'), 5);
    const request = new SubmitPlanRequest(
      user.id,
      'recurring kafka push',
      'PT10M',
      new Recurring(),
      new KafkaProducerRequest('orders', '{"order":1}'),
      [restHook, emailHook],
      2,
    );
    const { raw, sent, window } = await submit(request);

    // The client leaves out end_at (new Recurring()) and key (no Kafka key); hooks carry its defaults.
    const sentType = asObject(sent.plan_type);
    expect(sentType).toEqual({ type: RECURRING });
    expect('end_at' in sentType).toBe(false);
    const sentAction = asObject(sent.action);
    expect(sentAction).toEqual({ type: 'karya.core.entities.Action.KafkaProducerRequest', topic: 'orders', message: '{"order":1}' });
    expect('key' in sentAction).toBe(false);
    expect(sent.hooks).toEqual([
      {
        trigger: 'ON_FAILURE',
        max_retry: 3,
        action: {
          type: 'karya.core.entities.Action.RestApiRequest',
          base_url: 'hooks.example.com:8443/failed',
          body: { type: 'karya.core.entities.http.Body.JsonBody', json_string: '{"plan":"nightly","attempt":1,"tags":["a","b"]}' },
          protocol: 'HTTPS',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-token': 'secret' },
          timeout: 5000,
        },
      },
      {
        trigger: 'ON_COMPLETION',
        max_retry: 5,
        action: { type: 'karya.core.entities.Action.EmailRequest', recipient: 'ops@example.com', subject: 'nightly done', message: '<b>ok</b>' },
      },
    ]);
    expect(sent.max_failure_retry).toBe(2);

    const plan = expectPlan(
      raw,
      {
        user_id: user.id,
        description: 'recurring kafka push',
        period_time: 'PT10M',
        // A missing end_at means null, written out.
        type: { type: RECURRING, end_at: null },
        status: PlanStatus.CREATED,
        max_failure_retry: 2,
        action: { ...sentAction, key: null },
        hook: sent.hooks as object[],
      },
      window,
    );
    expect(asObject(plan.action).key).toBeNull();
    expect(plan.hook).toEqual(sent.hooks);

    await client.getPlan(plan.id as string);
    const getRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${plan.id}`);
    expect(getRaw.plan).toEqual(plan);
    expectFirstTask(getRaw.latest_task, plan, 10 * 60_000, window);

    await client.getSummary(plan.id as string);
    const summaryRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${plan.id}/summary`);
    expect(summaryRaw.plan).toEqual(plan);
    expect(summaryRaw.tasks).toEqual([getRaw.latest_task]);
    expect(summaryRaw.error_logs).toEqual([]);
  });

  it('echoes the other action kinds (email, Slack, chained) and a Recurring end_at', async () => {
    const endAt = Date.now() + 7 * 24 * HOUR;
    const blocks = JSON.stringify([{ type: 'section', text: { type: 'mrkdwn', text: '*deploy* done' } }]);
    const cases: { type: Json; planType: OneTime | Recurring; action: Action; period: string }[] = [
      {
        planType: new Recurring(endAt),
        type: { type: RECURRING, end_at: endAt },
        action: new SlackMessageRequest('#deploys', blocks),
        period: 'PT1H',
      },
      {
        planType: new OneTime(),
        type: { type: ONE_TIME },
        action: new EmailRequest('someone@example.com', 'Hello', '<p>hi</p>'),
        period: 'P1D',
      },
      {
        planType: new OneTime(),
        type: { type: ONE_TIME },
        action: new ChainedRequest(
          new SubmitPlanRequest(user.id, 'child', 'PT5M', new Recurring(), new KafkaProducerRequest('child-topic', 'm', 'k1')),
        ),
        period: 'PT30M',
      },
    ];
    for (const c of cases) {
      const { raw, sent, window } = await submit(new SubmitPlanRequest(user.id, `echo ${c.action.type}`, c.period, c.planType, c.action));
      expect(sent.plan_type).toEqual(c.type);
      const plan = expectPlan(
        raw,
        {
          user_id: user.id,
          description: `echo ${c.action.type}`,
          period_time: c.period,
          type: c.type,
          status: PlanStatus.CREATED,
          max_failure_retry: 3,
          action: sent.action as object,
          hook: [],
        },
        window,
      );
      expect(plan.action).toMatchObject(JSON.parse(JSON.stringify(c.action)) as object);
    }
  });

  it("lists a user's plans 20 a page, newest first; total counts them all and offset echoes the page", async () => {
    const owner = await client.createUser(new CreateUserRequest(`pager-${randomUUID()}`));
    const submitted: string[] = [];
    for (let i = 0; i < 25; i++) {
      const plan = await client.submitPlan(
        new SubmitPlanRequest(owner.id, `plan #${i}`, 'PT1H', new OneTime(), new KafkaProducerRequest('paging', `#${i}`)),
      );
      submitted.push(plan.id);
      await sleep(2); // distinct created_at, so "newest first" has exactly one right order
    }
    proxy.take();
    const newestFirst = [...submitted].reverse();

    const pages = [
      { page: 0, ids: newestFirst.slice(0, 20) },
      { page: 1, ids: newestFirst.slice(20) },
      { page: 2, ids: [] },
    ];
    for (const { page, ids } of pages) {
      const listed = await client.listPlans(owner.id, page);
      const raw = okJson(proxy.takeOne(), 'GET', `//v1/plan?user_id=${owner.id}&page=${page}`);
      expect(keysOf(raw)).toEqual(['offset', 'plans', 'total']);
      expect({ total: raw.total, offset: raw.offset }).toEqual({ total: 25, offset: page });
      const plans = raw.plans as Json[];
      expect(plans.map((p) => p.id)).toEqual(ids);
      for (const p of plans) {
        expect(keysOf(p)).toEqual(PLAN_KEYS);
        expect(p.user_id).toBe(owner.id);
        expect(p.type).toEqual({ type: ONE_TIME });
        expect(asObject(p.action).key).toBeNull();
      }
      const created = plans.map((p) => p.created_at as number);
      expect(created).toEqual([...created].sort((a, b) => b - a));
      expect(listed).toBeInstanceOf(ListPlanResponse);
      expect(listed).toEqual(raw);
    }

    const nobody = randomUUID();
    await client.listPlans(nobody, 0);
    expect(okJson(proxy.takeOne(), 'GET', `//v1/plan?user_id=${nobody}&page=0`)).toEqual({ plans: [], total: 0, offset: 0 });
  });

  it('updates only the fields the client sends (it leaves out undefined ones) and keeps the others', async () => {
    const failureHook = new Hook(Trigger.ON_FAILURE, new EmailRequest('ops@example.com', 'failed', 'see logs'));
    const { raw: submitted } = await submit(
      new SubmitPlanRequest(user.id, 'to update', 'PT30M', new Recurring(), new KafkaProducerRequest('t', 'm'), [failureHook], 4),
    );
    const id = submitted.id as string;
    const firstTask = (await client.getPlan(id)).latest_task;
    proxy.take();

    const update = async (request: UpdatePlanRequest, sentBody: Json, changed: Json, previous: Json): Promise<Json> => {
      await sleep(3);
      const { result, window } = await timed(() => client.updatePlan(request));
      const ex = proxy.takeOne();
      expect(sentJson(ex)).toEqual(sentBody);
      const raw = okJson(ex, 'PATCH', '//v1/plan');
      expect(keysOf(raw)).toEqual(PLAN_KEYS);
      expect(raw).toEqual({ ...previous, ...changed, updated_at: raw.updated_at });
      expectEpochMs(raw.updated_at, window);
      expect(raw.updated_at).toBeGreaterThan(previous.updated_at as number);
      expect(result).toBeInstanceOf(Plan);
      expect(result).toEqual(raw);
      // Stored, not just echoed.
      await client.getPlan(id);
      expect(okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}`).plan).toEqual(raw);
      return raw;
    };

    let plan = await update(new UpdatePlanRequest(id, undefined, 7), { plan_id: id, max_failure_retry: 7 }, { max_failure_retry: 7 }, submitted);
    plan = await update(new UpdatePlanRequest(id, 'PT2H'), { plan_id: id, period_time: 'PT2H' }, { period_time: 'PT2H' }, plan);

    // A new period applies from the next task created: the pending one keeps its due time.
    const afterPeriod = await client.getPlan(id);
    proxy.take();
    expect(afterPeriod.latest_task).toEqual(firstTask);
    expect(afterPeriod.latest_task.next_execution_at).toBe((submitted.created_at as number) + 30 * 60_000);

    const slackHook = new Hook(Trigger.ON_COMPLETION, new SlackMessageRequest('#ops', '[]'), 1);
    const slackHookJson = JSON.parse(JSON.stringify(slackHook)) as Json;
    plan = await update(
      new UpdatePlanRequest(id, undefined, undefined, [slackHook]),
      { plan_id: id, hooks: [slackHookJson] },
      { hook: [slackHookJson] },
      plan,
    );
    plan = await update(new UpdatePlanRequest(id, undefined, undefined, []), { plan_id: id, hooks: [] }, { hook: [] }, plan);
    expect(plan).toMatchObject({ period_time: 'PT2H', max_failure_retry: 7, status: PlanStatus.CREATED, created_at: submitted.created_at });
  });

  it('cancels with an empty form-encoded POST; a second cancel returns the plan unchanged', async () => {
    const { raw: submitted } = await submit(
      new SubmitPlanRequest(user.id, 'to cancel', 'PT1H', new OneTime(), new RestApiRequest('example.com/never')),
    );
    const id = submitted.id as string;
    await sleep(3);

    const { result: cancelled, window } = await timed(() => client.cancelPlan(id));
    const ex = proxy.takeOne();
    expect(ex.requestHeaders['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(ex.requestBody).toBe('');
    const raw = okJson(ex, 'POST', `//v1/plan/${id}`);
    expect(keysOf(raw)).toEqual(PLAN_KEYS);
    expect(raw).toEqual({ ...submitted, status: PlanStatus.CANCELLED, updated_at: raw.updated_at });
    expectEpochMs(raw.updated_at, window);
    expect(raw.updated_at).toBeGreaterThan(submitted.created_at as number);
    expect(cancelled).toBeInstanceOf(Plan);
    expect(cancelled).toEqual(raw);

    await sleep(3);
    const again = await client.cancelPlan(id);
    expect(okJson(proxy.takeOne(), 'POST', `//v1/plan/${id}`)).toEqual(raw);
    expect(again).toEqual(raw);

    const got = await client.getPlan(id);
    const getRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}`);
    expect(getRaw.plan).toEqual(raw);
    const task = expectTask(getRaw.latest_task, id);
    // The pending task never runs: cancelled now, or (as in the original) when it comes due.
    expect([TaskStatus.CANCELLED, TaskStatus.CREATED]).toContain(task.status);
    expect(task.executed_at).toBeNull();
    expect(got.plan.status).toBe(PlanStatus.CANCELLED);

    await client.getSummary(id);
    expect(okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}/summary`).plan).toEqual(raw);
  });

  it("reads a user's cron, paused and plain plans (list, get, summary) without an error, and cancels the paused and cron ones", async () => {
    // Issue 13: the client has no Cron class and no pause call, so those are made over raw HTTP, straight to
    // the app (not through the proxy); everything the client does afterwards goes through the proxy.
    const http = app.getHttpServer();
    const owner = await client.createUser(new CreateUserRequest(`schedules-${randomUUID()}`));
    proxy.take();
    const window = { from: Date.now(), to: 0 };
    const cronType = { type: CRON, expression: '0 9 * * 1-5', time_zone: 'Europe/Berlin', overlap: 'SKIP' };
    const kafka = { type: KAFKA, topic: 'weekday-mornings', message: 'good morning' };
    const cron = asObject(
      (await request(http).post('/v1/plan').send({ user_id: owner.id, description: 'weekday mornings', plan_type: cronType, action: kafka, max_failure_retry: 1 }).expect(200))
        .body,
    );
    await sleep(2); // distinct created_at, so "newest first" has exactly one right order
    const toPause = asObject(
      (
        await request(http)
          .post('/v1/plan')
          .send({ user_id: owner.id, description: 'hourly, paused', period_time: 'PT1H', plan_type: { type: RECURRING, overlap: 'BUFFER_ONE' }, action: kafka })
          .expect(200)
      ).body,
    );
    await sleep(2);
    const pause = await request(http).post(`/v1/plan/${toPause.id}/pause`).expect(200);
    expect(pause.body).toMatchObject({ plan_id: toPause.id, status: 'PAUSED', overlap: 'BUFFER_ONE', next_execution_at: null });
    await sleep(2);
    const { raw: plain } = await submit(new SubmitPlanRequest(owner.id, 'plain one-time', 'PT1H', new OneTime(), new KafkaProducerRequest('plain', 'm')));
    window.to = Date.now();

    // The raw plans as POST answered them: v1 key sets; the cron plan's period_time is its expression, and
    // its type carries the Cron fields, time_zone as sent and end_at written out as null.
    const base = { user_id: owner.id, status: PlanStatus.CREATED, hook: [] };
    expectPlan(
      cron,
      { ...base, description: 'weekday mornings', period_time: '0 9 * * 1-5', type: { ...cronType, end_at: null }, max_failure_retry: 1, action: { ...kafka, key: null } },
      window,
    );
    expectPlan(
      toPause,
      {
        ...base,
        description: 'hourly, paused',
        period_time: 'PT1H',
        type: { type: RECURRING, end_at: null, overlap: 'BUFFER_ONE' },
        max_failure_retry: 3,
        action: { ...kafka, key: null },
      },
      window,
    );

    // listPlans: all three, newest first, through the client's classes and in the raw JSON.
    const listed = await client.listPlans(owner.id, 0);
    const listRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan?user_id=${owner.id}&page=0`);
    expect(keysOf(listRaw)).toEqual(['offset', 'plans', 'total']);
    expect({ total: listRaw.total, offset: listRaw.offset }).toEqual({ total: 3, offset: 0 });
    const [plainListed, pausedListed, cronListed] = (listRaw.plans as unknown[]).map(asObject);
    expect([plainListed.id, pausedListed.id, cronListed.id]).toEqual([plain.id, toPause.id, cron.id]);
    for (const p of [plainListed, pausedListed, cronListed]) expect(keysOf(p)).toEqual(PLAN_KEYS);
    expect(plainListed).toEqual(plain);
    expect(cronListed).toEqual(cron);
    // Paused, the plan keeps its v1 status (never run: CREATED; GET /state says PAUSED); pausing touched updated_at only.
    expect(pausedListed).toEqual({ ...toPause, updated_at: pausedListed.updated_at });
    expect(pausedListed.status).toBe(PlanStatus.CREATED);
    expectEpochMs(pausedListed.updated_at, window);
    expect(pausedListed.updated_at).toBeGreaterThan(toPause.created_at as number);
    expect(listed).toBeInstanceOf(ListPlanResponse);
    expect(listed).toEqual(listRaw);
    expect(listed.plans.map((p) => [p.id, p.status, p.period_time])).toEqual([
      [plain.id, PlanStatus.CREATED, 'PT1H'],
      [toPause.id, PlanStatus.CREATED, 'PT1H'],
      [cron.id, PlanStatus.CREATED, '0 9 * * 1-5'],
    ]);
    expect(Object.values(PlanStatus)).toEqual(expect.arrayContaining(listed.plans.map((p) => p.status)));

    // getPlan and getSummary of each: the listed plan, and one pending task shown in the client's enums.
    const read = async (plan: Json): Promise<Json> => {
      const id = plan.id as string;
      const got = await client.getPlan(id);
      const getRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}`);
      expect(keysOf(getRaw)).toEqual(['latest_task', 'plan']);
      expect(getRaw.plan).toEqual(plan);
      const task = expectTask(getRaw.latest_task, id);
      expect(got).toBeInstanceOf(GetPlanResponse);
      expect(got).toEqual(getRaw);

      const summary = await client.getSummary(id);
      const summaryRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}/summary`);
      expect(keysOf(summaryRaw)).toEqual(['error_logs', 'plan', 'tasks']);
      expect(summaryRaw.plan).toEqual(plan);
      expect(summaryRaw.tasks).toEqual([task]);
      expect(summaryRaw.error_logs).toEqual([]);
      expect(summary).toBeInstanceOf(GetSummaryResponse);
      expect(summary).toEqual(summaryRaw);
      return task;
    };
    const plainTask = await read(plainListed);
    expect(plainTask).toMatchObject({ status: TaskStatus.CREATED, executed_at: null, next_execution_at: (plain.created_at as number) + HOUR });
    // The paused plan's pending task is PAUSED inside Karya and CREATED in v1, still due when it was.
    const pausedTask = await read(pausedListed);
    expect(pausedTask).toMatchObject({ status: TaskStatus.CREATED, executed_at: null, next_execution_at: (toPause.created_at as number) + HOUR });
    const cronTask = await read(cronListed);
    expect(cronTask).toMatchObject({ status: TaskStatus.CREATED, executed_at: null });
    expectFirstBerlinWeekdayNine(cronTask.next_execution_at as number, cron.created_at as number);

    // The unmodified ESM package in a plain node process reads the same JSON into the same objects.
    const native = await runNativeReader(proxy.url, owner.id, [plain.id as string, toPause.id as string, cron.id as string]);
    const nativeRaw = proxy.take().map((ex) => okJson(ex, ex.method, ex.url));
    expect(nativeRaw).toHaveLength(7);
    expect(nativeRaw[0]).toEqual(listRaw);
    expect(native.listClass).toBe('ListPlanResponse');
    expect(native.list).toEqual(listRaw);
    [plain, toPause, cron].forEach((p, i) => {
      const read = native.plans[p.id as string];
      expect([read.getClass, read.summaryClass]).toEqual(['GetPlanResponse', 'GetSummaryResponse']);
      expect(read.get).toEqual(nativeRaw[1 + 2 * i]);
      expect(read.summary).toEqual(nativeRaw[2 + 2 * i]);
      expect(asObject(read.get.plan).id).toBe(p.id);
    });

    // cancelPlan through the client: the paused plan and the cron plan end CANCELLED, their pending tasks too.
    for (const listedPlan of [pausedListed, cronListed]) {
      const id = listedPlan.id as string;
      await sleep(3);
      const { result: cancelled, window: cancelWindow } = await timed(() => client.cancelPlan(id));
      const ex = proxy.takeOne();
      expect(ex.requestBody).toBe('');
      const raw = okJson(ex, 'POST', `//v1/plan/${id}`);
      expect(keysOf(raw)).toEqual(PLAN_KEYS);
      expect(raw).toEqual({ ...listedPlan, status: PlanStatus.CANCELLED, updated_at: raw.updated_at });
      expectEpochMs(raw.updated_at, cancelWindow);
      expect(cancelled).toBeInstanceOf(Plan);
      expect(cancelled).toEqual(raw);

      const got = await client.getPlan(id);
      const getRaw = okJson(proxy.takeOne(), 'GET', `//v1/plan/${id}`);
      expect(getRaw.plan).toEqual(raw);
      expect(expectTask(getRaw.latest_task, id)).toMatchObject({ status: TaskStatus.CANCELLED, executed_at: null });
      expect(got).toEqual(getRaw);
      // Cancel wins over the pause: the richer state is CANCELLED, no longer PAUSED.
      const state = (await request(http).get(`/v1/plan/${id}/state`).expect(200)).body;
      expect(state).toEqual({ plan_id: id, status: 'CANCELLED', paused_at: null, overlap: asObject(listedPlan.type).overlap, next_execution_at: null });
    }

    const after = await client.listPlans(owner.id, 0);
    proxy.take();
    expect(after.plans.map((p) => [p.id, p.status])).toEqual([
      [plain.id, PlanStatus.CREATED],
      [toPause.id, PlanStatus.CANCELLED],
      [cron.id, PlanStatus.CANCELLED],
    ]);
  });

  it('works with the unmodified ESM package run by plain node (no Jest transform)', async () => {
    const name = `native-${randomUUID()}`;
    proxy.take();
    const window = { from: Date.now(), to: 0 };
    const out = await runNativeClient(proxy.url, name);
    window.to = Date.now();
    const exchanges = proxy.take();

    expect(exchanges.map((e) => `${e.method} ${e.url.replace(ANY_UUID, 'ID')}`)).toEqual([
      'POST //v1/user',
      'GET //v1/user?username=native-ID',
      'POST //v1/plan',
      'GET //v1/plan/ID',
      'GET //v1/plan/ID/summary',
      'GET //v1/plan?user_id=ID&page=0',
      'PATCH //v1/plan',
      'POST //v1/plan/ID',
      'GET //v1/user?username=native-ID-missing',
    ]);
    expect(exchanges.map((e) => e.status)).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 404]);

    // The real wire format: declaration-order keys, the `type` discriminator last, end_at and key left out.
    const submitBody = exchanges[2].requestBody;
    const userId = asObject(out.user).id as string;
    expect(submitBody).toBe(
      JSON.stringify({
        user_id: userId,
        description: 'native esm client',
        period_time: 'PT1H',
        plan_type: { type: RECURRING },
        action: { topic: 'orders', message: 'hi', type: 'karya.core.entities.Action.KafkaProducerRequest' },
        hooks: [
          {
            trigger: 'ON_FAILURE',
            action: {
              base_url: 'hooks.example.com/failed',
              body: { json_string: '{"from":"esm"}', type: 'karya.core.entities.http.Body.JsonBody' },
              protocol: 'HTTP',
              method: 'GET',
              headers: { 'content-type': 'application/json' },
              timeout: 2000,
              type: 'karya.core.entities.Action.RestApiRequest',
            },
            max_retry: 3,
          },
        ],
        max_failure_retry: 3,
      }),
    );
    const planId = asObject(out.plan).id as string;
    expect(exchanges[6].requestBody).toBe(JSON.stringify({ plan_id: planId, max_failure_retry: 5 }));
    expect(exchanges[7].requestBody).toBe('');
    expect(exchanges[7].requestHeaders['content-type']).toMatch(/^application\/x-www-form-urlencoded/);

    // What the client's classes returned is what the server sent.
    const responses = exchanges.slice(0, 8).map((e) => asObject(JSON.parse(e.responseBody)));
    expect(expectUser(responses[0], name, window)).toEqual({ ...out.user, class: undefined });
    expect(asObject(out.user).class).toBe('User');
    expect(out.found).toEqual(responses[0]);
    const submitted = expectPlan(
      responses[2],
      {
        user_id: userId,
        description: 'native esm client',
        period_time: 'PT1H',
        type: { type: RECURRING, end_at: null },
        status: PlanStatus.CREATED,
        max_failure_retry: 3,
        action: { type: 'karya.core.entities.Action.KafkaProducerRequest', topic: 'orders', message: 'hi', key: null },
        hook: asObject(JSON.parse(submitBody)).hooks as object[],
      },
      window,
    );
    expect(asObject(out.plan).class).toBe('Plan');
    expect(out.get).toEqual(responses[3]);
    expect(responses[3].plan).toEqual(submitted);
    expectFirstTask(responses[3].latest_task, submitted, HOUR, window);
    expect(out.summary).toEqual(responses[4]);
    expect(out.list).toEqual(responses[5]);
    expect(responses[5]).toEqual({ plans: [submitted], total: 1, offset: 0 });
    expect(out.updated).toEqual(responses[6]);
    expect(responses[6]).toEqual({ ...submitted, max_failure_retry: 5, updated_at: responses[6].updated_at });
    expect(out.cancelled).toEqual(responses[7]);
    expect(responses[7]).toEqual({ ...responses[6], status: PlanStatus.CANCELLED, updated_at: responses[7].updated_at });
    expect(out.error).toEqual({ name: 'AxiosError', isAxiosError: true, status: 404, data: `User (${name}-missing) not found` });
  });

  it('saw every client request on a //v1/... path, and the server routed them all', () => {
    expect(proxy.history.length).toBeGreaterThan(50);
    for (const ex of proxy.history) {
      expect(ex.url).toMatch(/^\/\/v1\/(user|plan)([/?]|$)/);
      // Not Nest's "no such route" 404 (`Cannot GET /...`): the doubled slash reached the right handler.
      expect(ex.responseBody).not.toMatch(/^Cannot [A-Z]+ \//);
    }
  });
});
