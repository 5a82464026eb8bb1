import { Column, Entity, PrimaryColumn } from 'typeorm';
import { JsonObject } from './plan.entity';

export enum DeadLetterKind {
  Task = 'TASK',
  Hook = 'HOOK',
}

/** One dead-lettered task dispatch or hook try (DeadLetters migration). */
@Entity({ name: 'dead_letters' })
export class DeadLetterEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column({ name: 'user_id', type: 'uuid', nullable: true })
  userId!: string | null;

  @Column({ type: 'varchar', length: 8 })
  kind!: DeadLetterKind;

  /** The queue the message was dead-lettered from (QueueName). */
  @Column({ type: 'varchar', length: 32 })
  queue!: string;

  @Column({ name: 'plan_id', type: 'uuid', nullable: true })
  planId!: string | null;

  @Column({ name: 'task_id', type: 'uuid', nullable: true })
  taskId!: string | null;

  @Column({ type: 'text' })
  reason!: string;

  /** The task's attempt (dispatches made) or the hook's tries, as the dead-lettered message said. */
  @Column({ type: 'int' })
  attempts!: number;

  @Column({ type: 'jsonb', nullable: true })
  message!: JsonObject | null;

  @Column({ name: 'created_at', type: 'timestamptz', precision: 3 })
  createdAt!: Date;
}
