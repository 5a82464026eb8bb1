// The hot-path writes that share one statement among concurrent callers (submissions, executor starts,
// checks and successes): each caller must still get exactly its own answer, on real PostgreSQL and on
// PGlite. Also the claim's lease, which lets an executor start a task with a read instead of a write.
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { loadConfig } from '../src/config/config.loader';
import { RepoConfig } from '../src/config/karya-config';
import { buildDataSource, runMigrations } from '../src/connectors/repo/data-source.factory';
import { PlanEntity, PlanStatus } from '../src/connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../src/connectors/repo/entities/task.entity';
import { TaskResultsRepository } from '../src/modules/executor/task-results.repository';
import { PlansRepository } from '../src/modules/plans/plans.repository';
import { EXECUTOR_MESSAGE_TYPE, ExecutorMessage, RUN_LEASE_MARGIN_MS, runLeaseMs } from '../src/pipeline/executor-message';
import { TaskClaimsRepository } from '../src/modules/scheduler/task-claims.repository';
import { createTestDatabase, TestDatabase } from './support/postgres';

const PARTITIONS = 3;
let db: TestDatabase | undefined;
const targets = [
  { name: 'real PostgreSQL', config: (): RepoConfig => ({ provider: 'psql', partitions: PARTITIONS, poolSize: 8, connectionTimeout: 5000, connectTimeout: 5000, statementTimeout: 5000, dataDir: '', url: db!.url }) },
  { name: 'PGlite', config: (): RepoConfig => ({ provider: 'pglite', partitions: PARTITIONS, poolSize: 1, connectionTimeout: 5000, connectTimeout: 5000, statementTimeout: 5000, dataDir: 'memory' }) },
];

