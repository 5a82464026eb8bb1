import { randomInt, randomUUID } from 'node:crypto';
import {
  BadRequestException,
  ConflictException,
  ForbiddenException,
  HttpException,
  HttpStatus,
  Injectable,
  NotFoundException,
  ServiceUnavailableException,
} from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RepoConfig, ServerConfig } from '../../config/karya-config';
import { ErrorLogEntity } from '../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanEntity, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../../connectors/repo/entities/task.entity';
import { DistributedLock } from '../../connectors/lock/lock.port';
import { EgressPolicy } from '../../egress/egress-policy';
import { cronSchedule } from './cron-schedule';
import { firstSlotAtOrAfter, isLastRun } from './occurrences';
import { OverlapPolicy, PLAN_TYPE } from './dto/discriminators';
import { CronDto, SubmitPlanRequestDto, UpdatePlanRequestDto } from './dto/plan-request.dto';
import { isCron, isRecurring } from './dto/plan-response.dto';
import { checkChainOwners, checkHookChainOwners, checkHooks, checkPlanRequest, checkRecurringPeriod, PlanRules } from './plan-request.rules';
import { parsePeriod } from './period';
import { PlanChanges, PlanFilter, PlansRepository } from './plans.repository';
import { activeTraceparent } from '../../tracing/tracing';

/** A plan's schedule state (GET /v1/plan/{id}/state, pause, resume): what the v1 Plan cannot show. */
export interface PlanState {
  planId: string;
  status: PlanStatus | 'PAUSED';
  pausedAt: Date | null;
  /** null for a OneTime plan, which has no overlap. */
  overlap: OverlapPolicy | null;
  /** When the next occurrence is due; null while paused, once the plan has ended, or while it runs its last. */
  nextExecutionAt: Date | null;
}

/** The DTO instances as plain JSON (defaults filled in), which is what we store and echo back. */
function toJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

const FINAL: readonly PlanStatus[] = [PlanStatus.Completed, PlanStatus.Cancelled];

export function planNotFound(id: string): NotFoundException {
  return new NotFoundException(`Plan not found --- ${id}`);
}

@Injectable()
export class PlansService {
  private readonly rules: PlanRules;

  constructor(
    private readonly plans: PlansRepository,
    private readonly lock: DistributedLock,
    private readonly repoConfig: RepoConfig,
    private readonly server: ServerConfig,
  ) {
    this.rules = {
      strictMode: server.strictMode,
      maxChainedDepth: server.maxChainedDepth,
      minRecurringPeriod: server.minRecurringPeriod,
      egress: new EgressPolicy(server.egress),
    };
  }

  /** Plan and first task in one transaction (the original could leave a plan without a task). */
  async submit(req: SubmitPlanRequestDto, parentPlanId: string | null = null): Promise<PlanEntity> {
    checkPlanRequest(req, this.rules);
    checkChainOwners(req);
    if (parentPlanId !== null) await this.checkParentOwner(req.user_id, parentPlanId);
    // Not for chained children (executors submit them): their root was admitted under the cap, and refusing
    // one would fail a running task. A soft cap: concurrent submissions may all pass the count before any is
    // stored. No Retry-After: a slot frees when a plan completes or is cancelled, which no server can foresee.
    const cap = this.server.maxLivePlansPerUser;
    const live = cap > 0 && parentPlanId === null ? await this.plans.countLivePlans(req.user_id.toLowerCase()) : 0;
    if (cap > 0 && live >= cap) {
      throw new HttpException(`Live plan limit reached --- user ${req.user_id.toLowerCase()} has ${live} live plans (limit ${cap})`, HttpStatus.TOO_MANY_REQUESTS);
    }
    const now = new Date();
    const cron = req.plan_type.type === PLAN_TYPE.Cron ? (req.plan_type as CronDto) : null;
    const plan: PlanEntity = {
      id: randomUUID(),
      // Canonical lower-case, as the database returns UUIDs: the echo must equal what GET returns.
      userId: req.user_id.toLowerCase(),
      description: req.description,
      // A Cron plan's period_time is its expression (the v1 Plan has no other place for it).
      periodTime: cron ? cron.expression : req.period_time,
      type: toJson(req.plan_type) as unknown as JsonObject,
      status: PlanStatus.Created,
      maxFailureRetry: req.max_failure_retry ?? 3,
      action: toJson(req.action) as unknown as JsonObject,
      hook: toJson(req.hooks ?? []) as unknown as JsonObject[],
      parentPlanId,
      createdAt: now,
      updatedAt: now,
      pausedAt: null,
      // The submit span's (the controller's traceSubmit; a chained child's: its parent's execution), null
      // while tracing is off: the claims of its tasks join this trace.
      traceContext: activeTraceparent(),
    };
    const task: TaskEntity = {
      id: randomUUID(),
      partitionKey: randomInt(1, this.repoConfig.partitions + 1),
      planId: plan.id,
      status: TaskStatus.Created,
      attempt: 0,
      dispatchSeq: 0,
      retryAt: null,
      nextCreated: false,
      createdAt: now,
      executedAt: null,
      // A OneTime plan is a delayed job: both plan types first run one period after submission; a Cron plan at
      // its first fire (plan-request.rules checked that there is one).
      nextExecutionAt: new Date(cron ? (cronSchedule(cron.expression, cron.time_zone).next(now.getTime()) ?? now.getTime()) : now.getTime() + parsePeriod(req.period_time)),
      leaseUntil: null,
      retryLimit: null,
    };
    if (!(await this.plans.insertPlanWithTask(plan, task))) throw new NotFoundException(`User (${req.user_id}) not found`);
    return plan;
  }

