import { ApiProperty, getSchemaPath } from '@nestjs/swagger';
import { ErrorLogEntity, ErrorLogKind } from '../../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanEntity, PlanStatus } from '../../../connectors/repo/entities/plan.entity';
import { TaskEntity, WIRE_TASK_STATUSES, WireTaskStatus, wireTaskStatus } from '../../../connectors/repo/entities/task.entity';
import { ERROR_LOG_TYPE, OVERLAP_POLICIES, OverlapPolicy, PLAN_TYPE } from './discriminators';
import type { PlanState } from '../plans.service';
import { actionSchema, HookDto, planTypeSchema } from './plan-request.dto';

/*
 * Response shapes of the wire contract. The top-level key sets are exact (the Python client builds its
 * classes with `Cls(**json)` and crashes on an extra key), nulls are written out, times are epoch ms.
 */

export class HookErrorLogTypeDto {
  @ApiProperty({ enum: [ERROR_LOG_TYPE.Hook] }) type!: typeof ERROR_LOG_TYPE.Hook;
}

export class ExecutorErrorLogTypeDto {
  @ApiProperty({ enum: [ERROR_LOG_TYPE.Executor] }) type!: typeof ERROR_LOG_TYPE.Executor;
  @ApiProperty({ format: 'uuid' }) task_id!: string;
}

export class PlanDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) user_id!: string;
  @ApiProperty() description!: string;
  @ApiProperty({ example: 'PT30S', description: 'ISO-8601 duration as submitted; for a Cron plan, its expression' }) period_time!: string;
  @ApiProperty(planTypeSchema())
  type!: JsonObject;
  @ApiProperty({ enum: PlanStatus, enumName: 'PlanStatus', description: 'A paused plan shows CREATED or RUNNING here; GET /v1/plan/{id}/state says PAUSED' })
  status!: PlanStatus;
  @ApiProperty({ type: 'integer' }) max_failure_retry!: number;
  @ApiProperty(actionSchema('The action, as submitted with defaults filled in')) action!: JsonObject;
  @ApiProperty({ type: () => [HookDto], description: 'The hooks (note: singular key, as in the original)' })
  hook!: JsonObject[];
  @ApiProperty({ format: 'uuid', nullable: true, type: 'string' }) parent_plan_id!: string | null;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms' }) created_at!: number;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms' }) updated_at!: number;
}

export class TaskDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) plan_id!: string;
  @ApiProperty({ type: 'integer' }) partition_key!: number;
  @ApiProperty({
    enum: WIRE_TASK_STATUSES,
    enumName: 'TaskStatus',
    description: "A paused plan's pending occurrence, and one waiting under overlap BUFFER_ONE, show as CREATED",
  })
  status!: WireTaskStatus;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms' }) created_at!: number;
  @ApiProperty({ description: 'epoch ms of the end of the last attempt', nullable: true, type: 'integer' })
  executed_at!: number | null;
  @ApiProperty({ description: 'epoch ms when the task is due', nullable: true, type: 'integer' })
  next_execution_at!: number | null;
}

export class ErrorLogDto {
  @ApiProperty({ format: 'uuid' }) plan_id!: string;
  @ApiProperty() error!: string;
  @ApiProperty({
    oneOf: [{ $ref: getSchemaPath(HookErrorLogTypeDto) }, { $ref: getSchemaPath(ExecutorErrorLogTypeDto) }],
    discriminator: { propertyName: 'type', mapping: { [ERROR_LOG_TYPE.Hook]: getSchemaPath(HookErrorLogTypeDto), [ERROR_LOG_TYPE.Executor]: getSchemaPath(ExecutorErrorLogTypeDto) } },
  })
  type!: HookErrorLogTypeDto | ExecutorErrorLogTypeDto;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms' }) timestamp!: number;
}

export class GetPlanResponseDto {
  @ApiProperty({ type: () => PlanDto }) plan!: PlanDto;
  @ApiProperty({ type: () => TaskDto, nullable: true, description: 'The most recently created task of the plan' }) latest_task!: TaskDto | null;
}

export class GetSummaryResponseDto {
  @ApiProperty({ type: () => PlanDto }) plan!: PlanDto;
  @ApiProperty({ type: () => [TaskDto], description: 'The newest summaryLimit (server.yml, default 1000) tasks, oldest first' })
  tasks!: TaskDto[];
  @ApiProperty({
    type: () => [ErrorLogDto],
    description: 'The newest summaryLimit (server.yml, default 1000) executor and hook error logs, oldest first',
  })
  error_logs!: ErrorLogDto[];
}

