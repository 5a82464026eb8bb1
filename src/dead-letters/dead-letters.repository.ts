import { createHash, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { Batcher } from '../common/batcher';
import { DeadLetterEntity, DeadLetterKind } from '../connectors/repo/entities/dead-letter.entity';
import { JsonObject, PlanStatus } from '../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../connectors/repo/entities/task.entity';
import { sqlRows } from '../connectors/repo/sql';
import { withTransientRetry } from '../connectors/repo/transient';

export const DEAD_LETTER_PAGE_SIZE = 20;

/** What the recorder knows of one dead letter as it leaves the broker. */
export interface DeadLetterRecord {
  id: string;
  kind: DeadLetterKind;
  queue: string;
  planId: string | null;
  taskId: string | null;
  reason: string;
  attempts: number;
  /** The body as JSON text, or null when it cannot be stored (see storableMessage). */
  message: string | null;
}

/** Why a replay cannot run, for the API's 409. */
export class ReplayConflict extends Error {}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A body larger than this is recorded without it: a dead letter is a diagnostic, not an archive. */
const MAX_STORED_MESSAGE_CHARS = 64 * 1024;

/**
 * The dead_letters table (DeadLetters migration): written by the executors' recorder, read and acted on by
 * the API. Replays go through the repository, not the broker, so the server role needs no queue: a task is
 * made due as a retry (the scheduler's retry claim dispatches it, fenced by a new dispatch_seq like every
 * dispatch), a hook try is parked in hook_retries (the executors' relay publishes it).
 */
@Injectable()
export class DeadLettersRepository {
  /** Dead letters arriving together are stored by one statement. */
  private readonly inserts = new Batcher<DeadLetterRecord, void>((items) => this.insertBatch(items), {
    maxBatch: 500,
    maxInFlight: 2,
    retry: withTransientRetry,
  });

  constructor(private readonly ds: DataSource) {}

  record(r: DeadLetterRecord): Promise<void> {
    return this.inserts.add(r);
  }

  /**
   * The owner is looked up from the plan in the same statement. ON CONFLICT: the id is derived from the dead
   * letter, so a copy the broker redelivers (the recorder died between this commit and its ack) is a no-op.
   */
  private async insertBatch(items: DeadLetterRecord[]): Promise<void[]> {
    await this.ds.query(
      `INSERT INTO dead_letters (id, user_id, kind, queue, plan_id, task_id, reason, attempts, message, created_at)
       SELECT v.id, p.user_id, v.kind, v.queue, v.plan_id, v.task_id, v.reason, v.attempts, v.message, now()
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[])
         AS v(id, kind, queue, plan_id, task_id, reason, attempts, message)
       LEFT JOIN plans p ON p.id = v.plan_id
       ON CONFLICT (id) DO NOTHING`,
      [
        items.map((i) => i.id), items.map((i) => i.kind), items.map((i) => i.queue), items.map((i) => i.planId),
        items.map((i) => i.taskId), items.map((i) => i.reason), items.map((i) => i.attempts), items.map((i) => i.message),
      ],
    );
    return items.map(() => undefined);
  }

  /** Newest first. `owner` undefined: every dead letter (the admin, or an open API without user_id). */
  async page(owner: string | undefined, page: number): Promise<{ deadLetters: DeadLetterEntity[]; total: number }> {
    const repo = this.ds.getRepository(DeadLetterEntity);
    const where = owner === undefined ? {} : { userId: owner };
    const [deadLetters, total] = await Promise.all([
      withTransientRetry(() =>
        repo.find({ where, order: { createdAt: 'DESC', id: 'DESC' }, skip: page * DEAD_LETTER_PAGE_SIZE, take: DEAD_LETTER_PAGE_SIZE }),
      ),
      withTransientRetry(() => repo.count({ where })),
    ]);
    return { deadLetters, total };
  }

  /** Deletes the record; null when it does not exist or is not `owner`'s. */
  async discard(id: string, owner: string | undefined): Promise<DeadLetterEntity | null> {
    return withTransientRetry(() => this.ds.transaction((m) => this.take(m, id, owner)));
  }

  /**
   * Runs one new attempt of what the record is about and deletes the record, in one transaction; null when
   * it does not exist or is not `owner`'s. Throws ReplayConflict when nothing can run (the record stays).
   */
  async replay(id: string, owner: string | undefined): Promise<DeadLetterEntity | null> {
    return withTransientRetry(() =>
      this.ds.transaction(async (m) => {
        const letter = await this.take(m, id, owner);
        if (!letter) return null;
        if (letter.kind === DeadLetterKind.Hook) await this.replayHook(m, letter);
        else await this.replayTask(m, letter);
        return letter;
      }),
    );
  }

  private async take(m: EntityManager, id: string, owner: string | undefined): Promise<DeadLetterEntity | null> {
    const rows = await sqlRows<DeadLetterRow>(
      m,
      `DELETE FROM dead_letters WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2::uuid) RETURNING *`,
      [id, owner ?? null],
    );
    return rows.length === 0 ? null : toEntity(rows[0]);
  }

  /**
   * A task runs again as a retry due now: FAILURE with retry_at set is exactly what the scheduler's retry
   * claim picks, which counts the attempt (X-Karya-Attempt is the next one), bumps the fencing token and
   * dispatches it. Its retry_limit is set to the attempts made so far, so that attempt is its last whatever
   * the plan's max_failure_retry (a task dead-lettered early, e.g. for a missing connector, would otherwise
   * get a new round of retries): a failure ends it again and dead-letters it with the new reason. Locks the
   * plan, then the task, in the order a cancel takes them.
   *
   * - Only a FAILURE task that waits for nothing can be replayed: any other state means it is still in the
   *   scheduler's hands (or succeeded meanwhile), and a second dispatch would run it twice.
   * - A CANCELLED plan stays cancelled: its tasks never run again.
   * - A COMPLETED plan is reopened (RUNNING) when the task is its latest, the run whose failure completed it;
   *   its outcome completes it again (ON_COMPLETION fires after a success). An older task of a completed
   *   plan is refused: reopening the plan for it would leave it RUNNING with nothing left to complete it.
   */
  private async replayTask(m: EntityManager, letter: DeadLetterEntity): Promise<void> {
    if (letter.taskId === null || letter.planId === null) {
      throw new ReplayConflict(`Dead letter ${letter.id} names no task to run again (${letter.queue} message without a plan and task id)`);
    }
    const planStatus = await this.requireReplayablePlan(m, letter);
    const tasks = await sqlRows<{ partition_key: number; status: TaskStatus; retry_at: Date | null; attempt: number; latest: boolean }>(
      m,
      `SELECT t.partition_key, t.status, t.retry_at, t.attempt,
              NOT EXISTS (SELECT 1 FROM tasks n WHERE n.plan_id = t.plan_id AND (n.created_at, n.id) > (t.created_at, t.id)) AS latest
       FROM tasks t WHERE t.id = $1 AND t.plan_id = $2 FOR UPDATE OF t`,
      [letter.taskId, letter.planId],
    );
    if (tasks.length === 0) throw new ReplayConflict(`Task ${letter.taskId} of dead letter ${letter.id} no longer exists`);
    const [task] = tasks;
    if (task.status !== TaskStatus.Failure || task.retry_at !== null) {
      const state = task.retry_at !== null ? `${task.status}, with an attempt pending` : task.status;
      throw new ReplayConflict(`Task ${letter.taskId} is ${state}: only a failed task with no attempt pending can run again`);
    }
    if (planStatus === PlanStatus.Completed) {
      if (!task.latest) {
        throw new ReplayConflict(`Plan ${letter.planId} is COMPLETED: only its latest task, whose run completed it, can run again`);
      }
      await m.query(`UPDATE plans SET status = $2, updated_at = now() WHERE id = $1`, [letter.planId, PlanStatus.Running]);
    }
    await m.query(`UPDATE tasks SET retry_at = now(), retry_limit = $3 WHERE id = $1 AND partition_key = $2`, [
      letter.taskId, task.partition_key, task.attempt,
    ]);
  }

  /** Locks the letter's plan (before any task, as a cancel does); a missing or CANCELLED plan is a conflict. */
  private async requireReplayablePlan(m: EntityManager, letter: DeadLetterEntity): Promise<PlanStatus> {
    if (letter.planId === null) throw new ReplayConflict(`Dead letter ${letter.id} names no plan (${letter.queue} message without a plan id)`);
    const plans = await sqlRows<{ status: PlanStatus }>(m, `SELECT status FROM plans WHERE id = $1 FOR NO KEY UPDATE`, [letter.planId]);
    if (plans.length === 0) throw new ReplayConflict(`Plan ${letter.planId} of dead letter ${letter.id} no longer exists`);
    if (plans[0].status === PlanStatus.Cancelled) throw new ReplayConflict(`Plan ${letter.planId} is CANCELLED: nothing of it runs again`);
    return plans[0].status;
  }

  /**
   * A hook try is parked in hook_retries, due now, as the next try of the same firing (same idempotency
   * key, the next attempt number); the executors' HookRetryRelay publishes it within its poll. Its max_retry
   * is lowered to the tries made so far, so that try is its last: a failure dead-letters it again with the
   * new reason. The plan must still exist (a hook's error log refers to it), and not be CANCELLED.
   */
  private async replayHook(m: EntityManager, letter: DeadLetterEntity): Promise<void> {
    const message = letter.message;
    const hook = message?.hook;
    if (message === null || !Number.isInteger(message.attempt) || typeof hook !== 'object' || hook === null || Array.isArray(hook)) {
      throw new ReplayConflict(`Dead letter ${letter.id} holds no hook message to run again (it was malformed or too large to keep)`);
    }
    await this.requireReplayablePlan(m, letter);
    const attempt = message.attempt as number;
    const next = { ...message, attempt: attempt + 1, hook: { ...hook, max_retry: attempt } };
    await m.query(`INSERT INTO hook_retries (id, due_at, message) VALUES ($1, now(), $2::jsonb)`, [randomUUID(), JSON.stringify(next)]);
  }
}

interface DeadLetterRow {
  id: string;
  user_id: string | null;
  kind: DeadLetterKind;
  queue: string;
  plan_id: string | null;
  task_id: string | null;
  reason: string;
  attempts: number;
  message: JsonObject | null;
  created_at: Date;
}

function toEntity(r: DeadLetterRow): DeadLetterEntity {
  return {
    id: r.id, userId: r.user_id, kind: r.kind, queue: r.queue, planId: r.plan_id, taskId: r.task_id, reason: r.reason,
    attempts: r.attempts, message: r.message, createdAt: r.created_at,
  };
}

/** A UUID-shaped string from a message field, else null (a poison message may hold anything there). */
export function uuidOrNull(value: unknown): string | null {
  return typeof value === 'string' && UUID.test(value) ? value.toLowerCase() : null;
}

/**
 * The body as JSON text when jsonb can hold it: not too large, and no NUL (jsonb refuses `\u0000`; a
 * backslash before `u0000` in a string is refused too, harmlessly: the record is then kept without it).
 */
export function storableMessage(message: Record<string, unknown>): string | null {
  let text: string;
  try {
    text = JSON.stringify(message);
  } catch {
    return null;
  }
  if (text.length > MAX_STORED_MESSAGE_CHARS || text.includes('\\u0000')) return null;
  return text;
}

/** The id of a dead letter: a UUID-shaped digest of where it came from, why, and its body. */
export function deadLetterId(queue: string, reason: string, body: string): string {
  const h = createHash('sha256').update(queue).update('\0').update(reason).update('\0').update(body).digest('hex');
  // Version 8 (custom) and the RFC 4122 variant, so it is a well-formed UUID.
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