describe.each(targets)('batched writes on $name', (target) => {
  let ds: DataSource;
  let plans: PlansRepository;
  let results: TaskResultsRepository;
  let userId: string;

  beforeAll(async () => {
    if (target.name === 'real PostgreSQL') db = await createTestDatabase();
    const config = target.config();
    ds = buildDataSource(config);
    await ds.initialize();
    await runMigrations(ds, config);
    plans = new PlansRepository(ds);
    results = new TaskResultsRepository(ds, loadConfig({}).config.executor);
    userId = randomUUID();
    await ds.query(`INSERT INTO users (id, name, created_at) VALUES ($1, 'batch', now())`, [userId]);
  });

  afterAll(async () => {
    await ds?.destroy();
    if (target.name === 'real PostgreSQL') await db?.drop();
  });

  function planPair(user: string, description: string): { plan: PlanEntity; task: TaskEntity } {
    const now = new Date();
    const plan: PlanEntity = {
      id: randomUUID(), userId: user, description, periodTime: 'PT1H', type: { type: 'karya.core.entities.PlanType.OneTime' },
      status: PlanStatus.Created, maxFailureRetry: 1, action: { type: 'x', note: "it's \"quoted\" ✓" }, hook: [],
      parentPlanId: null, createdAt: now, updatedAt: now, pausedAt: null,
    };
    const task: TaskEntity = {
      id: randomUUID(), partitionKey: 1 + (description.length % PARTITIONS), planId: plan.id, status: TaskStatus.Created, attempt: 0,
      dispatchSeq: 0, retryAt: null, nextCreated: false, createdAt: now, executedAt: null,
      nextExecutionAt: new Date(now.getTime() + 3_600_000), leaseUntil: null, retryLimit: null,
    };
    return { plan, task };
  }

  /** Stores a plan and its task as a scheduler's claim leaves it: PROCESSING under dispatch_seq 1. */
  async function claimed(description: string): Promise<ExecutorMessage> {
    const { plan, task } = planPair(userId, description);
    expect(await plans.insertPlanWithTask(plan, task)).toBe(true);
    await ds.query(`UPDATE tasks SET status = 'PROCESSING', attempt = 1, dispatch_seq = 1 WHERE id = $1`, [task.id]);
    return {
      type: EXECUTOR_MESSAGE_TYPE, planId: plan.id, taskId: task.id, partitionKey: task.partitionKey, attempt: 1,
      dispatchSeq: 1, action: plan.action, maxFailureRetry: 1, toBeExecutedAt: task.nextExecutionAt!.getTime(),
    };
  }

  it('stores concurrent submissions in one go, refusing only those whose user does not exist', async () => {
    const pairs = Array.from({ length: 40 }, (_, i) => planPair(i % 7 === 3 ? randomUUID() : userId, `sub ${i}`));
    const stored = await Promise.all(pairs.map(({ plan, task }) => plans.insertPlanWithTask(plan, task)));
    expect(stored).toEqual(pairs.map((_, i) => i % 7 !== 3));
    const rows: { id: string; action: unknown; tasks: string }[] = await ds.query(
      `SELECT p.id, p.action, count(t.id)::text AS tasks FROM plans p JOIN tasks t ON t.plan_id = p.id
       WHERE p.id = ANY($1::uuid[]) GROUP BY p.id, p.action`,
      [pairs.map((p) => p.plan.id)],
    );
    expect(rows).toHaveLength(stored.filter(Boolean).length);
    expect(rows.every((r) => r.tasks === '1')).toBe(true);
    expect(rows[0].action).toEqual({ type: 'x', note: "it's \"quoted\" ✓" });
  });

  it('when one row breaks the shared statement, stores the others and fails only that one', async () => {
    const good = [planPair(userId, 'good 1'), planPair(userId, 'good 2')];
    const bad = planPair(userId, 'x'.repeat(300)); // longer than the column: the database refuses it
    const outcome = await Promise.allSettled([good[0], bad, good[1]].map(({ plan, task }) => plans.insertPlanWithTask(plan, task)));
    expect(outcome.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM plans WHERE id = ANY($1::uuid[])`, [
      [good[0].plan.id, good[1].plan.id, bad.plan.id],
    ]);
    expect(n).toBe(2);
  });

  it('answers a start with the plan, and a duplicate of the same dispatch in the same batch as stale', async () => {
    const a = await claimed('start a');
    const b = await claimed('start b');
    const lease = new Date(Date.now() + 60_000);
    const [first, duplicate, other, wrongSeq] = await Promise.all([
      results.start(a, lease), results.start({ ...a }, lease), results.start(b, lease), results.start({ ...b, dispatchSeq: 7 }, lease),
    ]);
    expect(first).toMatchObject({ planStatus: PlanStatus.Created, planType: { type: 'karya.core.entities.PlanType.OneTime' }, hooks: [] });
    expect(duplicate).toBeNull();
    expect(other).not.toBeNull();
    expect(wrongSeq).toBeNull();
    const [row] = await ds.query(`SELECT lease_until FROM tasks WHERE id = $1`, [a.taskId]);
    expect(new Date(row.lease_until).getTime()).toBe(lease.getTime());
  });

  it('checks a dispatch like start() without writing the task: same answer, lease untouched, duplicate stale', async () => {
    const a = await claimed('check a');
    const [before] = await ds.query(`SELECT lease_until, xmin::text AS version FROM tasks WHERE id = $1`, [a.taskId]);
    const [first, duplicate, wrongSeq] = await Promise.all([results.check(a), results.check({ ...a }), results.check({ ...a, dispatchSeq: 9 })]);
    expect(first).toMatchObject({ planStatus: PlanStatus.Created, planType: { type: 'karya.core.entities.PlanType.OneTime' }, hooks: [] });
    expect(first?.dueAt).toBe(a.toBeExecutedAt);
    expect(duplicate).toBeNull();
    expect(wrongSeq).toBeNull();
    const [after] = await ds.query(`SELECT lease_until, xmin::text AS version FROM tasks WHERE id = $1`, [a.taskId]);
    expect(after).toEqual(before); // not even a new row version
  });

  it('leases a claim for its run too: leaseTime + the action timeout + the run margin past its due time', async () => {
    const { plan, task } = planPair(userId, 'claim lease');
    plan.action = { type: 'x', timeout: 7000 };
    task.nextExecutionAt = new Date(Date.now() - 1000); // due: the claim takes it
    expect(await plans.insertPlanWithTask(plan, task)).toBe(true);
    const claimed = await new TaskClaimsRepository(ds).claim('due', {
      partitions: [task.partitionKey], horizon: Date.now(), limit: 1000, leaseTime: 20_000, totalPartitions: PARTITIONS,
    });
    const mine = claimed.find((c) => c.taskId === task.id);
    const claimedAt = Date.now();
    // Claimed late (due a second ago), so the lease counts from the claim, not from the due time.
    expect(mine!.leaseUntil).toBeGreaterThanOrEqual(claimedAt - 1000 + 20_000 + 7000 + RUN_LEASE_MARGIN_MS);
    expect(mine!.leaseUntil).toBeLessThanOrEqual(claimedAt + 20_000 + 7000 + RUN_LEASE_MARGIN_MS);
    expect(runLeaseMs(plan.action)).toBe(7000 + RUN_LEASE_MARGIN_MS);
    const [row] = await ds.query(`SELECT lease_until FROM tasks WHERE id = $1`, [task.id]);
    expect(new Date(row.lease_until).getTime()).toBe(mine!.leaseUntil);
  });

  it('records concurrent successes, completing each plan whose last run it was, once', async () => {
    const last = await claimed('success last');
    const notLast = await claimed('success not last');
    const at = new Date();
    const [r1, r2, again] = await Promise.all([
      results.succeeded(last, at, true), results.succeeded(notLast, at, false), results.succeeded({ ...last }, at, true),
    ]);
    expect(r1).toEqual({ recorded: true, completed: true });
    expect(r2).toEqual({ recorded: true, completed: false });
    expect(again).toEqual({ recorded: false, completed: false });
    const statuses: { id: string; task: string; plan: string }[] = await ds.query(
      `SELECT t.id, t.status AS task, p.status AS plan FROM tasks t JOIN plans p ON p.id = t.plan_id WHERE t.id = ANY($1::uuid[])`,
      [[last.taskId, notLast.taskId]],
    );
    const byId = new Map(statuses.map((s) => [s.id, s]));
    expect(byId.get(last.taskId)).toMatchObject({ task: TaskStatus.Success, plan: PlanStatus.Completed });
    expect(byId.get(notLast.taskId)).toMatchObject({ task: TaskStatus.Success, plan: PlanStatus.Created });
  });

  it('never completes a cancelled plan, and records nothing for a task that is no longer PROCESSING', async () => {
    const cancelled = await claimed('success cancelled plan');
    await ds.query(`UPDATE plans SET status = 'CANCELLED' WHERE id = $1`, [cancelled.planId]);
    const gone = await claimed('success cancelled task');
    await ds.query(`UPDATE tasks SET status = 'CANCELLED' WHERE id = $1`, [gone.taskId]);
    const [r1, r2] = await Promise.all([results.succeeded(cancelled, new Date(), true), results.succeeded(gone, new Date(), true)]);
    expect(r1).toEqual({ recorded: true, completed: false });
    expect(r2).toEqual({ recorded: false, completed: false });
    const [plan] = await ds.query(`SELECT status FROM plans WHERE id = $1`, [cancelled.planId]);
    expect(plan.status).toBe(PlanStatus.Cancelled);
  });
});