export class ListTasksResponseDto {
  @ApiProperty({ type: () => [TaskDto], description: 'At most 20, oldest first' }) tasks!: TaskDto[];
  @ApiProperty({ type: 'integer', description: "The plan's task count" }) total!: number;
  @ApiProperty({ type: 'integer', description: 'Echoes the page index asked for' }) offset!: number;
}

export class ListErrorLogsResponseDto {
  @ApiProperty({ type: () => [ErrorLogDto], description: 'At most 20 executor and hook error logs, oldest first' })
  error_logs!: ErrorLogDto[];
  @ApiProperty({ type: 'integer', description: "The plan's error log count" }) total!: number;
  @ApiProperty({ type: 'integer', description: 'Echoes the page index asked for' }) offset!: number;
}

export class ListPlansResponseDto {
  @ApiProperty({ type: () => [PlanDto], description: 'At most 20, newest first' }) plans!: PlanDto[];
  @ApiProperty({ type: 'integer', description: "The user's plan count" }) total!: number;
  @ApiProperty({ type: 'integer', description: 'Echoes the page index asked for' }) offset!: number;
}

/** GET /v1/plan/{id}/state, and the answer of pause and resume: what the v1 Plan's fixed enums cannot say. */
export class PlanStateDto {
  @ApiProperty({ format: 'uuid' }) plan_id!: string;
  @ApiProperty({
    enum: ['CREATED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED'],
    description: 'PAUSED while paused (the v1 Plan then still says CREATED or RUNNING)',
  })
  status!: PlanStatus | 'PAUSED';
  @ApiProperty({ type: 'integer', format: 'int64', nullable: true, description: 'epoch ms when it was paused; null unless paused' })
  paused_at!: number | null;
  @ApiProperty({ enum: OVERLAP_POLICIES, nullable: true, description: 'The overlap policy; null for a OneTime plan' })
  overlap!: OverlapPolicy | null;
  @ApiProperty({
    type: 'integer',
    format: 'int64',
    nullable: true,
    description: 'epoch ms when the next occurrence is due; null while paused or once the plan has ended',
  })
  next_execution_at!: number | null;
}

export function mapPlanState(s: PlanState): PlanStateDto {
  return {
    plan_id: s.planId,
    status: s.status,
    paused_at: s.pausedAt?.getTime() ?? null,
    overlap: s.overlap,
    next_execution_at: s.nextExecutionAt?.getTime() ?? null,
  };
}

export const RESPONSE_MODELS = [HookErrorLogTypeDto, ExecutorErrorLogTypeDto, ListTasksResponseDto, ListErrorLogsResponseDto];

export function mapPlan(p: PlanEntity): PlanDto {
  return {
    id: p.id,
    user_id: p.userId,
    description: p.description,
    period_time: p.periodTime,
    type: p.type,
    status: p.status,
    max_failure_retry: p.maxFailureRetry,
    action: p.action,
    hook: p.hook,
    parent_plan_id: p.parentPlanId,
    created_at: p.createdAt.getTime(),
    updated_at: p.updatedAt.getTime(),
  };
}

export function mapTask(t: TaskEntity): TaskDto {
  return {
    id: t.id,
    plan_id: t.planId,
    partition_key: t.partitionKey,
    status: wireTaskStatus(t.status),
    created_at: t.createdAt.getTime(),
    executed_at: t.executedAt?.getTime() ?? null,
    next_execution_at: t.nextExecutionAt?.getTime() ?? null,
  };
}

export function mapErrorLog(e: ErrorLogEntity): ErrorLogDto {
  return {
    plan_id: e.planId,
    error: e.error,
    type:
      e.type === ErrorLogKind.Executor && e.taskId
        ? { type: ERROR_LOG_TYPE.Executor, task_id: e.taskId }
        : { type: ERROR_LOG_TYPE.Hook },
    timestamp: e.timestamp.getTime(),
  };
}

export function isRecurring(type: JsonObject): boolean {
  return type.type === PLAN_TYPE.Recurring;
}

export function isCron(type: JsonObject): boolean {
  return type.type === PLAN_TYPE.Cron;
}
