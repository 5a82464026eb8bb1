import { randomInt, randomUUID } from 'node:crypto';
import { ForbiddenException, HttpException, HttpStatus, Injectable, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { RepoConfig, ServerConfig } from '../../config/karya-config';
import { ErrorLogEntity } from '../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanEntity, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../../connectors/repo/entities/task.entity';
import { DistributedLock } from '../../connectors/lock/lock.port';
import { EgressPolicy } from '../../egress/egress-policy';
import { SubmitPlanRequestDto, UpdatePlanRequestDto } from './dto/plan-request.dto';
import { isRecurring } from './dto/plan-response.dto';
import { checkChainOwners, checkHookChainOwners, checkHooks, checkPlanRequest, checkRecurringPeriod, PlanRules } from './plan-request.rules';
import { parsePeriod } from './period';
import { PlanChanges, PlansRepository } from './plans.repository';

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
    const plan: PlanEntity = {
      id: randomUUID(),
      // Canonical lower-case, as the database returns UUIDs: the echo must equal what GET returns.
      userId: req.user_id.toLowerCase(),
      description: req.description,
      periodTime: req.period_time,
      type: toJson(req.plan_type) as unknown as JsonObject,
      status: PlanStatus.Created,
      maxFailureRetry: req.max_failure_retry ?? 3,
      action: toJson(req.action) as unknown as JsonObject,
      hook: toJson(req.hooks ?? []) as unknown as JsonObject[],
      parentPlanId,
      createdAt: now,
      updatedAt: now,
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
      // A OneTime plan is a delayed job: both plan types first run one period after submission.
      nextExecutionAt: new Date(now.getTime() + parsePeriod(req.period_time)),
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

  list(userId: string, page: number): Promise<{ plans: PlanEntity[]; total: number }> {
    return this.plans.pageOfUser(userId, page);
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
