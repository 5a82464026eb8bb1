import { gzipSync } from 'node:zlib';
import { FuzzCase } from './support/fuzz-cases';
import { AckLedger, sentObject, Stored, StoredPlanRow } from './support/fuzz-ledger';
import { T } from './support/wire-types';

// The API fuzz suite's ledger (test/support/fuzz-ledger.ts): what it flags in answers and in the database.
// The suite itself shows it against a real database (a plan changed behind the API is caught); these are the
// other ways stored and acknowledged state can disagree.

const USER = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0001';
const PLAN = '0b5e3f0c-8f8a-4c59-9d38-5a0f5cde0002';

function plan(overrides: Partial<StoredPlanRow> = {}): StoredPlanRow {
  return {
    id: PLAN, user_id: USER, description: 'd', period_time: 'PT1H', type: { type: T.OneTime }, status: 'CREATED',
    max_failure_retry: 3, action: { type: T.Rest, base_url: 'localhost:9', method: 'GET' }, hook: [], parent_plan_id: null,
    created_at: 1_700_000_000_000, updated_at: 1_700_000_000_000, ...overrides,
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
    expect(l.verify(stored({ tasks: [] })).problems).toEqual([expect.stringContaining('has tasks [], expected one CREATED')]);
    expect(l.verify(stored({ tasks: [{ plan_id: PLAN, status: 'CREATED', n: 2 }] })).problems).toEqual([expect.stringContaining('expected one CREATED')]);
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
      .toEqual([expect.stringContaining('has tasks ["1 CREATED"], expected one CANCELLED')]);
    expect(l.patched(7, plan({ id: 'unknown' }), {})).toMatch(/^PATCH acknowledged plan unknown, which no earlier answer acknowledged as created$/);
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
