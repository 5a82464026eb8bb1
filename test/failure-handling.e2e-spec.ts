// Failure handling (issue 11, items 1 and 2): a target whose error cannot be stored as it is, a handler that
// fails after the claim, and a result write the database refuses. Each must end once, as a final attempt
// would, and never run again. Every role in one process, on PostgreSQL/Redis/RabbitMQ and on PGlite; the two
// stacks, and the scenarios within each, run side by side so the 60 s quiet watch is paid once.
import request from 'supertest';
import { ActionContext, ActionPlugin, ActionResult } from '../src/actions/action-plugin';
import { ActionRegistry } from '../src/actions/action-registry';
import { JsonObject } from '../src/connectors/repo/entities/plan.entity';
import { Delivery, QueueName } from '../src/connectors/queue/queue.port';
import { HttpSink, waitFor } from './support/http-sink';
import { InProcessKarya, startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { Stack, stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/** How long "no further call" is watched for after a plan ends (the acceptance: 60 s). */
const QUIET_MS = 60_000;
const EXECUTOR_ERROR = 'karya.core.entities.ErrorLogType.ExecutorErrorLog';

/**
 * Stands in for a handler that fails after the claim (a bug, a crash in a plugin): run() throws instead
 * of returning a failure, so no result is ever recorded. Registered on the running app for the Kafka
 * action type, which these executors do not enable, so plans can name it through the real API.
 */
class ThrowingPlugin extends ActionPlugin {
  readonly actionType = T.Kafka;
  readonly connector = 'kafka' as const;
  readonly runs: { taskId: string; attempt: number }[] = [];

  async run(_action: JsonObject, context: ActionContext): Promise<ActionResult> {
    this.runs.push({ taskId: context.taskId, attempt: context.attempt });
    throw new Error('handler blew up after the claim');
  }
}

interface Summary {
  plan: { status: string };
  tasks: { id: string; status: string }[];
  error_logs: { error: string; type: { type: string; task_id: string } }[];
}

describe('failure handling', () => {
  it.concurrent.each(stacks())(
    'on $name: a NUL error body, a throwing handler, a refused result write and a lost claim each end once, then nothing runs',
    async (stack: Stack) => {
      const tmp = new TempDir();
      const sink = new HttpSink();
      const deadLetters: Delivery[] = [];
      let k: InProcessKarya | undefined;
      try {
        await sink.start();
        k = await startInProcessKarya(stack, tmp, {
          executorYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n  retry:\n    initialDelay: 200\n    multiplier: 2\n    jitter: 0\n',
          userName: 'failures',
          deadLetters,
        });
        const plugin = new ThrowingPlugin();
        k.app.get(ActionRegistry).register(plugin);
        // allSettled: the app must outlive every scenario, even when one has already failed.
        const outcomes = await Promise.allSettled([
          nulBodyTarget(k, sink, deadLetters),
          throwingHandler(k, sink, deadLetters, plugin),
          refusedResultWrite(k, sink, deadLetters),
          lostClaim(k, sink, deadLetters),
        ]);
        const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []));
        if (failures.length > 0) throw failures.length === 1 ? failures[0] : new AggregateError(failures, failures.map(String).join('\n'));
      } finally {
        await stopInProcessKarya(k?.app, sink, stack, tmp);
      }
    },
    150_000,
  );
});

const submit = async (k: InProcessKarya, body: Record<string, unknown>): Promise<{ id: string }> =>
  (await request(k.http).post('/v1/plan').send({ user_id: k.userId, description: 'failure handling', ...body }).expect(200)).body;
const summary = async (k: InProcessKarya, id: string): Promise<Summary> =>
  (await request(k.http).get(`/v1/plan/${id}/summary`).expect(200)).body;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A REST target answering 500 with `bad\0gateway`: PostgreSQL refuses NUL in text, so recording that
 * failure used to throw and the task was dispatched again every lease, forever.
 */
