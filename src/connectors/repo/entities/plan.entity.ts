import { Column, Entity, PrimaryColumn } from 'typeorm';

/** What a jsonb column holds. */
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export enum PlanStatus {
  Created = 'CREATED',
  Running = 'RUNNING',
  Completed = 'COMPLETED',
  Cancelled = 'CANCELLED',
}

/**
 * `type`, `action` and `hook` hold the API's polymorphic JSON (with the Kotlin `type` discriminators)
 * as jsonb, so plugins added later need no schema change.
 */
@Entity({ name: 'plans' })
export class PlanEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column({ name: 'user_id', type: 'uuid' })
  userId!: string;

  @Column({ type: 'varchar', length: 255 })
  description!: string;

  /** The ISO-8601 duration exactly as submitted (echoed back by the API); a Cron plan's expression. */
  @Column({ name: 'period_time', type: 'varchar', length: 255 })
  periodTime!: string;

  @Column({ type: 'jsonb' })
  type!: JsonObject;

  @Column({ type: 'varchar', length: 16 })
  status!: PlanStatus;

  @Column({ name: 'max_failure_retry', type: 'int' })
  maxFailureRetry!: number;

  @Column({ type: 'jsonb' })
  action!: JsonObject;

  @Column({ type: 'jsonb' })
  hook!: JsonObject[];

  @Column({ name: 'parent_plan_id', type: 'uuid', nullable: true })
  parentPlanId!: string | null;

  @Column({ name: 'created_at', type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz', precision: 3 })
  updatedAt!: Date;

  /**
   * Set while the plan is paused (POST /v1/plan/{id}/pause): it starts no new occurrence. Its v1 `status`
   * stays CREATED or RUNNING (the published clients' enums are fixed); GET /v1/plan/{id}/state says PAUSED.
   */
  @Column({ name: 'paused_at', type: 'timestamptz', precision: 3, nullable: true })
  pausedAt!: Date | null;

  /**
   * The W3C traceparent of the submit's span (README "Traces"), which the claims of every task of the plan
   * continue. Set only while tracing is on; never part of a v1 response. Optional so that code building a
   * plan without tracing in mind need not name it.
   */
  @Column({ name: 'trace_context', type: 'varchar', length: 55, nullable: true })
  traceContext?: string | null;
}
