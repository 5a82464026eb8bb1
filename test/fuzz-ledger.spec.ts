import { gzipSync } from 'node:zlib';
import { FuzzCase, generateCases, RunState } from './support/fuzz-cases';
import { AckLedger, sentObject, Stored, StoredPlanRow } from './support/fuzz-ledger';
import { FuzzContext, PLAN_KEYS, PlanFacts } from './support/fuzz-model';
import { T } from './support/wire-types';

// The API fuzz suite's ledger (test/support/fuzz-ledger.ts): what it flags in answers and in the database; and
// the checks its generated cases make of issue 13's answers.
// The suite itself shows it against a real database (a plan changed behind the API is caught); these are the
// other ways stored and acknowledged state can disagree.

const USER = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0001';
const PLAN = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0002';

function plan(overrides: Partial<StoredPlanRow> = {}): StoredPlanRow {
  return {
    id: PLAN, user_id: USER, description: 'd', period_time: 'PT1H', type: { type: T.OneTime }, status: 'CREATED',
    max_failure_retry: 3, action: { type: T.Rest, base_url: 'localhost:9', method: 'GET' }, hook: [], parent_plan_id: null,
    created_at: 1_700_000_000_000, updated_at: 1_700_000_000_000, paused_at: null, ...overrides,
  };
}

function stored(over: Partial<Stored> = {}): Stored {
  return {
    plans: [plan()],
    tasks: [{ plan_id: PLAN, status: 'CREATED', n: 1 }],
    users: [{ id: USER, name: 'u', created_at: 1 }],
    ...over,
  };
}

function ledgerWithPlan(): AckLedger {
  const l = new AckLedger();
  expect(l.userCreated(0, { id: USER, name: 'u', created_at: 1 })).toBeUndefined();
  expect(l.created(1, plan())).toBeUndefined();
  return l;
}

function patchCase(body: object, extra: Partial<FuzzCase> = {}): FuzzCase {
  return {
    n: 2, endpoint: 'PATCH /v1/plan', family: 'x', mutation: 'x', method: 'patch', url: '/v1/plan',
    contentType: 'application/json', body: Buffer.from(JSON.stringify(body)), expect: { statuses: [200] }, ...extra,
  };
}