async function nulBodyTarget(k: InProcessKarya, sink: HttpSink, deadLetters: Delivery[]): Promise<void> {
  const plan = await submit(k, {
    period_time: 'PT1S', plan_type: { type: T.OneTime }, max_failure_retry: 1, action: { type: T.Rest, base_url: `${sink.baseUrl}/nul` },
  });
  const calls = () => sink.hits.filter((h) => h.planId === plan.id);
  await waitFor(async () => (await summary(k, plan.id)).plan.status === 'COMPLETED', 30_000, 'the NUL-body plan COMPLETED');

  const s = await summary(k, plan.id);
  expect(calls().map((h) => h.attempt)).toEqual([1, 2]);
  expect(s.tasks.map((t) => t.status)).toEqual(['FAILURE']);
  const stored = `REST call failed --- [500 | http://${sink.baseUrl}/nul] | bad\uFFFDgateway`;
  expect(s.error_logs.map((e) => [e.type.type, e.error])).toEqual([[EXECUTOR_ERROR, stored], [EXECUTOR_ERROR, stored]]);
  await waitFor(() => deadLetters.some((d) => d.message.taskId === s.tasks[0].id), 10_000, 'the dead letter');

  await sleep(QUIET_MS);
  expect(calls()).toHaveLength(2);
  const after = await summary(k, plan.id);
  expect(after.plan.status).toBe('COMPLETED');
  expect(after.tasks.map((t) => t.status)).toEqual(['FAILURE']);
  expect(after.error_logs).toHaveLength(2);
  const dead = deadLetters.filter((d) => d.message.taskId === s.tasks[0].id);
  expect(dead.map((d) => [d.originalQueue, d.deadLetterReason])).toEqual([[QueueName.Executor, `Failed after 2 attempt(s): ${stored}`]]);
}

/**
 * A handler that throws after the claim records nothing: the executor notes that, the scheduler takes the
 * task back as its next attempt, and after max_failure_retry + 1 dispatches ends it as a final failed
 * attempt would (FAILURE with an error log, the plan COMPLETED, ON_FAILURE fired, dead-lettered once).
 */
async function throwingHandler(k: InProcessKarya, sink: HttpSink, deadLetters: Delivery[], plugin: ThrowingPlugin): Promise<void> {
  const plan = await submit(k, {
    period_time: 'PT1S', plan_type: { type: T.OneTime }, max_failure_retry: 1,
    action: { type: T.Kafka, topic: 'orders', message: 'never sent' },
    hooks: [{ trigger: 'ON_FAILURE', action: { type: T.Rest, base_url: `${sink.baseUrl}/on-failure/throwing` } }],
  });
  const hookCalls = () => sink.hits.filter((h) => h.path === '/on-failure/throwing' && h.planId === plan.id);
  await waitFor(async () => (await summary(k, plan.id)).plan.status === 'COMPLETED', 20_000, 'the throwing plan COMPLETED');
  await waitFor(() => hookCalls().length > 0, 10_000, 'the ON_FAILURE hook');

  const s = await summary(k, plan.id);
  const taskId = s.tasks[0].id;
  const reason = 'No result after 2 dispatches --- the executor could not record one';
  expect(s.tasks.map((t) => t.status)).toEqual(['FAILURE']);
  expect(s.error_logs.map((e) => [e.type.type, e.error])).toEqual([[EXECUTOR_ERROR, reason]]);
  expect(plugin.runs.filter((r) => r.taskId === taskId).map((r) => r.attempt)).toEqual([1, 2]);
  expect(hookCalls()[0].headers).toMatchObject({ 'x-karya-trigger': 'ON_FAILURE', 'x-karya-task-status': 'FAILURE', 'x-karya-task-id': taskId });
  await waitFor(() => deadLetters.some((d) => d.deadLetterReason === reason && d.message.taskId === taskId), 10_000, 'the final dead letter');

  // Both dispatches were dead-lettered by the queue when the handler threw; the end once more, by the scheduler.
  await sleep(QUIET_MS);
  const dead = deadLetters.filter((d) => d.message.taskId === taskId);
  expect(dead.map((d) => d.deadLetterReason).sort()).toEqual(['handler blew up after the claim', 'handler blew up after the claim', reason].sort());
  expect(dead.find((d) => d.deadLetterReason === reason)).toMatchObject({
    originalQueue: QueueName.Executor, message: { planId: plan.id, taskId, attempt: 2, action: { type: T.Kafka } },
  });
  expect(plugin.runs.filter((r) => r.taskId === taskId)).toHaveLength(2);
  expect(hookCalls()).toHaveLength(1);
  expect((await summary(k, plan.id)).error_logs).toHaveLength(1);
}

