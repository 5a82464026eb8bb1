import { constructWithPythonClient, PythonClientItem } from './support/python-client';

/**
 * Issue 13: a cron plan must not crash the published Python client. karya-client 1.1.3 builds every
 * response with `Cls(**response.json())` on plain dataclasses (karya/clients/__init__.py), so an extra or
 * missing top-level key is a TypeError, and the values themselves are not checked (no enum coercion, no
 * nested construction). These tests run the client's real classes (vendored unchanged, see
 * test/fixtures/python-client/PROVENANCE.md) over v1 JSON, and show that the harness can fail.
 * No server is started.
 */

const V1_PLAN_KEYS = [
  'id',
  'user_id',
  'description',
  'period_time',
  'type',
  'status',
  'max_failure_retry',
  'action',
  'hook',
  'parent_plan_id',
  'created_at',
  'updated_at',
];

const action = {
  type: 'karya.core.entities.Action.RestApiRequest',
  base_url: 'localhost:9000',
  body: { type: 'karya.core.entities.http.Body.EmptyBody' },
  protocol: 'HTTP',
  method: 'GET',
  headers: { 'content-type': 'application/json' },
  timeout: 2000,
};

const cronPlan = {
  id: '0b6f7a4e-6c1d-4f0e-9d51-8f1a2b3c4d5e',
  user_id: '5f0c9e2a-1b3d-4c5e-8f70-112233445566',
  description: 'every two seconds',
  period_time: '*/2 * * * * *',
  type: {
    type: 'karya.core.entities.PlanType.Cron',
    expression: '*/2 * * * * *',
    time_zone: 'Europe/Berlin',
    end_at: null,
    overlap: 'SKIP',
  },
  status: 'CREATED',
  max_failure_retry: 3,
  action,
  hook: [{ trigger: 'ON_FAILURE', action, max_retry: 3 }],
  parent_plan_id: null,
  created_at: 1735689600000,
  updated_at: 1735689600000,
};

const recurringPlan = {
  ...cronPlan,
  id: '1c7a8b5f-7d2e-4a1f-8e62-9a2b3c4d5e6f',
  description: 'every thirty seconds',
  period_time: 'PT30S',
  type: { type: 'karya.core.entities.PlanType.Recurring', end_at: null },
  status: 'RUNNING',
  hook: [],
};

const task = {
  id: '2d8b9c60-8e3f-4b20-9f73-ab3c4d5e6f70',
  plan_id: cronPlan.id,
  partition_key: 4,
  status: 'CREATED',
  created_at: 1735689600000,
  executed_at: null,
  next_execution_at: 1735689602000,
};

const errorLog = {
  plan_id: cronPlan.id,
  error: 'connect ECONNREFUSED',
  type: { type: 'karya.core.entities.ErrorLogType.ExecutorErrorLog', task_id: task.id },
  timestamp: 1735689603000,
};

/** Runs the items and returns their verdicts (one python3 process per call). */
async function run(...items: PythonClientItem[]) {
  return constructWithPythonClient(items);
}