describe('API fuzz ledger', () => {
  it('passes a database that holds exactly what was acknowledged', () => {
    expect(ledgerWithPlan().verify(stored()).problems).toEqual([]);
  });

  it('flags an acknowledged plan that is missing, stored differently, or without exactly one first task', () => {
    const l = ledgerWithPlan();
    expect(l.verify(stored({ plans: [], tasks: [] })).problems).toEqual([`plan ${PLAN} (acknowledged by case #1) is not stored`]);
    expect(l.verify(stored({ plans: [plan({ hook: [{ trigger: 'ON_FAILURE' }] })] })).problems).toEqual([
      expect.stringMatching(/^plan .* is stored unlike its last acknowledgement: hook stored \[\{"trigger":"ON_FAILURE"\}\], acknowledged \[\]$/),
    ]);
    expect(l.verify(stored({ plans: [plan({ updated_at: 1_700_000_000_001 })] })).problems).toEqual([expect.stringContaining('updated_at stored')]);
    expect(l.verify(stored({ tasks: [] })).problems).toEqual([expect.stringContaining('has tasks [], expected ["1 CREATED"]')]);
    expect(l.verify(stored({ tasks: [{ plan_id: PLAN, status: 'CREATED', n: 2 }] })).problems)
      .toEqual([expect.stringContaining('has tasks ["2 CREATED"], expected ["1 CREATED"]')]);
  });

  it('flags a stored plan, task or user that no answer acknowledged', () => {
    const other = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0003';
    const problems = ledgerWithPlan().verify(stored({
      plans: [plan(), plan({ id: other })],
      tasks: [{ plan_id: PLAN, status: 'CREATED', n: 1 }, { plan_id: other, status: 'CREATED', n: 1 }, { plan_id: 'gone', status: 'CREATED', n: 1 }],
      users: [{ id: USER, name: 'u', created_at: 1 }, { id: other, name: 'v', created_at: 1 }],
    })).problems;
    expect(problems).toEqual([
      expect.stringMatching(new RegExp(`^plan ${other} is stored but no answer acknowledged it`)),
      expect.stringMatching(/^1 task\(s\) of plan gone, which is not stored$/),
      expect.stringMatching(new RegExp(`^user ${other} is stored but no answer acknowledged it`)),
    ]);
  });

  it('flags a plan id acknowledged as created twice', () => {
    expect(ledgerWithPlan().created(5, plan())).toMatch(/acknowledged as created twice \(case #1 and this one\)/);
  });

  it('follows PATCH and cancel: the last echo is what must be stored; a field the request did not set must not change', () => {
    const l = ledgerWithPlan();
    expect(l.patched(2, plan({ period_time: 'P1D', updated_at: 2 }), { plan_id: PLAN, period_time: 'P1D' })).toBeUndefined();
    expect(l.verify(stored()).problems).toEqual([expect.stringContaining('period_time stored "PT1H", acknowledged "P1D"')]);
    // max_failure_retry null means "keep": a change is a partial write the request did not ask for.
    expect(l.patched(3, plan({ period_time: 'P1D', max_failure_retry: 9 }), { plan_id: PLAN, max_failure_retry: null }))
      .toMatch(/^PATCH changed what the request did not ask to: max_failure_retry went from 3 \(case #2\) to 9$/);
    expect(l.patched(4, plan({ description: 'other' }), { plan_id: PLAN })).toMatch(/description went from "d"/);
    expect(l.cancelled(5, plan({ status: 'CANCELLED', description: 'other' }))).toBeUndefined();
    expect(l.cancelled(6, plan({ status: 'CREATED', description: 'other' }))).toMatch(/cancel answered status CREATED/);
    expect(l.verify(stored({ plans: [plan({ status: 'CANCELLED', description: 'other' })] })).problems)
      .toEqual([expect.stringContaining('has tasks ["1 CREATED"], expected ["1 CANCELLED"]')]);
    expect(l.patched(7, plan({ id: 'unknown' }), {})).toMatch(/^PATCH acknowledged plan unknown, which no earlier answer acknowledged as created$/);
  });

  it('follows pause, resume and run now: paused_at as answered, updated_at no earlier, one more task per run of a recurring plan', () => {
    const rec = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0004';
    const recType = { type: T.Recurring, end_at: null, overlap: 'SKIP' };
    const l = ledgerWithPlan();
    expect(l.created(2, plan({ id: rec, type: recType }))).toBeUndefined();
    const rows = (recRow: Partial<StoredPlanRow>, recTasks: [string, number][], oneTime: [string, number] = ['CREATED', 1]): Stored => stored({
      plans: [plan(), plan({ id: rec, type: recType, ...recRow })],
      tasks: [{ plan_id: PLAN, status: oneTime[0], n: oneTime[1] }, ...recTasks.map(([status, n]) => ({ plan_id: rec, status, n }))],
    });
    expect(l.verify(rows({}, [['CREATED', 1]])).problems).toEqual([]);
    // Run now moves a OneTime plan's one task, and adds one to a recurring plan.
    expect(l.ran(3, { plan_id: PLAN, status: 'CREATED' })).toBeUndefined();
    expect(l.ran(4, { plan_id: rec, status: 'CREATED' })).toBeUndefined();
    expect(l.verify(rows({}, [['CREATED', 1]])).problems).toEqual([expect.stringContaining(`plan ${rec} (case #2, CREATED) has tasks ["1 CREATED"], expected ["2 CREATED"]`)]);
    expect(l.verify(rows({}, [['CREATED', 2]])).problems).toEqual([]);
    // Pause: paused_at as answered; updated_at moved (to no earlier); every pending task PAUSED.
    expect(l.paused(5, { plan_id: rec, status: 'PAUSED', paused_at: 1_700_000_000_500 })).toBeUndefined();
    const paused = { paused_at: 1_700_000_000_500, updated_at: 1_700_000_000_500 };
    expect(l.verify(rows(paused, [['PAUSED', 2]])).problems).toEqual([]);
    expect(l.verify(rows({ ...paused, updated_at: 1_699_999_999_999 }, [['PAUSED', 2]])).problems)
      .toEqual([expect.stringContaining('updated_at stored 1699999999999, acknowledged 1700000000000 or later')]);
    expect(l.verify(rows({ ...paused, paused_at: null }, [['PAUSED', 2]])).problems)
      .toEqual([expect.stringContaining('stored with paused_at null, but its answers say paused at 1700000000500')]);
    expect(l.verify(rows(paused, [['PAUSED', 1], ['CREATED', 1]])).problems).toEqual([expect.stringContaining('expected ["2 PAUSED"]')]);
    // Pausing a paused plan changes nothing; resuming drops the run-now task the pause held.
    expect(l.paused(6, { plan_id: rec, status: 'PAUSED', paused_at: 1_700_000_000_900 })).toBeUndefined();
    expect(l.verify(rows(paused, [['PAUSED', 2]])).problems).toEqual([]);
    expect(l.resumed(7, { plan_id: rec, status: 'CREATED', paused_at: null })).toBeUndefined();
    expect(l.verify(rows({ ...paused, paused_at: null }, [['CREATED', 1], ['CANCELLED', 1]])).problems).toEqual([]);
    expect(l.verify(rows(paused, [['CREATED', 1], ['CANCELLED', 1]])).problems).toEqual([expect.stringContaining('but its answers say not paused')]);
    // A cancel echo carries updated_at again: it must then be exact.
    expect(l.cancelled(8, plan({ id: rec, type: recType, status: 'CANCELLED', updated_at: 1_700_000_001_000 }))).toBeUndefined();
    expect(l.verify(rows({ status: 'CANCELLED', updated_at: 1_700_000_002_000 }, [['CANCELLED', 2]])).problems)
      .toEqual([expect.stringMatching(/updated_at stored 1700000002000, acknowledged 1700000001000$/)]);
    expect(l.verify(rows({ status: 'CANCELLED', updated_at: 1_700_000_001_000, paused_at: 5 }, [['CANCELLED', 2]])).problems).toEqual([]);
    expect(l.resumed(9, { plan_id: rec, status: 'PAUSED' })).toMatch(/^resume answered status PAUSED$/);
    expect(l.paused(10, { plan_id: 'unknown', status: 'PAUSED' })).toMatch(/^pause acknowledged plan unknown, which no earlier answer acknowledged as created$/);
    expect(l.paused(11, { plan_id: rec, status: 'CREATED' })).toMatch(/^pause answered status CREATED$/);
    expect(l.ran(12, { plan_id: 'unknown' })).toMatch(/which no earlier answer acknowledged as created$/);
  });

  it('expects the one task of a plan completed behind the API to be SUCCESS', () => {
    const l = ledgerWithPlan();
    l.completedBehindApi(PLAN);
    expect(l.verify(stored({ plans: [plan({ status: 'COMPLETED' })], tasks: [{ plan_id: PLAN, status: 'SUCCESS', n: 1 }] })).problems).toEqual([]);
    expect(l.verify(stored({ plans: [plan({ status: 'COMPLETED' })] })).problems).toEqual([expect.stringContaining('expected ["1 SUCCESS"]')]);
    expect(l.verify(stored({ tasks: [{ plan_id: PLAN, status: 'SUCCESS', n: 1 }] })).problems).toEqual([expect.stringContaining('status stored "CREATED", acknowledged "COMPLETED"')]);
  });

  it('reads the body the server parsed: JSON, gzip, a BOM, a form; nothing from an unreadable one', () => {
    expect(sentObject(patchCase({ plan_id: PLAN, hooks: null }))).toEqual({ plan_id: PLAN, hooks: null });
    expect(sentObject(patchCase({}, { body: gzipSync(Buffer.from('{"period_time":"PT1H"}')), headers: { 'Content-Encoding': 'gzip' } })))
      .toEqual({ period_time: 'PT1H' });
    expect(sentObject(patchCase({}, { body: Buffer.from('\uFEFF{"a":1}') }))).toEqual({ a: 1 });
    expect(sentObject(patchCase({}, { body: Buffer.from('plan_id=x&period_time=PT1H'), contentType: 'application/x-www-form-urlencoded' })))
      .toEqual({ plan_id: 'x', period_time: 'PT1H' });
    expect(sentObject(patchCase({}, { body: Buffer.from('{"a":') }))).toBeUndefined();
    expect(sentObject(patchCase({}, { body: undefined }))).toBeUndefined();
  });
});

// The checks the generated cases apply to the new endpoints' answers (test/support/fuzz-cases.ts), shown to
// fail on wrong answers: the API fuzz suite itself only ever sees the server's (right) ones.
describe('API fuzz answer checks of pause, resume, run now, state and the status filter', () => {
  const id = (n: number) => `0b5e3f0c-8f8a-4c59-9d38-5a0f5cde01${String(n).padStart(2, '0')}`;
  const ctx: FuzzContext = {
    userId: USER, userName: 'u', otherUserId: id(99), oneTimePlanId: id(1), recurringPlanId: id(2), cronPlanId: id(3),
    cancelPlanId: id(4), completedPlanId: id(5),
  };
  const cases = generateCases(0x13, 4000, ctx);
  const facts = (over: Partial<PlanFacts>): PlanFacts => ({ owner: USER, status: 'CREATED', paused: false, pausedAt: null, overlap: 'ALLOW', ...over });
  function state(): RunState {
    const plans = new Map<string, PlanFacts>([
      [id(1), facts({ overlap: null })], [id(2), facts({ paused: true, pausedAt: 1_700_000_000_000 })], [id(3), facts({ overlap: 'SKIP' })],
      [id(4), facts({ status: 'CANCELLED', overlap: null })], [id(5), facts({ status: 'COMPLETED', overlap: null })],
    ]);
    return { createdNames: new Set(), plansByUser: new Map([[USER, 5]]), plans };
  }
  /** A generated case for the plan, sent with an empty or ignored body. */
  function caseFor(endpoint: string, plan: string): FuzzCase {
    const c = cases.find((k) => k.endpoint === endpoint && k.url.toLowerCase().includes(`/${plan}`) && /^real plan id/.test(k.mutation) &&
      !/malformed JSON|-only/.test(k.mutation));
    if (!c) throw new Error(`no generated ${endpoint} case for ${plan}`);
    return c;
  }
  function judge(c: FuzzCase, s: RunState, answer: unknown): { statuses: readonly number[]; text?: RegExp; problem?: string } {
    const e = typeof c.expect === 'function' ? c.expect(s) : c.expect;
    return { statuses: e.statuses, text: e.text, problem: e.statuses.includes(200) ? c.checkOk?.(answer, s) : undefined };
  }
  const planState = (plan: string, over: Record<string, unknown> = {}) =>
    ({ plan_id: plan, status: 'CREATED', paused_at: null, overlap: 'ALLOW', next_execution_at: 1_800_000_000_000, ...over });

  it('expects a 409 naming the plan and its status for a cancelled or completed plan, and for run now on a paused one', () => {
    const s = state();
    for (const [endpoint, plan, status] of [
      ['POST /v1/plan/{id}/pause', id(4), 'CANCELLED'], ['POST /v1/plan/{id}/resume', id(5), 'COMPLETED'], ['POST /v1/plan/{id}/run', id(4), 'CANCELLED'],
      ['POST /v1/plan/{id}/run', id(2), 'paus'],
    ] as const) {
      const { statuses, text } = judge(caseFor(endpoint, plan), s, undefined);
      expect(statuses).toEqual([409]);
      expect(text?.test(`Plan ${plan} is ${status.toUpperCase()} --- it cannot be changed`)).toBe(true);
      expect(text?.test(`Plan ${plan} cannot be changed`)).toBe(false);
      expect(text?.test(`Plan ${id(1)} is ${status.toUpperCase()}`)).toBe(false);
    }
    expect(judge(caseFor('POST /v1/plan/{id}/run', id(3)), s, undefined).statuses).toEqual([200]);
  });

  it('wants the PlanState the earlier answers imply: PAUSED while paused, exact keys, no next run while paused', () => {
    const s = state();
    const paused = planState(id(2), { status: 'PAUSED', paused_at: 1_700_000_000_000, next_execution_at: null });
    const stateCase = caseFor('GET /v1/plan/{id}/state', id(2));
    expect(judge(stateCase, s, paused).problem).toBeUndefined();
    expect(judge(stateCase, s, { ...paused, status: 'CREATED' }).problem).toBe('status CREATED, expected PAUSED');
    expect(judge(stateCase, s, { ...paused, next_execution_at: 1 }).problem).toBe('next_execution_at 1 on a PAUSED plan');
    expect(judge(stateCase, s, { ...paused, paused: true }).problem).toMatch(/^PlanState keys are next_execution_at,overlap,paused,paused_at,plan_id,status$/);
    // Pausing a paused plan changes nothing; resuming answers its v1 status with a next run.
    expect(judge(caseFor('POST /v1/plan/{id}/pause', id(2)), s, { ...paused, paused_at: 1_700_000_000_001 }).problem).toMatch(/^paused_at moved/);
    expect(judge(caseFor('POST /v1/plan/{id}/resume', id(2)), s, planState(id(2))).problem).toBeUndefined();
    expect(judge(caseFor('POST /v1/plan/{id}/resume', id(2)), s, planState(id(2), { next_execution_at: null })).problem)
      .toBe('next_execution_at null on a CREATED plan');
    expect(judge(caseFor('POST /v1/plan/{id}/pause', id(3)), s, planState(id(3), { status: 'PAUSED', paused_at: 5, next_execution_at: null })).problem)
      .toBe('overlap "ALLOW", expected "SKIP"');
    expect(judge(caseFor('GET /v1/plan/{id}/state', id(1)), s, planState(id(1))).problem).toBe('overlap "ALLOW", expected null');
  });

  it('wants a v1 Task from run now, and only v1 statuses in a paused plan\'s Plan and tasks', () => {
    const s = state();
    const task = { id: id(50), plan_id: id(3), partition_key: 1, status: 'CREATED', created_at: Date.now(), executed_at: null, next_execution_at: Date.now() };
    const run = caseFor('POST /v1/plan/{id}/run', id(3));
    expect(judge(run, s, task).problem).toBeUndefined();
    expect(judge(run, s, { ...task, status: 'BUFFERED' }).problem).toBe('Task status BUFFERED is not a v1 Task status');
    expect(judge(run, s, { ...task, status: 'SUCCESS' }).problem).toBe('run now answered a SUCCESS task');
    expect(judge(run, s, { ...task, attempt: 0 }).problem).toMatch(/^Task keys are attempt,/);
    expect(judge(run, s, { ...task, next_execution_at: Date.now() + 3_600_000 }).problem).toMatch(/not now$/);
    const get = caseFor('GET /v1/plan/{id}', id(2));
    const plan = { ...Object.fromEntries(['action', 'created_at', 'description', 'hook', 'max_failure_retry', 'parent_plan_id', 'period_time', 'type', 'updated_at', 'user_id'].map((k) => [k, null])), id: id(2), status: 'CREATED' };
    const latest = { ...task, plan_id: id(2) };
    expect(judge(get, s, { plan, latest_task: latest }).problem).toBeUndefined();
    expect(judge(get, s, { plan: { ...plan, status: 'PAUSED' }, latest_task: latest }).problem).toBe('plan status PAUSED, expected CREATED (paused)');
    expect(judge(get, s, { plan, latest_task: { ...latest, status: 'PAUSED' } }).problem).toBe('latest_task status PAUSED is not a v1 Task status');
  });

  it('wants the status filter applied: the total and every listed plan', () => {
    const s = state();
    const list = cases.find((c) => c.endpoint === 'GET /v1/plan' && /^own user, (no page|page="0?0?"), status=paused$/i.test(c.mutation));
    if (!list) throw new Error('no generated list case for status=PAUSED');
    const listed = (plan: string, status = 'CREATED') => ({ ...Object.fromEntries([...PLAN_KEYS].map((k) => [k, null])), id: plan, status, created_at: 1 });
    expect(judge(list, s, { plans: [listed(id(2))], total: 1, offset: 0 }).problem).toBeUndefined();
    expect(judge(list, s, { plans: [listed(id(3))], total: 1, offset: 0 }).problem).toMatch(/^plan .* \(CREATED\) listed under status PAUSED$/);
    expect(judge(list, s, { plans: [listed(id(2)), listed(id(3))], total: 2, offset: 0 }).problem).toBe(`total 2, but 1 plans of ${USER} are PAUSED`);
    expect(judge(list, s, { plans: [listed(id(2), 'PAUSED')], total: 1, offset: 0 }).problem).toMatch(/status PAUSED, not a v1 Plan status$/);
  });
});