  /**
   * `owner`, when given, confines every plan lookup to that user's plans: another user's plan is answered
   * exactly as one that does not exist (404), so ids of other users' plans cannot even be confirmed.
   */
  async get(id: string, owner?: string): Promise<{ plan: PlanEntity; latestTask: TaskEntity | null }> {
    const plan = await this.findVisible(id, owner);
    return { plan, latestTask: await this.plans.latestTask(id) };
  }

  /**
   * The plan with its newest server.yml `summaryLimit` tasks and error logs, each oldest first: a 1 Hz plan
   * makes 86,400 tasks a day, which no single answer should carry. tasksPage and errorLogsPage reach the rest.
   */
  async summary(id: string, owner?: string): Promise<{ plan: PlanEntity; tasks: TaskEntity[]; errorLogs: ErrorLogEntity[] }> {
    const plan = await this.findVisible(id, owner);
    const limit = this.server.summaryLimit;
    const [tasks, errorLogs] = await Promise.all([this.plans.newestTasks(id, limit), this.plans.newestErrorLogs(id, limit)]);
    return { plan, tasks, errorLogs };
  }

  /** Page `page` of all the plan's tasks, oldest first, and their count. */
  async tasksPage(id: string, page: number, owner?: string): Promise<{ tasks: TaskEntity[]; total: number }> {
    await this.findVisible(id, owner);
    return this.plans.pageOfTasks(id, page);
  }

  /** Page `page` of all the plan's error logs, oldest first, and their count. */
  async errorLogsPage(id: string, page: number, owner?: string): Promise<{ errorLogs: ErrorLogEntity[]; total: number }> {
    await this.findVisible(id, owner);
    return this.plans.pageOfErrorLogs(id, page);
  }

  list(userId: string, page: number, status?: PlanFilter): Promise<{ plans: PlanEntity[]; total: number }> {
    return this.plans.pageOfUser(userId, page, status);
  }

  /** Non-null fields replace stored values; a new period applies from the next task created. */
  async update(req: UpdatePlanRequestDto, owner?: string): Promise<PlanEntity> {
    // Checked before the lock too, so nobody can hold up (or time) another user's plan through its lock.
    // An unscoped caller needs no such read: the locked read below answers a missing plan.
    if (owner !== undefined) await this.findVisible(req.plan_id, owner);
    return this.withPlanLock(req.plan_id, () =>
      this.plans.transaction(async (m) => {
        const plan = await this.plans.findPlanForUpdate(m, req.plan_id);
        if (!plan || (owner !== undefined && plan.userId !== owner)) throw planNotFound(req.plan_id);
        const changes: PlanChanges = { updatedAt: new Date() };
        if (req.period_time != null) {
          if (isCron(plan.type)) {
            throw new BadRequestException(
              `period_time: plan ${plan.id} is a Cron plan, scheduled by its plan_type.expression, which PATCH does not change; got ${JSON.stringify(req.period_time)}`,
            );
          }
          if (isRecurring(plan.type)) checkRecurringPeriod(req.period_time, this.rules);
          changes.periodTime = req.period_time;
        }
        if (req.max_failure_retry != null) changes.maxFailureRetry = req.max_failure_retry;
        if (req.hooks != null) {
          checkHooks(req.hooks, this.rules);
          checkHookChainOwners(req.hooks, plan.userId);
          changes.hook = toJson(req.hooks) as unknown as JsonObject[];
        }
        // Only the changed columns are written, so a concurrent cancel's status is never overwritten.
        await this.plans.updatePlanFields(m, plan.id, changes);
        return { ...plan, ...changes };
      }),
    );
  }

