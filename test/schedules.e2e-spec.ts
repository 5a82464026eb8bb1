import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { TaskResultsRepository } from '../src/modules/executor/task-results.repository';
import { EXECUTOR_MESSAGE_TYPE, ExecutorMessage } from '../src/pipeline/executor-message';
import { HttpSink, SinkHit, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Issue 13 end to end, every role in one process, on the embedded stack and on the real services: cron
 * plans on their grid, overlap SKIP and BUFFER_ONE against a slow target, pause and resume, run now, and the
 * list's status filter. Timing bounds are those periodic plans meet (test/pipeline.e2e-spec.ts).
 */

const CRON = 'karya.core.entities.PlanType.Cron';
const SECOND = 1000;
/** What periodic plans meet in test/pipeline.e2e-spec.ts: a call reaches the target within 100 ms of its due time. */
const ON_TIME_MS = 100;

interface TaskJson { id: string; status: string; created_at: number; executed_at: number | null; next_execution_at: number | null }
interface StateJson { plan_id: string; status: string; paused_at: number | null; overlap: string | null; next_execution_at: number | null }

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until the wall clock is `ms` into a second: pauses and resumes then fall between two fires of a 1 s cron. */
async function atMillisecond(ms: number): Promise<void> {
  const wait = (ms - (Date.now() % SECOND) + SECOND) % SECOND;
  await sleep(wait);
}

describe.each(stacks())('schedules (cron, overlap, pause, run now) on $name', (target) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, {
      executorYml: 'application:\n  concurrency: 8\n  egress:\n    allowPrivateNetworks: true\n  retry:\n    initialDelay: 300\n    jitter: 0\n',
      userName: 'schedules',
    }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const submit = async (body: Record<string, unknown>) =>
    (await request(http).post('/v1/plan').send({ user_id: userId, description: 'schedules', max_failure_retry: 0, ...body }).expect(200)).body;
  const summary = async (id: string) => (await request(http).get(`/v1/plan/${id}/summary`).expect(200)).body;
  const state = async (id: string): Promise<StateJson> => (await request(http).get(`/v1/plan/${id}/state`).expect(200)).body;
  const hitsOf = (planId: string): SinkHit[] => sink.hits.filter((h) => h.planId === planId).sort((a, b) => a.receivedAt - b.receivedAt);
  const cancel = (id: string) => request(http).post(`/v1/plan/${id}`).expect(200);

  it('runs */2 * * * * * on even seconds, each call on time, and shows the expression as period_time', async () => {
    const plan = await submit({
      plan_type: { type: CRON, expression: '*/2 * * * * *' },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/even` },
    });
    expect(plan.period_time).toBe('*/2 * * * * *');
    expect(plan.type).toEqual({ type: CRON, expression: '*/2 * * * * *', time_zone: 'UTC', end_at: null });
    await waitFor(() => hitsOf(plan.id).length >= 3, 10_000, 'three runs');
    await cancel(plan.id);
    const s = await summary(plan.id);
    const ran = (s.tasks as TaskJson[]).filter((t) => t.status === 'SUCCESS');
    expect(ran.length).toBeGreaterThanOrEqual(3);
    for (const t of ran) {
      expect(t.next_execution_at! % (2 * SECOND)).toBe(0);
      const [hit] = sink.hitsFor(t.id);
      expect(hit.receivedAt - t.next_execution_at!).toBeGreaterThanOrEqual(0);
      expect(hit.receivedAt - t.next_execution_at!).toBeLessThan(ON_TIME_MS);
    }
    // Consecutive occurrences are 2 s apart: the grid, not the run times, sets the next one.
    const dues = ran.map((t) => t.next_execution_at!).sort((a, b) => a - b);
    for (let i = 1; i < dues.length; i++) expect(dues[i] - dues[i - 1]).toBe(2 * SECOND);
  });

  it('completes a bounded cron plan after its first fire at or after end_at', async () => {
    const endAt = Math.ceil((Date.now() + 2500) / SECOND) * SECOND; // a whole second 2.5–3.5 s away
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *', time_zone: 'Europe/Berlin', end_at: endAt },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/bounded` },
    });
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 10_000, 'bounded cron plan COMPLETED');
    const s = await summary(plan.id);
    const dues = (s.tasks as TaskJson[]).map((t) => t.next_execution_at!);
    expect(Math.max(...dues)).toBe(endAt); // the fire at end_at is the last
    expect((s.tasks as TaskJson[]).every((t) => t.status === 'SUCCESS')).toBe(true);
    expect(hitsOf(plan.id)).toHaveLength(s.tasks.length);
  });

  it('SKIP: a 1 s cron against a 3 s target never has two calls in flight, and the skipped occurrences are in the summary', async () => {
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *', overlap: 'skip' },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/slow/3000`, timeout: 10_000 },
    });
    expect(plan.type.overlap).toBe('SKIP');
    await waitFor(() => hitsOf(plan.id).length >= 3, 15_000, 'three runs of the SKIP plan');
    await cancel(plan.id);
    const hits = hitsOf(plan.id);
    // Each call holds the target 3 s: the next one may start only after the previous answered.
    for (let i = 1; i < hits.length; i++) expect(hits[i].receivedAt - hits[i - 1].receivedAt).toBeGreaterThanOrEqual(3000);
    const s = await summary(plan.id);
    const skipped = (s.tasks as TaskJson[]).filter((t) => t.status === 'CANCELLED' && t.executed_at !== null);
    expect(skipped.length).toBeGreaterThanOrEqual(2 * (hits.length - 1));
    for (const t of skipped) {
      expect(sink.hitsFor(t.id)).toEqual([]);
      const log = (s.error_logs as { error: string; type: { task_id?: string } }[]).find((e) => e.type.task_id === t.id);
      expect(log?.error).toMatch(/^Occurrence due at \S+ skipped --- overlap SKIP: the previous task was still running$/);
    }
  });

  it('BUFFER_ONE: one occurrence waits and runs as soon as the previous call ends; the others are skipped', async () => {
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *', overlap: 'BUFFER_ONE' },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/slow/2500`, timeout: 10_000 },
    });
    await waitFor(() => hitsOf(plan.id).length >= 3, 15_000, 'three runs of the BUFFER_ONE plan');
    await cancel(plan.id);
    const hits = hitsOf(plan.id);
    for (let i = 1; i < hits.length; i++) {
      const gap = hits[i].receivedAt - hits[i - 1].receivedAt;
      expect(gap).toBeGreaterThanOrEqual(2500); // never two in flight
      expect(gap).toBeLessThan(2500 + 1000); // the buffered one starts soon after the previous ends
    }
    const s = await summary(plan.id);
    expect((s.error_logs as { error: string }[]).some((e) => /skipped --- overlap BUFFER_ONE/.test(e.error))).toBe(true);
  });

  it('a bounded SKIP plan still completes: its final occurrence waits for the running call instead of being skipped', async () => {
    const endAt = Math.ceil((Date.now() + 2500) / SECOND) * SECOND;
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *', overlap: 'SKIP', end_at: endAt },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/slow/2500?bounded-skip`, timeout: 10_000 },
    });
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 15_000, 'bounded SKIP plan COMPLETED');
    const s = await summary(plan.id);
    const final = (s.tasks as TaskJson[]).find((t) => t.next_execution_at === endAt)!;
    expect(final.status).toBe('SUCCESS');
    expect(sink.hitsFor(final.id)).toHaveLength(1);
    const hits = hitsOf(plan.id);
    for (let i = 1; i < hits.length; i++) expect(hits[i].receivedAt - hits[i - 1].receivedAt).toBeGreaterThanOrEqual(2500);
  });

  it('a bounded plan paused through its final occurrence completes on resume without running again', async () => {
    const created = Date.now();
    const plan = await submit({ period_time: 'PT1S', plan_type: { type: T.Recurring, end_at: created + 1500 }, action: { type: T.Rest, base_url: `${sink.baseUrl}/paused-end` } });
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    const pausedAt = Date.now();
    await waitFor(() => Date.now() > plan.created_at + 2500, 4000, 'the final slot to pass');
    const resumed: StateJson = (await request(http).post(`/v1/plan/${plan.id}/resume`).expect(200)).body;
    expect(resumed).toMatchObject({ status: 'COMPLETED', paused_at: null, next_execution_at: null });
    expect((await summary(plan.id)).plan.status).toBe('COMPLETED');
    expect(hitsOf(plan.id).filter((h) => h.receivedAt >= pausedAt)).toEqual([]);
  });

  it('a bounded BUFFER_ONE plan paused while its final occurrence waits completes on resume, that occurrence set aside', async () => {
    const endAt = Math.ceil((Date.now() + 2000) / SECOND) * SECOND;
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *', overlap: 'BUFFER_ONE', end_at: endAt },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/slow/3000?final-buffered`, timeout: 10_000 },
    });
    await waitFor(async () => {
      const rows: { status: string }[] = await ds.query(`SELECT status FROM tasks WHERE plan_id = $1 AND next_execution_at = $2`, [plan.id, new Date(endAt)]);
      return rows[0]?.status === 'BUFFERED';
    }, 10_000, 'the final occurrence waiting');
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    // Its time has passed: like any occurrence the pause set aside, it is not caught up, and with nothing left
    // to run the plan ends now (before this fix it was dropped and the plan stayed RUNNING for ever).
    expect((await request(http).post(`/v1/plan/${plan.id}/resume`).expect(200)).body.status).toBe('COMPLETED');
    const s = await summary(plan.id);
    expect(s.plan.status).toBe('COMPLETED');
    expect((s.tasks as TaskJson[]).find((t) => t.next_execution_at === endAt)!.status).toBe('CANCELLED');
    expect(sink.hits.filter((h) => h.planId === plan.id && h.path.includes('final-buffered')).length).toBeGreaterThanOrEqual(1);
  });

  it('an occurrence handed back after its dispatch (a stopping scheduler) is dispatched again, not skipped as its own predecessor', async () => {
    const plan = await submit({ period_time: 'PT1.5S', plan_type: { type: T.Recurring, overlap: 'SKIP' }, action: { type: T.Rest, base_url: `${sink.baseUrl}/handed-back` } });
    // What release() leaves: the task CREATED again while the plan still names it as its active task.
    const [first]: { id: string; partition_key: number }[] = await ds.query(`SELECT id, partition_key FROM tasks WHERE plan_id = $1`, [plan.id]);
    await ds.query(`UPDATE plans SET active_task_id = $2, active_task_key = $3 WHERE id = $1`, [plan.id, first.id, first.partition_key]);
    await waitFor(() => sink.hitsFor(first.id).length === 1, 5000, 'the first occurrence to run');
    await cancel(plan.id);
    expect(((await summary(plan.id)).error_logs as unknown[])).toEqual([]);
  });

  it('the executor hands a first attempt back only while its plan is still paused (a resume since its read wins)', async () => {
    const plan = await submit({ period_time: 'PT1H', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/race` } });
    const [task]: { id: string; partition_key: number }[] = await ds.query(`SELECT id, partition_key FROM tasks WHERE plan_id = $1`, [plan.id]);
    await ds.query(`UPDATE tasks SET status = 'PROCESSING', attempt = 1, dispatch_seq = 7 WHERE id = $1`, [task.id]);
    const results = app.get(TaskResultsRepository);
    const message: ExecutorMessage = {
      type: EXECUTOR_MESSAGE_TYPE, planId: plan.id, taskId: task.id, partitionKey: task.partition_key, attempt: 1, dispatchSeq: 7,
      action: plan.action, maxFailureRetry: 0, toBeExecutedAt: Date.now(),
    };
    expect(await results.paused(message)).toBe(false);
    expect(await ds.query(`SELECT status, attempt FROM tasks WHERE id = $1`, [task.id])).toEqual([{ status: 'PROCESSING', attempt: 1 }]);
    await ds.query(`UPDATE plans SET paused_at = now() WHERE id = $1`, [plan.id]);
    expect(await results.paused(message)).toBe(true);
    expect(await ds.query(`SELECT status, attempt FROM tasks WHERE id = $1`, [task.id])).toEqual([{ status: 'PAUSED', attempt: 0 }]);
    await cancel(plan.id);
  });

  it('pause: no call while paused, v1 status unchanged, state PAUSED; resume: calls come back on the schedule', async () => {
    const plan = await submit({
      plan_type: { type: CRON, expression: '* * * * * *' },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/pausable` },
    });
    await waitFor(() => hitsOf(plan.id).length >= 2, 10_000, 'two runs before the pause');
    // Mid-second, so no call is starting while the pause commits (one already started would finish).
    await atMillisecond(500);
    const paused: StateJson = (await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200)).body;
    const pausedAt = Date.now();
    expect(paused).toMatchObject({ plan_id: plan.id, status: 'PAUSED', overlap: 'ALLOW', next_execution_at: null });
    expect(paused.paused_at).toEqual(expect.any(Number));
    expect((await request(http).get(`/v1/plan/${plan.id}`).expect(200)).body.plan.status).toBe('RUNNING');
    const listed = (await request(http).get(`/v1/plan?user_id=${userId}&status=paused`).expect(200)).body;
    expect(listed.plans.map((p: { id: string }) => p.id)).toContain(plan.id);
    // Pausing again changes nothing.
    expect((await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200)).body.paused_at).toBe(paused.paused_at);
    // Three fires' worth of quiet: an observation window, not a stand-in for a condition.
    await sleep(3200);
    expect(hitsOf(plan.id).filter((h) => h.receivedAt >= pausedAt)).toEqual([]);
    // Run now is refused while paused.
    const refused = await request(http).post(`/v1/plan/${plan.id}/run`).expect(409);
    expect(refused.text).toBe(`Plan ${plan.id} is paused --- resume it before running it now`);

    await atMillisecond(500);
    const resumed: StateJson = (await request(http).post(`/v1/plan/${plan.id}/resume`).expect(200)).body;
    const resumedAt = Date.now();
    expect(resumed).toMatchObject({ status: 'RUNNING', paused_at: null });
    // From now: the next fire is the next whole second, and nothing missed is caught up.
    expect(resumed.next_execution_at).toBe(Math.ceil(resumedAt / SECOND) * SECOND);
    await waitFor(() => hitsOf(plan.id).filter((h) => h.receivedAt >= resumedAt).length >= 2, 5000, 'two runs after resume');
    await cancel(plan.id);
    const after = hitsOf(plan.id).filter((h) => h.receivedAt >= resumedAt);
    const s = await summary(plan.id);
    for (const h of after) {
      const t = (s.tasks as TaskJson[]).find((x) => x.id === h.taskId)!;
      expect(t.next_execution_at).toBeGreaterThanOrEqual(resumedAt - ON_TIME_MS);
      expect(t.next_execution_at! % SECOND).toBe(0);
      expect(h.receivedAt - t.next_execution_at!).toBeLessThan(ON_TIME_MS);
    }
    // Missed fires were skipped, not caught up: no task is due between the pause and the resume.
    expect((s.tasks as TaskJson[]).filter((t) => t.next_execution_at! > pausedAt + SECOND && t.next_execution_at! < resumedAt)).toEqual([]);
  });

  it('run now: one extra call within 1 s, the regular grid unchanged', async () => {
    const plan = await submit({ period_time: 'PT1H', plan_type: { type: T.Recurring }, action: { type: T.Rest, base_url: `${sink.baseUrl}/now` } });
    const regularDue = plan.created_at + 3_600_000;
    const asked = Date.now();
    const task: TaskJson = (await request(http).post(`/v1/plan/${plan.id}/run`).expect(200)).body;
    expect(task.status).toBe('CREATED');
    await waitFor(() => sink.hitsFor(task.id).length === 1, 1000, 'the run-now call');
    expect(sink.hitsFor(task.id)[0].receivedAt - asked).toBeLessThan(SECOND);
    await waitFor(async () => (await summary(plan.id)).tasks.some((t: TaskJson) => t.id === task.id && t.status === 'SUCCESS'), 5000, 'run-now SUCCESS');
    const s = await summary(plan.id);
    // Still exactly one regular task, due where it was, and no successor made by the extra one.
    expect((s.tasks as TaskJson[]).filter((t) => t.status === 'CREATED').map((t) => t.next_execution_at)).toEqual([regularDue]);
    expect(s.tasks).toHaveLength(2);
    expect((await state(plan.id)).next_execution_at).toBe(regularDue);
    await cancel(plan.id);
  });

  it('run now on a OneTime plan brings its task forward once; then it has run', async () => {
    const plan = await submit({ period_time: 'PT1H', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/once-now` } });
    const task: TaskJson = (await request(http).post(`/v1/plan/${plan.id}/run`).expect(200)).body;
    await waitFor(async () => (await summary(plan.id)).plan.status === 'COMPLETED', 5000, 'OneTime plan COMPLETED');
    expect(sink.hitsFor(task.id)).toHaveLength(1);
    expect((await summary(plan.id)).tasks).toHaveLength(1);
    const again = await request(http).post(`/v1/plan/${plan.id}/run`).expect(409);
    expect(again.text).toBe(`Plan ${plan.id} is COMPLETED --- it cannot be run`);
  });

  it('pause, resume and run now on a cancelled plan answer 409 naming it; cancel wins over a pause', async () => {
    const plan = await submit({ period_time: 'PT1H', plan_type: { type: T.Recurring }, action: { type: T.Rest, base_url: `${sink.baseUrl}/x` } });
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    await cancel(plan.id);
    const s = await summary(plan.id);
    expect(s.plan.status).toBe('CANCELLED');
    expect((s.tasks as TaskJson[]).map((t) => t.status)).toEqual(['CANCELLED']);
    expect((await state(plan.id)).status).toBe('CANCELLED');
    for (const [verb, text] of [['pause', 'paused'], ['resume', 'resumed'], ['run', 'run']]) {
      const res = await request(http).post(`/v1/plan/${plan.id}/${verb}`).expect(409);
      expect(res.text).toBe(`Plan ${plan.id} is CANCELLED --- it cannot be ${text}`);
    }
  });

  it('a paused plan shows its pending task as CREATED in v1 and resumes it; a OneTime plan whose time passed runs at once', async () => {
    const plan = await submit({ period_time: 'PT1.5S', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/late-one` } });
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    const rows: { status: string }[] = await ds.query(`SELECT status FROM tasks WHERE plan_id = $1`, [plan.id]);
    expect(rows.map((r) => r.status)).toEqual(['PAUSED']);
    const got = (await request(http).get(`/v1/plan/${plan.id}`).expect(200)).body;
    expect(got.plan.status).toBe('CREATED');
    expect(got.latest_task.status).toBe('CREATED');
    await waitFor(() => Date.now() > plan.created_at + 2000, 3000, 'the OneTime plan to be overdue');
    expect(hitsOf(plan.id)).toEqual([]);
    const resumedAt = Date.now();
    await request(http).post(`/v1/plan/${plan.id}/resume`).expect(200);
    await waitFor(() => hitsOf(plan.id).length === 1, 2000, 'the overdue OneTime plan to run');
    expect(hitsOf(plan.id)[0].receivedAt - resumedAt).toBeLessThan(SECOND);
  });

  it('filters the plan list by status, any case, and refuses an unknown one naming it', async () => {
    const other = (await request(http).post('/v1/user').send({ name: 'filter' }).expect(200)).body.id;
    const submitFor = async (period: string) =>
      (await request(http).post('/v1/plan').send({ user_id: other, description: 'f', period_time: period, plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}/f` } }).expect(200)).body;
    const a = await submitFor('PT1H');
    const b = await submitFor('PT1H');
    await cancel(b.id);
    const list = async (status: string) => (await request(http).get(`/v1/plan?user_id=${other}&page=0&status=${status}`).expect(200)).body;
    expect(await list('CREATED')).toEqual({ plans: [expect.objectContaining({ id: a.id })], total: 1, offset: 0 });
    expect(await list('cancelled')).toEqual({ plans: [expect.objectContaining({ id: b.id })], total: 1, offset: 0 });
    expect(await list('RUNNING')).toEqual({ plans: [], total: 0, offset: 0 });
    expect((await request(http).get(`/v1/plan?user_id=${other}`).expect(200)).body.total).toBe(2);
    const bad = await request(http).get(`/v1/plan?user_id=${other}&status=DONE`).expect(400);
    expect(bad.text).toBe('status: must be one of CREATED, RUNNING, COMPLETED, CANCELLED, PAUSED, got "DONE"');
  });

  it('refuses bad cron plans with a 400 naming the field and the value', async () => {
    const post = (planType: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      request(http).post('/v1/plan').send({ user_id: userId, description: 'bad', plan_type: planType, action: { type: T.Rest, base_url: `${sink.baseUrl}/bad` }, ...extra });
    expect((await post({ type: CRON, expression: '61 * * * *' }).expect(400)).text).toBe('plan_type.expression: Invalid value for minute: 61, got "61 * * * *"');
    expect((await post({ type: CRON, expression: '* * *' }).expect(400)).text).toMatch(/^plan_type\.expression: must have 5 fields .* got 3, got "\* \* \*"$/);
    expect((await post({ type: CRON, expression: '0 9 * * *', time_zone: 'Mars/Olympus' }).expect(400)).text).toBe(
      'plan_type.time_zone: must be an IANA time zone name such as UTC, Europe/Berlin or America/New_York, got "Mars/Olympus"',
    );
    expect((await post({ type: CRON, expression: '0 0 31 2 *' }).expect(400)).text).toBe('plan_type.expression: never fires, got "0 0 31 2 *"');
    expect((await post({ type: CRON, expression: '0 9 * * *' }, { period_time: 'PT1H' }).expect(400)).text).toMatch(/^period_time: a Cron plan's period_time is its expression/);
    expect((await post({ type: CRON, expression: '0 9 * * *', overlap: 'SOMETIMES' }).expect(400)).text).toMatch(/overlap.*must be one of ALLOW, SKIP, BUFFER_ONE/);
    expect((await post({ type: CRON }).expect(400)).text).toBe('plan_type.expression: required, got nothing');
    // Repeating the expression as period_time is accepted (a plan read back and submitted again).
    const ok = await post({ type: CRON, expression: '0 9 * * *', time_zone: 'Asia/Kolkata' }, { period_time: '0 9 * * *' }).expect(200);
    await cancel(ok.body.id);
    // PATCH cannot turn a cron plan's schedule into a period.
    const patched = await request(http).patch('/v1/plan').send({ plan_id: ok.body.id, period_time: 'PT1M' }).expect(400);
    expect(patched.text).toMatch(/^period_time: plan \S+ is a Cron plan/);
  });
});
