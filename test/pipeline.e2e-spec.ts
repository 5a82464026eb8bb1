import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { Delivery, QueueName, TaskQueue } from '../src/connectors/queue/queue.port';
import { sqlRows } from '../src/connectors/repo/sql';
import {
  EXECUTOR_BATCH_TYPE, EXECUTOR_MESSAGE_TYPE, ExecutorMessage, executorMessages, MAX_TASKS_PER_MESSAGE,
} from '../src/pipeline/executor-message';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * The pipeline with every role in one process, on the embedded stack and on the real services: the
 * scheduler claims, dispatches at the due time, the executor runs the REST action against a local sink
 * and records the result. (test/distributed.e2e-spec.ts runs the roles as separate processes.)
 */
describe.each(stacks())('pipeline, all roles in one process on $name', (target) => {
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
      executorYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n  retry:\n    initialDelay: 300\n    multiplier: 2\n    jitter: 0\n  connectors:\n    - type: restapi\n      configs: {}\n',
      userName: 'pipeline',
      deadLetters,
    }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const submit = async (body: Record<string, unknown>) =>
    (await request(http).post('/v1/plan').send({ user_id: userId, description: 'p', max_failure_retry: 0, ...body }).expect(200)).body;
  const summary = async (id: string) => (await request(http).get(`/v1/plan/${id}/summary`).expect(200)).body;

  it('runs a OneTime plan due in 1 s once, at its due time: task SUCCESS, plan COMPLETED', async () => {
    const plan = await submit({ period_time: 'PT1S', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/once`, method: 'POST' } });
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 10_000, 'plan COMPLETED');
    const s = await summary(plan.id);
    expect(s.tasks).toHaveLength(1);
    expect(s.tasks[0].status).toBe('SUCCESS');
    const hits = sink.hitsFor(s.tasks[0].id);
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ method: 'POST', path: '/once', planId: plan.id, attempt: 1 });
    const lateness = hits[0].receivedAt - s.tasks[0].next_execution_at;
    expect(lateness).toBeGreaterThanOrEqual(0);
    expect(lateness).toBeLessThan(100);
  });

  it('runs a bounded Recurring plan on its grid and completes after the first run at or after end_at', async () => {
    const createdAround = Date.now();
    const plan = await submit({
      period_time: 'PT1S',
      plan_type: { type: T.Recurring, end_at: createdAround + 3500 },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/grid` },
    });
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 15_000, 'recurring plan COMPLETED');
    const s = await summary(plan.id);
    const hits = sink.hits.filter((h) => h.planId === plan.id).sort((a, b) => a.receivedAt - b.receivedAt);
    // created + 1 s, 2 s, 3 s (before end_at) and 4 s (the first at or after it).
    expect(hits).toHaveLength(4);
    hits.forEach((h, k) => {
      const slot = plan.created_at + (k + 1) * 1000;
      expect(Math.abs(h.receivedAt - slot)).toBeLessThan(100);
    });
    expect(s.tasks.map((t: { status: string }) => t.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
  });

  it('retries a failing action with backoff, logs each failure, and dead-letters after the last attempt', async () => {
    const plan = await submit({ period_time: 'PT0.2S', plan_type: { type: T.OneTime }, max_failure_retry: 2, action: { type: T.Rest, base_url: `${sink.baseUrl}/fail` } });
    await waitFor(async () => (await summary(plan.id)).error_logs.length === 3 && (await summary(plan.id)).plan.status === 'COMPLETED', 15_000, '3 failures');
    const s = await summary(plan.id);
    const taskId = s.tasks[0].id;
    expect(s.tasks).toHaveLength(1);
    expect(s.tasks[0].status).toBe('FAILURE');
    expect(s.error_logs).toHaveLength(3);
    for (const e of s.error_logs) {
      expect(e.type).toEqual({ type: 'karya.core.entities.ErrorLogType.ExecutorErrorLog', task_id: taskId });
      expect(e.error).toBe(`REST call failed --- [500 | http://${sink.baseUrl}/fail] | sink says no`);
    }
    const hits = sink.hitsFor(taskId);
    expect(hits.map((h) => h.attempt)).toEqual([1, 2, 3]);
    // initialDelay 300 ms, doubling, no jitter: ≥ 300 ms then ≥ 600 ms between attempts.
    expect(hits[1].receivedAt - hits[0].receivedAt).toBeGreaterThanOrEqual(300);
    expect(hits[2].receivedAt - hits[1].receivedAt).toBeGreaterThanOrEqual(600);
    await waitFor(() => deadLetters.some((d) => d.message.taskId === taskId), 5000, 'dead letter');
    const dl = deadLetters.filter((d) => d.message.taskId === taskId);
    expect(dl).toHaveLength(1);
    expect(dl[0].deadLetterReason).toMatch(/^Failed after 3 attempt\(s\): REST call failed --- \[500/);
  });

  it('turns FAILURE into SUCCESS when a retry succeeds', async () => {
    const plan = await submit({ period_time: 'PT0.2S', plan_type: { type: T.OneTime }, max_failure_retry: 3, action: { type: T.Rest, base_url: `${sink.baseUrl}/flaky/2` } });
    await waitFor(async () => (await summary(plan.id)).tasks[0].status === 'SUCCESS', 15_000, 'SUCCESS after retries');
    const s = await summary(plan.id);
    expect(s.error_logs).toHaveLength(2);
    expect(s.plan.status).toBe('COMPLETED');
    expect(sink.hitsFor(s.tasks[0].id).map((h) => h.attempt)).toEqual([1, 2, 3]);
  });

  it('never starts a cancelled plan: cancel before the due time → task CANCELLED, no call', async () => {
    const plan = await submit({ period_time: 'PT1S', plan_type: { type: T.Recurring }, action: { type: T.Rest, base_url: `${sink.baseUrl}/cancelled` } });
    // Claimed ahead (look-ahead 2 × pollFrequency = 200 ms) and held on a timer: cancel while it is held.
    await waitFor(async () => {
      const rows: { status: string }[] = await ds.query(`SELECT status FROM tasks WHERE plan_id = $1 AND next_execution_at = $2`, [plan.id, new Date(plan.created_at + 1000)]);
      return rows[0]?.status === 'PROCESSING';
    }, 5000, 'the first task claimed');
    await request(http).post(`/v1/plan/${plan.id}`).expect(200);
    const cancelledAt = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    expect(sink.hits.filter((h) => h.planId === plan.id && h.receivedAt >= cancelledAt)).toEqual([]);
    const s = await summary(plan.id);
    expect(s.plan.status).toBe('CANCELLED');
    expect(s.tasks.every((t: { status: string }) => t.status === 'CANCELLED')).toBe(true);
  });

  it('runs a chained action: the child plan has parent_plan_id and runs; cancelling the parent cancels it', async () => {
    const parent = await submit({
      period_time: 'PT0.2S',
      plan_type: { type: T.OneTime },
      action: { type: T.Chained, request: { user_id: userId, description: 'child', period_time: 'PT1S', plan_type: { type: T.Recurring }, action: { type: T.Rest, base_url: `${sink.baseUrl}/child` } } },
    });
    let childId = '';
    await waitFor(async () => {
      const rows: { id: string }[] = await ds.query(`SELECT id FROM plans WHERE parent_plan_id = $1`, [parent.id]);
      childId = rows[0]?.id ?? '';
      return childId !== '';
    }, 10_000, 'child plan');
    await waitFor(() => sink.hits.some((h) => h.planId === childId), 10_000, 'child run');
    expect((await summary(parent.id)).plan.status).toBe('COMPLETED');
    await request(http).post(`/v1/plan/${parent.id}`).expect(200);
    expect((await summary(childId)).plan.status).toBe('CANCELLED');
    const after = Date.now();
    await new Promise((r) => setTimeout(r, 1500));
    expect(sink.hits.filter((h) => h.planId === childId && h.receivedAt > after)).toEqual([]);
  });

  it('dead-letters once an action whose plugin is not enabled, with the reason, without a redelivery loop', async () => {
    const plan = await submit({ period_time: 'PT0.2S', plan_type: { type: T.OneTime }, max_failure_retry: 3, action: { type: T.Slack, channel: '#c', message: '[]' } });
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 10_000, 'plan ended');
    const s = await summary(plan.id);
    expect(s.tasks[0].status).toBe('FAILURE');
    expect(s.error_logs.map((e: { error: string }) => e.error)).toEqual([`No connector configured for ${T.Slack}`]);
    await new Promise((r) => setTimeout(r, 800));
    const dl = deadLetters.filter((d) => d.message.taskId === s.tasks[0].id);
    expect(dl).toHaveLength(1);
    expect(dl[0].deadLetterReason).toBe(`No connector configured for ${T.Slack}`);
  });

  it('dead-letters a malformed executor message once, with the reason', async () => {
    const queue = app.get(TaskQueue);
    const marker = `malformed-${Date.now()}`;
    await queue.publish(QueueName.Executor, { type: 'karya.core.queues.entities.QueueMessage.ExecutorMessage', taskId: marker });
    await waitFor(() => deadLetters.some((d) => d.message.taskId === marker), 5000, 'dead letter of the malformed message');
    await new Promise((r) => setTimeout(r, 500));
    const dl = deadLetters.filter((d) => d.message.taskId === marker);
    expect(dl).toHaveLength(1);
    expect(dl[0].deadLetterReason).toBe('malformed executor message: bad or missing planId, partitionKey, attempt, dispatchSeq, maxFailureRetry, toBeExecutedAt, action');
    expect(dl[0].originalQueue).toBe(QueueName.Executor);
  });

  it('runs every task of a batch message, dead-letters only its bad entries, one by one, with their reasons', async () => {
    // Two real plans, claimed by hand (PROCESSING under dispatch_seq 1) so that only this batch runs them.
    const plans = [await submit({ period_time: 'P1D', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/batch`, method: 'POST' } }),
      await submit({ period_time: 'P1D', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/batch`, method: 'POST' } })];
    const tasks = await sqlRows<{ id: string; partition_key: number; plan_id: string; next_execution_at: Date }>(
      ds,
      `UPDATE tasks SET status = 'PROCESSING', attempt = 1, dispatch_seq = 1 WHERE plan_id = ANY($1::uuid[])
       RETURNING id, partition_key, plan_id, next_execution_at`,
      [plans.map((p: { id: string }) => p.id)],
    );
    const action = { type: T.Rest, base_url: `${sink.baseUrl}/batch`, method: 'POST', protocol: 'HTTP', headers: {}, timeout: 2000 };
    const good = tasks.map((t) => ({
      type: EXECUTOR_MESSAGE_TYPE, planId: t.plan_id, taskId: t.id, partitionKey: t.partition_key, attempt: 1, dispatchSeq: 1,
      action, maxFailureRetry: 0, toBeExecutedAt: new Date(t.next_execution_at).getTime(), leaseUntil: Date.now() + 600_000,
    }));
    const marker = `batch-bad-${Date.now()}`;
    const stale = { ...good[0], taskId: '00000000-0000-4000-8000-000000000000' }; // no such task: acknowledged, nothing runs
    await app.get(TaskQueue).publish(QueueName.Executor, {
      type: EXECUTOR_BATCH_TYPE,
      tasks: [good[0], { type: EXECUTOR_MESSAGE_TYPE, taskId: marker }, stale, good[1], 'not an object'],
    });
    for (const t of tasks) await waitFor(async () => (await summary(t.plan_id)).plan.status === 'COMPLETED', 10_000, 'batched task ran');
    expect(sink.hits.filter((h) => tasks.some((t) => t.id === h.taskId))).toHaveLength(2);
    await waitFor(() => deadLetters.some((d) => d.message.taskId === marker), 5000, 'dead letter of the bad entry');
    await new Promise((r) => setTimeout(r, 500));
    expect(deadLetters.filter((d) => d.message.taskId === marker).map((d) => d.deadLetterReason)).toEqual([
      'malformed executor message: bad or missing planId, partitionKey, attempt, dispatchSeq, maxFailureRetry, toBeExecutedAt, action',
    ]);
    expect(deadLetters.filter((d) => d.message.entry === 'not an object').map((d) => d.deadLetterReason)).toEqual([
      'not an executor message (type undefined)',
    ]);
    // Neither the batch itself nor its good or stale entries were dead-lettered.
    expect(deadLetters.filter((d) => d.message.type === EXECUTOR_BATCH_TYPE || good.concat(stale).some((g) => g.taskId === d.message.taskId))).toEqual([]);
  });

  it('sends tasks due at the same instant as batch messages, and a lone task as a plain message', () => {
    const task = (i: number) => ({ type: EXECUTOR_MESSAGE_TYPE, taskId: `t${i}` }) as unknown as ExecutorMessage;
    const many = Array.from({ length: MAX_TASKS_PER_MESSAGE + 1 }, (_, i) => task(i));
    const messages = executorMessages(many);
    expect(messages).toHaveLength(2);
    expect(messages[0]).toEqual({ type: EXECUTOR_BATCH_TYPE, tasks: many.slice(0, MAX_TASKS_PER_MESSAGE) });
    expect(messages[1]).toBe(many[MAX_TASKS_PER_MESSAGE]);
    expect(executorMessages([task(7)])).toEqual([task(7)]);
  });

  it('serves /metrics with the pipeline counters', async () => {
    const text = (await request(http).get('/metrics').expect(200)).text;
    expect(text).toMatch(/karya_scheduler_tasks_dispatched_total(\{[^}]*\})? [1-9]/);
    expect(text).toMatch(/karya_executor_task_success_execution_count(\{[^}]*\})? [1-9]/);
    expect(text).toContain('karya_task_lateness_seconds_bucket');
  });
});