  /**
   * Cancels the plan (unless already final, when it is returned unchanged) and, always, every live
   * descendant: a completed OneTime parent whose chained child still runs is exactly what users cancel.
   */
  async cancel(id: string, owner?: string): Promise<PlanEntity> {
    if (owner !== undefined) await this.findVisible(id, owner);
    return this.withPlanLock(id, () =>
      this.plans.transaction(async (m) => {
        const plan = await this.plans.findPlanForUpdate(m, id);
        if (!plan || (owner !== undefined && plan.userId !== owner)) throw planNotFound(id);
        const now = new Date();
        let result = plan;
        if (!FINAL.includes(plan.status)) {
          await this.plans.updatePlanFields(m, id, { status: PlanStatus.Cancelled, updatedAt: now });
          result = { ...plan, status: PlanStatus.Cancelled, updatedAt: now };
        }
        await this.plans.cancelDescendantsAndPendingTasks(m, id, now);
        return result;
      }),
    );
  }

  /** The plan's schedule state. */
  async state(id: string, owner?: string): Promise<PlanState> {
    const plan = await this.findVisible(id, owner);
    return this.stateOf(plan, await this.plans.nextDue(id));
  }

  /**
   * Pauses a live plan: it starts no new occurrence until resumed. An occurrence already started (running,
   * or waiting for a retry) finishes its attempts, as a paused Temporal schedule lets its running workflows
   * finish. Pausing a paused plan changes nothing; a COMPLETED or CANCELLED plan is a 409.
   */
  async pause(id: string, owner?: string): Promise<PlanState> {
    return this.lockedLive(id, owner, 'paused', async (m, plan) => {
      if (plan.pausedAt !== null) return plan;
      const now = new Date();
      await this.plans.updatePlanFields(m, id, { pausedAt: now, updatedAt: now });
      await this.plans.pausePendingTasks(m, id);
      return { ...plan, pausedAt: now, updatedAt: now };
    });
  }

  /**
   * Resumes a paused plan from now: its next occurrence is the first one due at or after now (a OneTime plan
   * whose time passed runs at once). Occurrences missed while paused are skipped, not caught up. Resuming a
   * plan that is not paused changes nothing; a COMPLETED or CANCELLED plan is a 409.
   */
  async resume(id: string, owner?: string): Promise<PlanState> {
    return this.lockedLive(id, owner, 'resumed', async (m, plan) => {
      if (plan.pausedAt === null) return plan;
      const now = new Date();
      await this.plans.updatePlanFields(m, id, { pausedAt: null, updatedAt: now });
      const paused = await this.plans.pausedTasks(m, id);
      // A task whose successor exists already (a dispatch handed back, a run-now task, a buffered occurrence)
      // is an occurrence missed while paused: dropped. The one that carries the schedule on resumes: the
      // head of the schedule, or a bounded plan's final occurrence (marked next_created too, having none).
      const carries = (t: (typeof paused)[number]) => !t.next_created || isFinal(plan, t.next_execution_at?.getTime() ?? null);
      await this.plans.dropPausedTasks(m, paused.filter((t) => !carries(t)).map((t) => t.id));
      let ended = false;
      for (const t of paused.filter(carries)) {
        const slot = t.next_execution_at?.getTime() ?? now.getTime();
        // A bounded plan whose final occurrence fell in the pause has nothing left to run: that occurrence is
        // skipped like the others, and the plan completes now (no run, so no ON_COMPLETION).
        const last = finalSlot(plan, slot);
        if (last !== null && last < now.getTime()) {
          await this.plans.dropPausedTasks(m, [t.id]);
          ended = true;
        } else {
          await this.plans.resumeTask(m, t.id, t.partition_key, new Date(resumeDue(plan, slot, now.getTime())));
        }
      }
      if (ended) {
        await this.plans.updatePlanFields(m, id, { status: PlanStatus.Completed });
        return { ...plan, status: PlanStatus.Completed, pausedAt: null, updatedAt: now };
      }
      return { ...plan, pausedAt: null, updatedAt: now };
    });
  }

  /**
   * Run now: one extra task due now, under the plan's overlap policy; the regular schedule does not move.
   * A OneTime plan that has not run yet has its one task brought forward instead (a second task would run it
   * twice). A paused plan is a 409: it starts nothing until resumed.
   */
  async runNow(id: string, owner?: string): Promise<TaskEntity> {
    if (owner !== undefined) await this.findVisible(id, owner);
    return this.withPlanLock(id, () =>
      this.plans.transaction(async (m) => {
        const plan = await this.plans.findPlanForUpdate(m, id);
        if (!plan || (owner !== undefined && plan.userId !== owner)) throw planNotFound(id);
        if (FINAL.includes(plan.status)) throw new ConflictException(`Plan ${id} is ${plan.status} --- it cannot be run`);
        if (plan.pausedAt !== null) throw new ConflictException(`Plan ${id} is paused --- resume it before running it now`);
        const now = new Date();
        if (plan.type.type === PLAN_TYPE.OneTime) {
          const pending = await this.plans.pendingTask(m, id);
          if (!pending) throw new ConflictException(`Plan ${id} has already run --- a OneTime plan runs once`);
          return this.plans.rescheduleTask(m, pending, now);
        }
        const task: TaskEntity = {
          id: randomUUID(), partitionKey: randomInt(1, this.repoConfig.partitions + 1), planId: id, status: TaskStatus.Created,
          attempt: 0, dispatchSeq: 0, retryAt: null, nextCreated: true, createdAt: now, executedAt: null, nextExecutionAt: now,
          leaseUntil: null, retryLimit: null,
        };
        await this.plans.insertExtraTask(m, task);
        return task;
      }),
    );
  }

