import { randomInt, randomUUID } from 'node:crypto';
import { Injectable, NotFoundException, ServiceUnavailableException } from '@nestjs/common';
import { RepoConfig, ServerConfig } from '../../config/karya-config';
import { ErrorLogEntity } from '../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanEntity, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../../connectors/repo/entities/task.entity';
import { DistributedLock } from '../../connectors/lock/lock.port';
import { SubmitPlanRequestDto, UpdatePlanRequestDto } from './dto/plan-request.dto';
import { isRecurring } from './dto/plan-response.dto';
import { checkHooks, checkPlanRequest, checkRecurringPeriod, PlanRules } from './plan-request.rules';
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
    server: ServerConfig,
  ) {
    this.rules = {
      strictMode: server.strictMode,
      maxChainedDepth: server.maxChainedDepth,
      minRecurringPeriod: server.minRecurringPeriod,
    };
  }

  /** Plan and first task in one transaction (the original could leave a plan without a task). */
  async submit(req: SubmitPlanRequestDto, parentPlanId: string | null = null): Promise<PlanEntity> {
    checkPlanRequest(req, this.rules);
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
    };
    if (!(await this.plans.insertPlanWithTask(plan, task))) throw new NotFoundException(`User (${req.user_id}) not found`);
    return plan;
  }

  async get(id: string): Promise<{ plan: PlanEntity; latestTask: TaskEntity | null }> {
    const plan = await this.plans.findPlan(id);
    if (!plan) throw planNotFound(id);
    return { plan, latestTask: await this.plans.latestTask(id) };
  }

  async summary(id: string): Promise<{ plan: PlanEntity; tasks: TaskEntity[]; errorLogs: ErrorLogEntity[] }> {
    const plan = await this.plans.findPlan(id);
    if (!plan) throw planNotFound(id);
    const [tasks, errorLogs] = await Promise.all([this.plans.tasksOf(id), this.plans.errorLogsOf(id)]);
    return { plan, tasks, errorLogs };
  }

  list(userId: string, page: number): Promise<{ plans: PlanEntity[]; total: number }> {
    return this.plans.pageOfUser(userId, page);
  }

  /** Non-null fields replace stored values; a new period applies from the next task created. */
  update(req: UpdatePlanRequestDto): Promise<PlanEntity> {
    return this.withPlanLock(req.plan_id, () =>
      this.plans.transaction(async (m) => {
        const plan = await this.plans.findPlanForUpdate(m, req.plan_id);
        if (!plan) throw planNotFound(req.plan_id);
        const changes: PlanChanges = { updatedAt: new Date() };
        if (req.period_time != null) {
          if (isRecurring(plan.type)) checkRecurringPeriod(req.period_time, this.rules);
          changes.periodTime = req.period_time;
        }
        if (req.max_failure_retry != null) changes.maxFailureRetry = req.max_failure_retry;
        if (req.hooks != null) {
          checkHooks(req.hooks, this.rules);
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
  cancel(id: string): Promise<PlanEntity> {
    return this.withPlanLock(id, () =>
      this.plans.transaction(async (m) => {
        const plan = await this.plans.findPlanForUpdate(m, id);
        if (!plan) throw planNotFound(id);
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
