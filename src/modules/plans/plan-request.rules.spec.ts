import { BadRequestException } from '@nestjs/common';
import { PLAN_TYPE } from './dto/discriminators';
import { SubmitPlanRequestDto } from './dto/plan-request.dto';
import { checkPlanRequest, PlanRules } from './plan-request.rules';
import { finalSlot, resumeDue } from './plans.service';

/** A cron plan request as the DTO leaves it (no period_time unless given). */
function cronRequest(expression: string, extra: Partial<SubmitPlanRequestDto> = {}): SubmitPlanRequestDto {
  return {
    user_id: '00000000-0000-4000-8000-000000000000',
    description: 'c',
    plan_type: { type: PLAN_TYPE.Cron, expression, time_zone: 'UTC', end_at: null },
    action: { type: 'karya.core.entities.Action.RestApiRequest', base_url: 'example.com' },
    hooks: [],
    max_failure_retry: 0,
    ...extra,
  } as unknown as SubmitPlanRequestDto;
}

const rules = (minRecurringPeriod: number): PlanRules => ({ strictMode: true, maxChainedDepth: 2, minRecurringPeriod });

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof BadRequestException) return e.message;
    throw e;
  }
  throw new Error('accepted');
}

describe('cron plans against server.yml minRecurringPeriod', () => {
  it('refuses an expression that can fire more often than the minimum, naming the field, the gap and the value', () => {
    expect(refusal(() => checkPlanRequest(cronRequest('*/30 * * * * *'), rules(60_000)))).toBe(
      'plan_type.expression: fires every 30000 ms at times, more often than server.yml minRecurringPeriod (60000 ms), got "*/30 * * * * *"',
    );
    // Two fires a minute apart once a day are still too close for a 5-minute minimum.
    expect(refusal(() => checkPlanRequest(cronRequest('0,1 3 * * *'), rules(300_000)))).toMatch(/fires every 60000 ms at times/);
  });

  it('accepts expressions whose tightest gap meets the minimum, and any expression under the default 1 s', () => {
    expect(() => checkPlanRequest(cronRequest('*/5 * * * *'), rules(300_000))).not.toThrow();
    expect(() => checkPlanRequest(cronRequest('* * * * * *'), rules(1000))).not.toThrow();
  });

  it('names the nested path inside a chained request, and refuses a recurring chained top level in strict mode', () => {
    const chained = cronRequest('0 9 * * *', {
      action: { type: 'karya.core.entities.Action.ChainedRequest', request: cronRequest('61 * * * *') },
    } as unknown as Partial<SubmitPlanRequestDto>);
    expect(refusal(() => checkPlanRequest(chained, rules(1000)))).toBe('Chained requests cannot be recurring');
    const nested = { ...chained, plan_type: { type: PLAN_TYPE.OneTime } } as unknown as SubmitPlanRequestDto;
    (nested as unknown as { period_time: string }).period_time = 'PT1M';
    expect(refusal(() => checkPlanRequest(nested, rules(1000)))).toBe('action.request.plan_type.expression: Invalid value for minute: 61, got "61 * * * *"');
  });
});

describe('resumeDue: where a paused occurrence goes on resume', () => {
  const now = Date.parse('2026-06-01T12:00:30Z');
  it('keeps a slot still ahead', () => {
    expect(resumeDue({ type: { type: PLAN_TYPE.Recurring }, periodTime: 'PT1M' }, now + 5000, now)).toBe(now + 5000);
  });
  it('moves a missed periodic slot to the first slot of its grid at or after now', () => {
    const slot = Date.parse('2026-06-01T11:00:00Z');
    expect(resumeDue({ type: { type: PLAN_TYPE.Recurring }, periodTime: 'PT1M' }, slot, now)).toBe(Date.parse('2026-06-01T12:01:00Z'));
  });
  it('moves a missed cron fire to the next fire at or after now', () => {
    const type = { type: PLAN_TYPE.Cron, expression: '0 */2 * * *', time_zone: 'UTC' };
    expect(resumeDue({ type, periodTime: '0 */2 * * *' }, Date.parse('2026-06-01T08:00:00Z'), now)).toBe(Date.parse('2026-06-01T14:00:00Z'));
  });
  it('runs a missed OneTime plan now', () => {
    expect(resumeDue({ type: { type: PLAN_TYPE.OneTime }, periodTime: 'PT1M' }, now - 60_000, now)).toBe(now);
  });
});

describe('finalSlot: the first occurrence at or after end_at', () => {
  it('follows the periodic grid and the cron fires, and is null for plans that never end', () => {
    const slot = Date.parse('2026-06-01T12:00:00Z');
    expect(finalSlot({ type: { type: PLAN_TYPE.Recurring, end_at: slot + 150_000 }, periodTime: 'PT1M' }, slot)).toBe(slot + 180_000);
    expect(finalSlot({ type: { type: PLAN_TYPE.Recurring, end_at: slot - 1 }, periodTime: 'PT1M' }, slot)).toBe(slot);
    const cron = { type: PLAN_TYPE.Cron, expression: '0 */2 * * *', time_zone: 'UTC', end_at: Date.parse('2026-06-01T15:00:00Z') };
    expect(finalSlot({ type: cron, periodTime: '0 */2 * * *' }, slot)).toBe(Date.parse('2026-06-01T16:00:00Z'));
    expect(finalSlot({ type: { type: PLAN_TYPE.Recurring, end_at: null }, periodTime: 'PT1M' }, slot)).toBeNull();
  });
});
