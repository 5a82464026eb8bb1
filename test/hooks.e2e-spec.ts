import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { Delivery, QueueName } from '../src/connectors/queue/queue.port';
import { HttpSink, SinkHit, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/** Hooks (shared/spec/semantics.md "Hooks"), every role in one process, on both stacks. */
describe.each(stacks())('hooks on $name', (target) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;
  const deadLetters: Delivery[] = [];

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, {
      executorYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n  retry:\n    initialDelay: 200\n    multiplier: 2\n    jitter: 0\n',
      userName: 'hooks',
      deadLetters,
    }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const rest = (path: string) => ({ type: T.Rest, base_url: `${sink.baseUrl}${path}`, method: 'POST', body: { type: 'karya.core.entities.http.Body.JsonBody', json_string: '{"hook":true}' } });
  const submit = async (body: Record<string, unknown>) =>
    (await request(http).post('/v1/plan').send({ user_id: userId, description: 'h', ...body }).expect(200)).body;
  const summary = async (id: string) => (await request(http).get(`/v1/plan/${id}/summary`).expect(200)).body;
  const at = (path: string): SinkHit[] => sink.hits.filter((h) => h.path === path);
  const settle = () => new Promise((r) => setTimeout(r, 1000));

  it('fires each ON_FAILURE hook after every failed attempt and ON_COMPLETION once, with context headers', async () => {
    const plan = await submit({
      period_time: 'PT0.2S',
      plan_type: { type: T.OneTime },
      max_failure_retry: 3,
      action: { type: T.Rest, base_url: `${sink.baseUrl}/flaky/2` },
      hooks: [
        { trigger: 'ON_FAILURE', action: rest('/on-failure-a') },
        { trigger: 'ON_FAILURE', action: rest('/on-failure-b') },
        { trigger: 'ON_COMPLETION', action: rest('/on-completion') },
      ],
    });
    await waitFor(() => at('/on-completion').length === 1, 15_000, 'ON_COMPLETION');
    await settle();
    const s = await summary(plan.id);
    const taskId = s.tasks[0].id;
    expect(s.tasks[0].status).toBe('SUCCESS');
    expect(at('/on-failure-a')).toHaveLength(2);
    expect(at('/on-failure-b')).toHaveLength(2);
    expect(at('/on-completion')).toHaveLength(1);
    for (const h of [...at('/on-failure-a'), ...at('/on-failure-b')]) {
      expect(h.headers).toMatchObject({
        'x-karya-plan-id': plan.id, 'x-karya-task-id': taskId, 'x-karya-trigger': 'ON_FAILURE', 'x-karya-task-status': 'FAILURE',
      });
      expect(h.body).toBe('{"hook":true}');
    }
    expect(at('/on-completion')[0].headers).toMatchObject({
      'x-karya-plan-id': plan.id, 'x-karya-task-id': taskId, 'x-karya-trigger': 'ON_COMPLETION', 'x-karya-task-status': 'SUCCESS',
    });
    // One firing per failed attempt: distinct idempotency keys for attempts 1 and 2.
    expect(new Set(at('/on-failure-a').map((h) => h.key)).size).toBe(2);
  });

  it('retries a failing hook max_retry times with backoff, logs each failure as HookErrorLog, then dead-letters it', async () => {
    const plan = await submit({
      period_time: 'PT0.2S',
      plan_type: { type: T.OneTime },
      max_failure_retry: 0,
      action: { type: T.Rest, base_url: `${sink.baseUrl}/ok-for-hook` },
      hooks: [{ trigger: 'ON_COMPLETION', max_retry: 2, action: rest('/fail/hook') }],
    });
    await waitFor(async () => (await summary(plan.id)).error_logs.length === 3, 15_000, '3 hook error logs');
    await settle();
    const s = await summary(plan.id);
    expect(s.error_logs).toHaveLength(3);
    for (const e of s.error_logs) {
      expect(e.type).toEqual({ type: 'karya.core.entities.ErrorLogType.HookErrorLog' });
      expect(e.error).toBe(`REST call failed --- [500 | http://${sink.baseUrl}/fail/hook] | sink says no`);
    }
    const hits = at('/fail/hook').filter((h) => h.planId === plan.id);
    expect(hits.map((h) => h.attempt)).toEqual([1, 2, 3]);
    expect(hits[1].receivedAt - hits[0].receivedAt).toBeGreaterThanOrEqual(200);
    expect(hits[2].receivedAt - hits[1].receivedAt).toBeGreaterThanOrEqual(400);
    const dl = deadLetters.filter((d) => d.originalQueue === QueueName.Hooks && d.message.planId === plan.id);
    expect(dl).toHaveLength(1);
    expect(dl[0].deadLetterReason).toMatch(/^Hook failed after 3 attempt\(s\): REST call failed --- \[500/);
  });

  it('fires ON_COMPLETION once for a bounded Recurring plan, after its last run; never for an unbounded one', async () => {
    const created = Date.now();
    const bounded = await submit({
      period_time: 'PT1S', plan_type: { type: T.Recurring, end_at: created + 2500 }, action: rest('/bounded-run'),
      hooks: [{ trigger: 'ON_COMPLETION', action: rest('/bounded-done') }],
    });
    const unbounded = await submit({
      period_time: 'PT1S', plan_type: { type: T.Recurring }, action: rest('/unbounded-run'),
      hooks: [{ trigger: 'ON_COMPLETION', action: rest('/unbounded-done') }],
    });
    await waitFor(() => at('/bounded-done').length === 1, 15_000, 'bounded ON_COMPLETION');
    await settle();
    const runs = at('/bounded-run').filter((h) => h.planId === bounded.id);
    expect(runs).toHaveLength(3);
    expect(at('/bounded-done')).toHaveLength(1);
    expect(at('/bounded-done')[0].receivedAt).toBeGreaterThanOrEqual(Math.max(...runs.map((r) => r.receivedAt)));
    expect((await summary(bounded.id)).plan.status).toBe('COMPLETED');
    expect(at('/unbounded-run').filter((h) => h.planId === unbounded.id).length).toBeGreaterThanOrEqual(3);
    expect(at('/unbounded-done')).toHaveLength(0);
    await request(http).post(`/v1/plan/${unbounded.id}`).expect(200);
  });

  it('a chained ON_COMPLETION hook creates a child plan that runs; cancelling the parent cancels it', async () => {
    const parent = await submit({
      period_time: 'PT0.2S',
      plan_type: { type: T.OneTime },
      action: rest('/parent'),
      hooks: [{
        trigger: 'ON_COMPLETION',
        action: { type: T.Chained, request: { user_id: userId, description: 'from hook', period_time: 'PT1S', plan_type: { type: T.Recurring }, action: rest('/hook-child') } },
      }],
    });
    let childId = '';
    await waitFor(async () => {
      const rows: { id: string }[] = await ds.query(`SELECT id FROM plans WHERE parent_plan_id = $1`, [parent.id]);
      childId = rows[0]?.id ?? '';
      return childId !== '';
    }, 10_000, 'child plan from the hook');
    await waitFor(() => sink.hits.some((h) => h.planId === childId), 10_000, 'child run');
    await request(http).post(`/v1/plan/${parent.id}`).expect(200);
    expect((await summary(childId)).plan.status).toBe('CANCELLED');
    const after = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    expect(sink.hits.filter((h) => h.planId === childId && h.receivedAt > after)).toEqual([]);
  });
});
