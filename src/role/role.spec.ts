import { Type } from '@nestjs/common';
import { ExecutorModule } from '../modules/executor/executor.module';
import { HooksModule } from '../modules/hooks/hooks.module';
import { PlansModule } from '../modules/plans/plans.module';
import { SchedulerModule } from '../modules/scheduler/scheduler.module';
import { ApiKeysModule } from '../auth/api-keys.module';
import { UsersModule } from '../modules/users/users.module';
import { DeadLetterRecorderModule } from '../dead-letters/dead-letter-recorder.module';
import { DeadLettersModule } from '../dead-letters/dead-letters.module';
import { DashboardModule } from '../dashboard/dashboard.module';
import { HousekeepingModule } from '../housekeeping/housekeeping.module';
import { StatsModule } from '../stats/stats.module';
import { TaskStatsRecorderModule } from '../stats/task-stats-recorder.module';
import { parseRoles, Role, RoleError } from './role';
import { modulesForRoles } from './role-modules';

const names = (mods: Type[]) => mods.map((m) => m.name).sort();

describe('parseRoles', () => {
  it.each([
    [undefined, [Role.Executor, Role.Scheduler, Role.Server]],
    ['', [Role.Executor, Role.Scheduler, Role.Server]],
    ['all', [Role.Executor, Role.Scheduler, Role.Server]],
    ['server', [Role.Server]],
    [' Scheduler ', [Role.Scheduler]],
    ['scheduler,executor', [Role.Executor, Role.Scheduler]],
    ['server,all', [Role.Executor, Role.Scheduler, Role.Server]],
  ])('%p → %p', (raw, expected) => {
    expect([...parseRoles(raw)].sort()).toEqual(expected);
  });

  it.each(['worker', 'server,,executor', 'server;executor'])('rejects %p listing the valid roles', (raw) => {
    expect(() => parseRoles(raw)).toThrow(RoleError);
    expect(() => parseRoles(raw)).toThrow(/valid roles are server, scheduler, executor, all/);
  });
});

describe('role → modules table', () => {
  it('composes each role from its own modules only', () => {
    expect(names(modulesForRoles(new Set([Role.Server])))).toEqual(names([UsersModule, ApiKeysModule, PlansModule, DeadLettersModule, StatsModule, DashboardModule]));
    expect(names(modulesForRoles(new Set([Role.Scheduler])))).toEqual(names([SchedulerModule, HousekeepingModule]));
    expect(names(modulesForRoles(new Set([Role.Executor])))).toEqual(names([ExecutorModule, HooksModule, DeadLetterRecorderModule, TaskStatsRecorderModule]));
  });

  it('gives all roles the union, each module once', () => {
    const all = modulesForRoles(parseRoles('all'));
    expect(names(all)).toEqual(names([UsersModule, ApiKeysModule, PlansModule, DeadLettersModule, StatsModule, DashboardModule, HooksModule, SchedulerModule, ExecutorModule, HousekeepingModule, DeadLetterRecorderModule, TaskStatsRecorderModule]));
    expect(new Set(all).size).toBe(all.length);
  });
});
