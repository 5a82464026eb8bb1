import { Column, Entity, PrimaryColumn } from 'typeorm';

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

  /** The ISO-8601 duration exactly as submitted (echoed back by the API). */
  @Column({ name: 'period_time', type: 'varchar', length: 64 })
  periodTime!: string;

  @Column({ type: 'jsonb' })
  type!: Record<string, unknown>;

  @Column({ type: 'varchar', length: 16 })
  status!: PlanStatus;

  @Column({ name: 'max_failure_retry', type: 'int' })
  maxFailureRetry!: number;

  @Column({ type: 'jsonb' })
  action!: Record<string, unknown>;

  @Column({ type: 'jsonb' })
  hook!: Record<string, unknown>[];

  @Column({ name: 'parent_plan_id', type: 'uuid', nullable: true })
  parentPlanId!: string | null;

  @Column({ name: 'created_at', type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'timestamptz', precision: 3 })
  updatedAt!: Date;
}
