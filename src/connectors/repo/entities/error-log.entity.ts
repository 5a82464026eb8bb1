import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

export enum ErrorLogKind {
  Hook = 'HOOK',
  Executor = 'EXECUTOR',
}

@Entity({ name: 'error_logs' })
export class ErrorLogEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'plan_id', type: 'uuid' })
  planId!: string;

  @Column({ name: 'task_id', type: 'uuid', nullable: true })
  taskId!: string | null;

  @Column({ type: 'varchar', length: 16 })
  type!: ErrorLogKind;

  /** Full text: the original's VARCHAR(255) made long REST failure bodies fail the insert. */
  @Column({ type: 'text' })
  error!: string;

  @Column({ type: 'timestamptz', precision: 3 })
  timestamp!: Date;
}
