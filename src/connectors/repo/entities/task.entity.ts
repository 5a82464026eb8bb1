import { Column, Entity, PrimaryColumn } from 'typeorm';

export enum TaskStatus {
  Created = 'CREATED',
  Processing = 'PROCESSING',
  Success = 'SUCCESS',
  Failure = 'FAILURE',
  Cancelled = 'CANCELLED',
  /**
   * Karya's own states, stored but never shown as such: the v1 TaskStatus enum of the published clients is
   * fixed, so the API shows both as CREATED (mapTask). PAUSED: a pending occurrence of a paused plan.
   * BUFFERED: an occurrence of an overlap BUFFER_ONE plan that came due while the previous task still ran; it
   * is made due at once when that one ends (TaskClaimsRepository.releaseBuffered). Neither is in
   * tasks_due_idx (status = 'CREATED'), so no claim ever scans them.
   */
  Paused = 'PAUSED',
  Buffered = 'BUFFERED',
}

/** The statuses of the v1 wire contract (api-v1.md), which the published clients' enums hold. */
export const WIRE_TASK_STATUSES = [
  TaskStatus.Created, TaskStatus.Processing, TaskStatus.Success, TaskStatus.Failure, TaskStatus.Cancelled,
] as const;
export type WireTaskStatus = (typeof WIRE_TASK_STATUSES)[number];

/** A task's status as the v1 API shows it: a PAUSED or BUFFERED occurrence has not run yet, so CREATED. */
export function wireTaskStatus(status: TaskStatus): WireTaskStatus {
  return status === TaskStatus.Paused || status === TaskStatus.Buffered ? TaskStatus.Created : status;
}

/**
 * One scheduled occurrence of a plan. The table is hash-partitioned on partition_key, so the primary
 * key must include it (a Postgres rule for partitioned tables).
 */
@Entity({ name: 'tasks' })
export class TaskEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @PrimaryColumn({ name: 'partition_key', type: 'int' })
  partitionKey!: number;

  @Column({ name: 'plan_id', type: 'uuid' })
  planId!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: TaskStatus;

  /** Attempts started so far (0 until the first dispatch); drives retries and X-Karya-Attempt. */
  @Column({ type: 'int', default: 0 })
  attempt!: number;

  /** Fencing token: bumped by every dispatch; only a message carrying the current value may run the task. */
  @Column({ name: 'dispatch_seq', type: 'int', default: 0 })
  dispatchSeq!: number;

  /**
   * While a failed task waits for another attempt: when it is due. On a PROCESSING task: its executor could
   * not record the outcome of this dispatch, which the scheduler then counts (TaskClaimsRepository SPENT).
   */
  @Column({ name: 'retry_at', type: 'timestamptz', precision: 3, nullable: true })
  retryAt!: Date | null;

  /** A recurring plan's next task has been created from this one (never twice). */
  @Column({ name: 'next_created', type: 'boolean', default: false })
  nextCreated!: boolean;

  @Column({ name: 'created_at', type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'executed_at', type: 'timestamptz', precision: 3, nullable: true })
  executedAt!: Date | null;

  /** When the task is due (or, for a retry, when the next attempt is due). */
  @Column({ name: 'next_execution_at', type: 'timestamptz', precision: 3, nullable: true })
  nextExecutionAt!: Date | null;

  /** While PROCESSING: when the claim lapses and the task may be dispatched again. */
  @Column({ name: 'lease_until', type: 'timestamptz', precision: 3, nullable: true })
  leaseUntil!: Date | null;

  /**
   * Set by a dead-letter replay (the DeadLetters migration): the retries this task may still use are
   * counted against it instead of the plan's max_failure_retry, so a replay runs one attempt, not a new
   * round of retries. Null: the plan's value.
   */
  @Column({ name: 'retry_limit', type: 'int', nullable: true })
  retryLimit!: number | null;
}