describe('published Python client (karya-client 1.1.3) constructs v1 JSON', () => {
  it('the cron plan fixture has exactly the v1 key set', () => {
    expect(Object.keys(cronPlan).sort()).toEqual([...V1_PLAN_KEYS].sort());
    expect(Object.keys(recurringPlan).sort()).toEqual([...V1_PLAN_KEYS].sort());
  });

  it('(a) Plan(**json) accepts a v1 cron plan whose period_time is the cron expression', async () => {
    const [r] = await run({ kind: 'Plan', json: cronPlan });
    expect(r).toEqual({ ok: true, repr: expect.stringMatching(/^Plan\(/) });
    expect(r.repr).toContain("period_time='*/2 * * * * *'");
    expect(r.repr).toContain("'type': 'karya.core.entities.PlanType.Cron'");
  });

  it('(b) an extra top-level key crashes Plan(**json) with a TypeError, so the test can fail', async () => {
    const { updated_at: _dropped, ...missingKey } = cronPlan;
    const [extra, missing, notObject] = await run(
      { kind: 'Plan', json: { ...cronPlan, paused: true } },
      { kind: 'Plan', json: missingKey },
      { kind: 'Plan', json: [cronPlan] },
    );
    expect(extra.ok).toBe(false);
    expect(extra.error).toMatch(/^TypeError: .*unexpected keyword argument 'paused'/);
    expect(missing.ok).toBe(false);
    expect(missing.error).toMatch(/^TypeError: .*missing 1 required positional argument: 'updated_at'/);
    expect(notObject).toEqual({ ok: false, error: expect.stringMatching(/^TypeError: .*must be a mapping/) });
  });

  it('(c) ListPlansResponse {plans, total, offset} with a cron and a recurring plan constructs', async () => {
    const body = { plans: [cronPlan, recurringPlan], total: 2, offset: 0 };
    const [list, ...plans] = await run(
      { kind: 'ListPlansResponse', json: body },
      // The client leaves ListPlanResponse.plans as dicts; building each one too is stricter than the
      // client, and is what a user doing Plan(**p) on them would need.
      ...body.plans.map((p): PythonClientItem => ({ kind: 'Plan', json: p })),
    );
    expect(list).toEqual({ ok: true, repr: expect.stringMatching(/^ListPlanResponse\(plans=\[/) });
    expect(plans).toEqual([
      { ok: true, repr: expect.any(String) },
      { ok: true, repr: expect.any(String) },
    ]);
  });

  it('(c) the client does not construct nested plans: only the top-level key set is checked', async () => {
    const sloppy = { ...cronPlan, paused: true };
    const [list, nested] = await run(
      { kind: 'ListPlansResponse', json: { plans: [sloppy], total: 1, offset: 0 } },
      { kind: 'Plan', json: sloppy },
    );
    // Documents the client's behaviour. The per-plan check above is the one that catches this.
    expect(list.ok).toBe(true);
    expect(nested.ok).toBe(false);
    const [listExtra] = await run({ kind: 'ListPlansResponse', json: { plans: [], total: 0, offset: 0, page: 0 } });
    expect(listExtra.error).toMatch(/^TypeError: .*unexpected keyword argument 'page'/);
  });

  it('(c) GetPlanResponse {plan, latest_task} and GetSummaryResponse construct for a cron plan', async () => {
    const results = await run(
      { kind: 'GetPlanResponse', json: { plan: cronPlan, latest_task: task } },
      { kind: 'GetPlanResponse', json: { plan: cronPlan, latest_task: null } },
      { kind: 'GetSummaryResponse', json: { plan: cronPlan, tasks: [task], error_logs: [errorLog] } },
      { kind: 'Task', json: task },
      { kind: 'GetPlanResponse', json: { plan: cronPlan, latest_task: task, tasks: [] } },
    );
    expect(results.slice(0, 4).map((r) => r.ok)).toEqual([true, true, true, true]);
    expect(results[0].repr).toMatch(/^GetPlanResponse\(plan=\{/);
    expect(results[4].error).toMatch(/^TypeError: .*unexpected keyword argument 'tasks'/);
  });

  it('status is not coerced to PlanStatus: RUNNING and an unknown string are both kept as plain str', async () => {
    const [running, unknown] = await run(
      { kind: 'Plan', json: { ...cronPlan, status: 'RUNNING' } },
      { kind: 'Plan', json: { ...cronPlan, status: 'PAUSED' } },
    );
    // A PlanStatus member would print as <PlanStatus.RUNNING: 'RUNNING'>; a str prints quoted.
    expect(running.ok).toBe(true);
    expect(running.repr).toContain("status='RUNNING'");
    // The dataclass does not check the value, so an unknown status would not crash construction. Code
    // that later does PlanStatus(plan.status) would raise ValueError, and that is why v1 keeps
    // CREATED/RUNNING for paused plans.
    expect(unknown.ok).toBe(true);
    expect(unknown.repr).toContain("status='PAUSED'");
  });

  it('harness faults reject rather than pass as a verdict', async () => {
    await expect(constructWithPythonClient([{ kind: 'Nope' as 'Plan', json: {} }])).rejects.toThrow(/unknown kind 'Nope'/);
  });
});
