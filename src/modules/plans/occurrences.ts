import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { cronSchedule } from './cron-schedule';
import { PLAN_TYPE } from './dto/discriminators';
import { parsePeriod } from './period';

/**
 * Whether an occurrence due at `slot` is its plan's last run: a OneTime plan's one task, a bounded Recurring
 * or Cron plan's first occurrence at or after end_at. The executor completes the plan after it; the scheduler
 * finalises, keeps (overlap) and resumes by the same rule.
 */
export function isLastRun(planType: Record<string, unknown>, slot: number): boolean {
  if (planType.type === PLAN_TYPE.OneTime) return true;
  return typeof planType.end_at === 'number' && slot >= planType.end_at;
}

/**
 * The first occurrence at or after `t` on the schedule of a recurring plan whose occurrence is due at `slot`
 * (`slot` <= `t`): periodic on its grid from `slot`, cron at its next fire. Null for a OneTime plan, an
 * unknown type, or a cron expression that fires no more.
 */
export function firstSlotAtOrAfter(plan: { type: JsonObject; periodTime: string }, slot: number, t: number): number | null {
  if (plan.type.type === PLAN_TYPE.Recurring) {
    const period = Math.max(parsePeriod(plan.periodTime), 1);
    return slot + Math.ceil((t - slot) / period) * period;
  }
  const { expression, time_zone } = plan.type;
  if (plan.type.type === PLAN_TYPE.Cron && typeof expression === 'string' && typeof time_zone === 'string') {
    return cronSchedule(expression, time_zone).next(t - 1);
  }
  return null;
}
