import { Type } from '@nestjs/common';
import { ApiKeysModule } from '../auth/api-keys.module';
import { DashboardModule } from '../dashboard/dashboard.module';
import { DeadLetterRecorderModule } from '../dead-letters/dead-letter-recorder.module';
import { DeadLettersModule } from '../dead-letters/dead-letters.module';
import { HousekeepingModule } from '../housekeeping/housekeeping.module';
import { ExecutorModule } from '../modules/executor/executor.module';
import { HooksModule } from '../modules/hooks/hooks.module';
import { PlansModule } from '../modules/plans/plans.module';
import { SchedulerModule } from '../modules/scheduler/scheduler.module';
import { UsersModule } from '../modules/users/users.module';
import { StatsModule } from '../stats/stats.module';
import { TaskStatsRecorderModule } from '../stats/task-stats-recorder.module';
import { Role } from './role';

/**
 * The one place that decides what a role runs (config.md "Roles"). A module absent from a process's
 * roles is never imported, so its controllers, consumers and loops do not exist there.
 */
export const ROLE_MODULES: Readonly<Record<Role, readonly Type[]>> = {
  [Role.Server]: [UsersModule, ApiKeysModule, PlansModule, DeadLettersModule, StatsModule, DashboardModule],
  [Role.Scheduler]: [SchedulerModule, HousekeepingModule],
  [Role.Executor]: [ExecutorModule, HooksModule, DeadLetterRecorderModule, TaskStatsRecorderModule],
};

export function modulesForRoles(roles: ReadonlySet<Role>): Type[] {
  const modules = new Set<Type>();
  for (const role of Object.values(Role)) {
    if (roles.has(role)) ROLE_MODULES[role].forEach((m) => modules.add(m));
  }
  return [...modules];
}
