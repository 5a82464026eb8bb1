import { PlanStatus } from '../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../connectors/repo/entities/task.entity';
import { PLAN_TYPE } from '../modules/plans/dto/discriminators';
import { firstSlotAtOrAfter, isLastRun } from '../modules/plans/occurrences';
import { finalSlot, resumeDue } from '../modules/plans/plans.service';
import { PlanSchedule, ScheduleHead } from './stats.repository';

/** Task states of an occurrence that has not started. */
const PENDING: readonly TaskStatus[] = [TaskStatus.Created, TaskStatus.Buffered, TaskStatus.Paused];

/**
 * The next `count` fires of a plan (epoch ms, ascending), by the scheduler's own rules (occurrences.ts,
 * cron-schedule.ts with its DST policy, PlansService's resumeDue and finalSlot):
 * - COMPLETED or CANCELLED, or no pending occurrence (a OneTime plan that ran, a bounded plan running its
 *   last): none.
 * - A live plan: its pending occurrence (even if a little overdue: it runs as soon as it is claimed), then
 *   each next slot on its schedule (period grid or cron fires), up to and including the first at or after
 *   end_at. A OneTime plan: its due time only.
 * - A paused plan: the fires it would have if resumed now: the first at or after now (a OneTime plan whose
 *   time passed: now), none when a bounded plan's last fire passed during the pause (resume completes it).
 */
export function planFires(plan: Pick<PlanSchedule, 'type' | 'periodTime' | 'status' | 'pausedAt'>, head: ScheduleHead | null, now: number, count: number): number[] {
  if (plan.status === PlanStatus.Completed || plan.status === PlanStatus.Cancelled) return [];
  if (head === null || !PENDING.includes(head.status) || count <= 0) return [];
  const paused = plan.pausedAt !== null;
  if (plan.type.type === PLAN_TYPE.OneTime) return [paused ? resumeDue(plan, head.due, now) : head.due];
  if (paused) {
    const last = finalSlot(plan, head.due);
    if (last !== null && last < now) return [];
  }
  const fires: number[] = [];
  for (let f: number | null = paused ? resumeDue(plan, head.due, now) : head.due; f !== null && fires.length < count; f = firstSlotAtOrAfter(plan, f, f + 1)) {
    fires.push(f);
    if (isLastRun(plan.type, f)) break;
  }
  return fires;
}