  /** Pause and resume: the plan locked (as cancel locks it), live, changed by `fn`; its state after. */
  private async lockedLive(
    id: string,
    owner: string | undefined,
    verb: string,
    fn: (m: EntityManager, plan: PlanEntity) => Promise<PlanEntity>,
  ): Promise<PlanState> {
    if (owner !== undefined) await this.findVisible(id, owner);
    const plan = await this.withPlanLock(id, () =>
      this.plans.transaction(async (m) => {
        const found = await this.plans.findPlanForUpdate(m, id);
        if (!found || (owner !== undefined && found.userId !== owner)) throw planNotFound(id);
        if (FINAL.includes(found.status)) throw new ConflictException(`Plan ${id} is ${found.status} --- it cannot be ${verb}`);
        return fn(m, found);
      }),
    );
    return this.stateOf(plan, await this.plans.nextDue(id));
  }

  private stateOf(plan: PlanEntity, pending: Date | null): PlanState {
    const live = !FINAL.includes(plan.status);
    const paused = live && plan.pausedAt !== null;
    const overlap = plan.type.type === PLAN_TYPE.OneTime ? null : ((plan.type.overlap as OverlapPolicy | undefined) ?? 'ALLOW');
    return {
      planId: plan.id,
      status: paused ? 'PAUSED' : plan.status,
      pausedAt: live ? plan.pausedAt : null,
      overlap,
      nextExecutionAt: live && !paused ? pending : null,
    };
  }

  private async findVisible(id: string, owner: string | undefined): Promise<PlanEntity> {
    const plan = await this.plans.findPlan(id);
    if (!plan || (owner !== undefined && plan.userId !== owner)) throw planNotFound(id);
    return plan;
  }

  /**
   * A chained child is created for the owner of the plan that runs it, and nobody else. Checked at submit
   * (checkChainOwners) and here again when the executor creates the child, in case the stored request was
   * written before that check existed.
   */
  private async checkParentOwner(userId: string, parentPlanId: string): Promise<void> {
    const parent = await this.plans.findPlan(parentPlanId);
    if (parent && parent.userId !== userId.toLowerCase()) {
      throw new ForbiddenException(`user_id: a chained request creates plans only for its parent plan's owner (${parent.userId}), got ${JSON.stringify(userId)}`);
    }
  }

  /** The per-plan lock of update and cancel; not getting it in the configured wait is a 503, as in the original. */
  private async withPlanLock<T>(planId: string, fn: () => Promise<T>): Promise<T> {
    const unavailable = () => new ServiceUnavailableException(`Unable to acquire lock on --- ${planId} | Try again later`);
    const lease = await this.lock.acquire(planId).catch(() => {
      throw unavailable();
    });
    if (!lease) throw unavailable();
    try {
      return await fn();
    } finally {
      // A failed release is harmless: the lease lapses by itself after leaseTime.
      await this.lock.release(lease).catch(() => undefined);
    }
  }
}

/**
 * When a paused occurrence due at `slot` runs after a resume at `now`: at its slot if that is still ahead;
 * otherwise a OneTime plan runs at once, and a recurring plan at its first slot at or after now (periodic on
 * its grid, cron at its next fire), skipping what was missed.
 */
export function resumeDue(plan: Pick<PlanEntity, 'type' | 'periodTime'>, slot: number, now: number): number {
  if (slot >= now) return slot;
  return firstSlotAtOrAfter(plan, slot, now) ?? now;
}

/**
 * A bounded recurring or cron plan's final occurrence counted from the one due at `slot`: the first on its
 * schedule at or after end_at. Null for a plan that never ends (or a OneTime plan, whose one task is final).
 */
export function finalSlot(plan: Pick<PlanEntity, 'type' | 'periodTime'>, slot: number): number | null {
  const endAt = plan.type.end_at;
  if (typeof endAt !== 'number' || plan.type.type === PLAN_TYPE.OneTime) return null;
  return slot >= endAt ? slot : firstSlotAtOrAfter(plan, slot, endAt);
}

/** Whether an occurrence due at `slot` is a bounded recurring or cron plan's final one (at or after end_at). */
function isFinal(plan: Pick<PlanEntity, 'type'>, slot: number | null): boolean {
  return plan.type.type !== PLAN_TYPE.OneTime && slot !== null && isLastRun(plan.type, slot);
}