/**
 * The database refuses the success write twice (a trigger, so the failure is real): the executor writes it
 * again in place, so the action runs once and the task ends SUCCESS, where leaving it to the lease would
 * have run it again (here: ended it FAILURE, as its only attempt had been spent).
 */
async function refusedResultWrite(k: InProcessKarya, sink: HttpSink, deadLetters: Delivery[]): Promise<void> {
  const plan = await submit(k, {
    period_time: 'PT2S', plan_type: { type: T.OneTime }, max_failure_retry: 0, action: { type: T.Rest, base_url: `${sink.baseUrl}/refused-write` },
  });
  const name = `refuse_${plan.id.replace(/-/g, '')}`;
  await k.ds.query(`CREATE SEQUENCE ${name}`);
  await k.ds.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF nextval('${name}') <= 2 THEN RAISE EXCEPTION 'injected: the database refuses this result write'; END IF;
      RETURN NEW;
    END $$`);
  await k.ds.query(`CREATE TRIGGER ${name} BEFORE UPDATE ON tasks FOR EACH ROW
    WHEN (NEW.status = 'SUCCESS' AND NEW.plan_id = '${plan.id}'::uuid) EXECUTE FUNCTION ${name}()`);

  await waitFor(async () => (await summary(k, plan.id)).plan.status === 'COMPLETED', 20_000, 'the refused-write plan COMPLETED');
  const s = await summary(k, plan.id);
  expect(s.tasks.map((t) => t.status)).toEqual(['SUCCESS']);
  expect(s.error_logs).toEqual([]);
  const [{ refusals }] = await k.ds.query(`SELECT last_value::int AS refusals FROM ${name}`);
  expect(refusals).toBeGreaterThanOrEqual(3);
  expect(sink.hits.filter((h) => h.planId === plan.id)).toHaveLength(1);
  expect(deadLetters.filter((d) => d.message.taskId === s.tasks[0].id)).toEqual([]);
}

/**
 * A claim whose scheduler died before publishing it (the state it leaves: PROCESSING, lease lapsed, no mark
 * from an executor) proves nothing ran, so it is dispatched again although its only attempt is spent.
 */
async function lostClaim(k: InProcessKarya, sink: HttpSink, deadLetters: Delivery[]): Promise<void> {
  const plan = await submit(k, {
    period_time: 'PT1H', plan_type: { type: T.OneTime }, max_failure_retry: 0, action: { type: T.Rest, base_url: `${sink.baseUrl}/lost-claim` },
  });
  await k.ds.query(
    `UPDATE tasks SET status = 'PROCESSING', attempt = attempt + 1, dispatch_seq = dispatch_seq + 1, lease_until = now()
     WHERE plan_id = $1 AND status = 'CREATED'`,
    [plan.id],
  );
  await k.ds.query(`UPDATE plans SET status = 'RUNNING' WHERE id = $1`, [plan.id]);

  await waitFor(async () => (await summary(k, plan.id)).plan.status === 'COMPLETED', 20_000, 'the lost claim run');
  const s = await summary(k, plan.id);
  expect(s.tasks.map((t) => t.status)).toEqual(['SUCCESS']);
  expect(s.error_logs).toEqual([]);
  expect(sink.hits.filter((h) => h.planId === plan.id).map((h) => h.attempt)).toEqual([2]);
  expect(deadLetters.filter((d) => d.message.taskId === s.tasks[0].id)).toEqual([]);
}
