import { ApiProperty } from '@nestjs/swagger';
import { DeadLetterEntity, DeadLetterKind } from '../connectors/repo/entities/dead-letter.entity';

/** One dead letter as the API shows it (never the message itself: it holds the action, secrets included). */
export class DeadLetterDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid', nullable: true, type: 'string', description: "The plan's owner; null for a message that named no known plan" })
  user_id!: string | null;
  @ApiProperty({ enum: DeadLetterKind, enumName: 'DeadLetterKind', description: 'TASK: a task dispatch; HOOK: a hook try' })
  kind!: DeadLetterKind;
  @ApiProperty({ format: 'uuid', nullable: true, type: 'string' }) plan_id!: string | null;
  @ApiProperty({ format: 'uuid', nullable: true, type: 'string' }) task_id!: string | null;
  @ApiProperty({ description: 'Why it was dead-lettered' }) reason!: string;
  @ApiProperty({ type: 'integer', description: "The task's attempts (dispatches made), or the hook's tries" }) attempts!: number;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms it was recorded' }) created_at!: number;
}

export class ListDeadLettersResponseDto {
  @ApiProperty({ type: () => [DeadLetterDto] }) dead_letters!: DeadLetterDto[];
  @ApiProperty({ type: 'integer', description: 'How many dead letters the caller may see in all' }) total!: number;
  @ApiProperty({ type: 'integer', description: 'The page index asked for' }) offset!: number;
}

export function mapDeadLetter(d: DeadLetterEntity): DeadLetterDto {
  return {
    id: d.id,
    user_id: d.userId,
    kind: d.kind,
    plan_id: d.planId,
    task_id: d.taskId,
    reason: d.reason,
    attempts: d.attempts,
    created_at: d.createdAt.getTime(),
  };
}
