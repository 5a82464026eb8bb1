import { randomInt, randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { storableText } from '../../common/storable-text';
import { sqlRows } from '../../connectors/repo/sql';
import { ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { withTransientRetry } from '../../connectors/repo/transient';
import { JsonObject, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { cronSchedule, nextCronDue } from '../plans/cron-schedule';
import { OverlapPolicy, PLAN_TYPE } from '../plans/dto/discriminators';
import { isLastRun } from '../plans/occurrences';
import { parsePeriod } from '../plans/period';
import { RUN_LEASE_MARGIN_MS } from '../../pipeline/executor-message';

/** Why a task was claimed: a fresh occurrence, a retry after a failure, or a dispatch whose lease lapsed. */
export type ClaimKind = 'due' | 'retry' | 'lease';

export interface ClaimedTask {
  kind: ClaimKind;
  taskId: string;
  partitionKey: number;
  planId: string;
  attempt: number;
  dispatchSeq: number;
  /** When this dispatch should reach the executor (epoch ms). */
  dueAt: number;
  action: JsonObject;
  maxFailureRetry: number;
  /** Until when this claim's lease runs (epoch ms), the run of the action included. */
  leaseUntil: number;
  /** The plan's traceparent (plans.trace_context), which the claim's span continues (src/tracing/spans.ts). */
  traceContext?: string | null;
}

/**
 * A task the lease sweep finalised instead of dispatching again (see SPENT), already FAILURE with its error
 * log: what the scheduler needs, after commit, to fire its ON_FAILURE hooks and dead-letter its last dispatch.
 * Here `attempt` is the dispatches made (the last one's attempt number), `dispatchSeq` the last dispatch's
 * fencing token (the dead letter carries that dispatch), and `dueAt` the task's slot.
 */
export type ExhaustedTask = Omit<ClaimedTask, 'kind' | 'leaseUntil'> & {
  /** The plan's hooks as they are now. */
  hooks: JsonObject[];
  /** Why it ended: the text of its error log and of its dead letter. */
  reason: string;
};

export interface ClaimBatch {
  /** Claimed for dispatch. */
  claimed: ClaimedTask[];
  /** Finalised without a dispatch (lease sweeps only). */
  exhausted: ExhaustedTask[];
}

interface ClaimedRow {
  id: string;
  partition_key: number;
  plan_id: string;
  attempt: number;
  dispatch_seq: number;
  due_at: Date;
  next_created: boolean;
  lease_until: Date;
  /** A replayed dead letter's limit, overriding the plan's max_failure_retry (TaskEntity.retryLimit). */
  retry_limit: number | null;
  /** Lease sweeps only: finalised as FAILURE instead of dispatched (SPENT), and the task's slot. */
  spent?: boolean;
  slot?: Date;
}

interface PlanRow {
  id: string;
  type: JsonObject;
  status: PlanStatus;
  action: JsonObject;
  period_time: string;
  max_failure_retry: number;
  paused_at: Date | null;
  trace_context: string | null;
}

/** A task "still running" for the overlap policies: PROCESSING, or failed and waiting for a retry. */
const IN_FLIGHT = (t: string) =>
  `(${t}.status = '${TaskStatus.Processing}' OR (${t}.status = '${TaskStatus.Failure}' AND ${t}.retry_at IS NOT NULL))`;

/** What the due claim does with a claimed row: dispatch it, or one of the ways it does not (see gate()). */
interface Gated {
  /** Dispatched now. */
  dispatch: ClaimedRow[];
  /** Whose next occurrence is created now: the dispatched, the skipped and the buffered. */
  advance: ClaimedRow[];
}

/**
 * A claim's lease (ms past its due time, or past now when it is claimed late): the scheduler's leaseTime to
 * get it published and picked up, plus the run itself, i.e. the action's timeout and RUN_LEASE_MARGIN_MS
 * ($6), the same as runLeaseMs() computes. An executor that starts the task within leaseTime then has all
 * the lease it needs and starts it without writing (TaskResultsRepository.check).
 */
const LEASE_MS = `($5::float8 + $6::float8 + CASE WHEN jsonb_typeof(p.action->'timeout') = 'number'
  THEN GREATEST((p.action->>'timeout')::float8, 0) ELSE 0 END)`;

/**
 * Every dispatch is an attempt: the due and retry claims count one, and so does a lease re-dispatch. What
 * ends a task that never gets a result recorded (a handler that throws after the claim, a result the
 * database will not take) is the executor's own report: when it took a dispatch and could not record its
 * outcome, it leaves the task PROCESSING with `retry_at` set (TaskResultsRepository.unrecorded) and its
 * lease ending then. A lapsed task so marked that has already been dispatched max_failure_retry + 1 times
 * is SPENT: not dispatched again but finalised in this same statement, FAILURE, as its final failed attempt
 * would have left it; claimOnce() writes the rest of that in the same transaction (error log, OneTime plan
 * COMPLETED) and the scheduler fires ON_FAILURE and dead-letters it after commit.
 *
 * A lapse without that mark proves nothing ran: the claim of a scheduler that died before publishing it,
 * a message still queued behind a backlog deeper than the lease (measured: 670 of a 5,000-task burst with
 * a 3 s leaseTime on a loaded 2-core machine), a lost message. Such a task is dispatched again (counting
 * the attempt) even past its last one, rather than failed without having run. An executor killed mid-run
 * needs no lease: the broker hands its message to another.
 *
 * A task whose plan is no longer live is never SPENT but cancelled, as before. (Old values of t are read
 * here: this is a SET expression.)
 */
const SPENT = `COALESCE(p.status IN ('${PlanStatus.Created}', '${PlanStatus.Running}') AND t.retry_at IS NOT NULL
  AND t.attempt > COALESCE(t.retry_limit, p.max_failure_retry), false)`;

/**
 * Each claim is one statement: pick rows with FOR UPDATE SKIP LOCKED and flip them in the same UPDATE, so
 * concurrent schedulers (even on overlapping partitions) never claim the same row (the original's
 * read-then-update could). Every claim bumps dispatch_seq, the fencing token the executor checks.
 * The outer UPDATE repeats the partition filter so that it prunes to this loop's partitions: without it,
 * on stale statistics, the planner hash-joined the picked rows against every partition of tasks.
 */
const CLAIM: Record<ClaimKind, string> = {
  due: `
    WITH picked AS (
      SELECT id, partition_key, plan_id, next_execution_at AS due FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Created}' AND next_execution_at <= $2
      ORDER BY next_execution_at LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET status = '${TaskStatus.Processing}', attempt = t.attempt + 1, dispatch_seq = t.dispatch_seq + 1,
      lease_until = GREATEST(picked.due, $4::timestamptz) + ${LEASE_MS} * interval '1 millisecond'
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[])
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, picked.due AS due_at, t.next_created, t.lease_until, t.retry_limit`,
  retry: `
    WITH picked AS (
      SELECT id, partition_key, plan_id, retry_at AS due FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Failure}' AND retry_at IS NOT NULL AND retry_at <= $2
      ORDER BY retry_at LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET status = '${TaskStatus.Processing}', attempt = t.attempt + 1, dispatch_seq = t.dispatch_seq + 1,
      retry_at = NULL, lease_until = GREATEST(picked.due, $4::timestamptz) + ${LEASE_MS} * interval '1 millisecond'
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[])
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, picked.due AS due_at, t.next_created, t.lease_until, t.retry_limit`,
  // A lapsed lease means the dispatch never reached an executor, or the executor could not record its result:
  // dispatch it again now, as a new attempt, unless the executor said so and that was its last (SPENT).
  lease: `
    WITH picked AS (
      SELECT id, partition_key, plan_id FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Processing}' AND lease_until < $4
      ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET
      status = CASE WHEN ${SPENT} THEN '${TaskStatus.Failure}' ELSE t.status END,
      executed_at = CASE WHEN ${SPENT} THEN $4::timestamptz ELSE t.executed_at END,
      attempt = CASE WHEN ${SPENT} THEN t.attempt ELSE t.attempt + 1 END,
      dispatch_seq = CASE WHEN ${SPENT} THEN t.dispatch_seq ELSE t.dispatch_seq + 1 END,
      retry_at = NULL,
      lease_until = CASE WHEN ${SPENT} THEN NULL ELSE $4::timestamptz + ${LEASE_MS} * interval '1 millisecond' END
    -- ($2, the horizon, is unused here; referenced only so all three statements take the same parameters.)
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[]) AND $2::timestamptz IS NOT NULL
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, $4::timestamptz AS due_at, t.next_created, t.lease_until, t.retry_limit,
      t.status = '${TaskStatus.Failure}' AS spent, t.next_execution_at AS slot`,
};

export interface ClaimOptions {
  partitions: number[];
  /** Claim work due up to this instant (epoch ms). */
  horizon: number;
  limit: number;
  /** ms a claim stays valid after its due time before another scheduler may dispatch it again. */
  leaseTime: number;
  /** Total partitions, for the partition key of created successor tasks. */
  totalPartitions: number;
}

@Injectable()
export class TaskClaimsRepository {
  private readonly logger = new Logger('TaskClaims');

  constructor(private readonly ds: DataSource) {}

  /**
   * Claims a batch and, in the same transaction: cancels claims whose plan is no longer live, creates the
   * next occurrence of each recurring plan on its grid, and moves plans CREATED → RUNNING.
   *
   * Lock order. The claim holds task rows and never waits for a plan row: a cancel (or a PATCH) locks its
   * plan first and then its CREATED tasks, so a claim waiting for that plan while holding one of those tasks
   * would deadlock with it. Hence plans are moved to RUNNING only where their row is free (SKIP LOCKED), the
   * others just after the commit (holding nothing by then), and the next task's foreign-key check (FOR KEY
   * SHARE) does not conflict with the lock cancel takes (FOR NO KEY UPDATE, see PlansRepository).
   *
   * A transaction that fails transiently (a lost connection, a conflict) runs again; it committed nothing,
   * or, if the connection died with the commit's answer on its way, its tasks stay leased and are dispatched
   * again when the lease lapses.
   */
  async claim(kind: Exclude<ClaimKind, 'lease'>, o: ClaimOptions): Promise<ClaimedTask[]> {
    return (await this.claimBatch(kind, o)).claimed;
  }

  /**
   * Claims tasks whose lease lapsed, to dispatch them again as their next attempt, as claim() does; those
   * that had no attempt left are finalised instead (SPENT) and returned as `exhausted`.
   */
  sweepLapsed(o: ClaimOptions): Promise<ClaimBatch> {
    return this.claimBatch('lease', o);
  }

  private async claimBatch(kind: ClaimKind, o: ClaimOptions): Promise<ClaimBatch> {
    const { claimed, starting, exhausted, ending } = await withTransientRetry(() => this.claimOnce(kind, o));
    if (starting.length > 0) await this.markRunning(starting);
    if (ending.length > 0) await this.markCompleted(ending);
    return { claimed, exhausted };
  }

  /**
   * The claim's transaction; `starting`: plans whose first dispatch this is but whose row was locked;
   * `ending`: plans that an exhausted task completes but whose row was locked.
   */
  private claimOnce(kind: ClaimKind, o: ClaimOptions): Promise<ClaimBatch & { starting: string[]; ending: string[] }> {
    return this.ds.transaction(async (m) => {
      const now = Date.now();
      const all = await sqlRows<ClaimedRow>(m, CLAIM[kind], [
        o.partitions, new Date(o.horizon), o.limit, new Date(now), o.leaseTime, RUN_LEASE_MARGIN_MS,
      ]);
      if (all.length === 0) return { claimed: [], starting: [], exhausted: [], ending: [] };
      const plans = await this.plansOf(m, [...new Set(all.map((r) => r.plan_id))]);
      const spent = all.filter((r) => r.spent === true);
      const rows = spent.length === 0 ? all : all.filter((r) => r.spent !== true);
      const { exhausted, ending } = spent.length === 0 ? { exhausted: [], ending: [] } : await this.finalise(m, spent, plans, now);

      const dead = rows.filter((r) => !isLive(plans.get(r.plan_id)));
      if (dead.length > 0) {
        await m.query(`UPDATE tasks SET status = $2, lease_until = NULL WHERE id = ANY($1::uuid[]) AND status = $3`, [
          dead.map((r) => r.id), TaskStatus.Cancelled, TaskStatus.Processing,
        ]);
      }
      const alive = rows.filter((r) => isLive(plans.get(r.plan_id)));
      // Pause and overlap apply to fresh occurrences: a retry or a lease re-dispatch continues one already started.
      const { dispatch: live, advance } = kind === 'due' ? await this.gate(m, alive, plans, now) : { dispatch: alive, advance: alive };
      await this.createSuccessors(m, advance, plans, now, o.totalPartitions);
      let starting = [...new Set(live.map((r) => r.plan_id))].filter((id) => plans.get(id)?.status === PlanStatus.Created);
      if (starting.length > 0) {
        const started = await sqlRows<{ id: string }>(
          m,
          `WITH free AS (SELECT id FROM plans WHERE id = ANY($1::uuid[]) AND status = $4 FOR NO KEY UPDATE SKIP LOCKED)
           UPDATE plans p SET status = $2, updated_at = $3 FROM free WHERE p.id = free.id RETURNING p.id`,
          [starting, PlanStatus.Running, new Date(now), PlanStatus.Created],
        );
        const done = new Set(started.map((r) => r.id));
        starting = starting.filter((id) => !done.has(id));
      }
      const claimed = live.map((r): ClaimedTask => {
        const plan = plans.get(r.plan_id)!;
        return {
          kind,
          taskId: r.id,
          partitionKey: r.partition_key,
          planId: r.plan_id,
          attempt: r.attempt,
          dispatchSeq: r.dispatch_seq,
          dueAt: r.due_at.getTime(),
          action: plan.action,
          maxFailureRetry: r.retry_limit ?? plan.max_failure_retry,
          leaseUntil: r.lease_until.getTime(),
          traceContext: plan.trace_context,
        };
      });
      return { claimed, starting, exhausted, ending };
    });
  }

  /**
   * What the executor writes for a final failed attempt (TaskResultsRepository.failed), for tasks the lease
   * sweep just made FAILURE: the error log, and the plan COMPLETED when this was its last run (a OneTime
   * plan; a bounded Recurring one at or past end_at), never over CANCELLED. A recurring plan carries on: its
   * next task was created when this one was first claimed. Plans are completed only where their row is free
   * (the lock order above); `ending` lists the others, for after the commit. Few rows, rarely.
   */
  private async finalise(
    m: EntityManager,
    rows: ClaimedRow[],
    plans: Map<string, PlanRow>,
    now: number,
  ): Promise<{ exhausted: ExhaustedTask[]; ending: string[] }> {
    const at = new Date(now);
    const reasons = rows.map((r) =>
      storableText(`No result after ${r.attempt} dispatch${r.attempt === 1 ? '' : 'es'} --- the executor could not record one`),
    );
    await m.query(
      `INSERT INTO error_logs (plan_id, task_id, type, error, timestamp)
       SELECT r.plan_id, r.task_id, $4, r.error, $5 FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS r(plan_id, task_id, error)`,
      [rows.map((r) => r.plan_id), rows.map((r) => r.id), reasons, ErrorLogKind.Executor, at],
    );
    const last = rows.filter((r) => isLastRun(plans.get(r.plan_id)?.type ?? {}, r.slot?.getTime() ?? now));
    let ending = [...new Set(last.map((r) => r.plan_id))];
    if (ending.length > 0) {
      const completed = await sqlRows<{ id: string }>(
        m,
        `WITH free AS (SELECT id FROM plans WHERE id = ANY($1::uuid[]) AND status IN ($4, $5) FOR NO KEY UPDATE SKIP LOCKED)
         UPDATE plans p SET status = $2, updated_at = $3 FROM free WHERE p.id = free.id RETURNING p.id`,
        [ending, PlanStatus.Completed, at, PlanStatus.Created, PlanStatus.Running],
      );
      const done = new Set(completed.map((r) => r.id));
      ending = ending.filter((id) => !done.has(id));
    }
    const hooks: { id: string; hook: JsonObject[] | null }[] = await m.query(`SELECT id, hook FROM plans WHERE id = ANY($1::uuid[])`, [
      [...new Set(rows.map((r) => r.plan_id))],
    ]);
    const hooksOf = new Map(hooks.map((p) => [p.id, p.hook ?? []]));
    const exhausted = rows.map((r, i): ExhaustedTask => {
      const plan = plans.get(r.plan_id);
      return {
        taskId: r.id,
        partitionKey: r.partition_key,
        planId: r.plan_id,
        attempt: r.attempt,
        dispatchSeq: r.dispatch_seq,
        dueAt: r.slot?.getTime() ?? now,
        action: plan?.action ?? {},
        maxFailureRetry: r.retry_limit ?? plan?.max_failure_retry ?? 0,
        hooks: hooksOf.get(r.plan_id) ?? [],
        reason: reasons[i],
      };
    });
    return { exhausted, ending };
  }

  /**
   * COMPLETED, after the commit, for plans an exhausted task ended but whose row was locked (mostly by a
   * cancel, which then wins: completion never overwrites CANCELLED). Waiting is safe now that nothing is held.
   */
  private async markCompleted(planIds: string[]): Promise<void> {
    await withTransientRetry(() =>
      this.ds.query(`UPDATE plans SET status = $2, updated_at = $3 WHERE id = ANY($1::uuid[]) AND status IN ($4, $5)`, [
        planIds, PlanStatus.Completed, new Date(), PlanStatus.Created, PlanStatus.Running,
      ]),
    ).catch((e: unknown) => {
      this.logger.error(`${planIds.length} plan(s) whose last task failed stay RUNNING: ${e instanceof Error ? e.message : String(e)}`);
    });
  }

  /**
   * CREATED → RUNNING for plans whose row the claim found locked (by a cancel, a PATCH, a result being
   * recorded). Waiting is safe now that the claim holds nothing; a plan cancelled or completed meanwhile
   * stays so. Cosmetic next to the claim itself, so a failure is logged and the claim still stands.
   */
  private async markRunning(planIds: string[]): Promise<void> {
    await withTransientRetry(() =>
      this.ds.query(`UPDATE plans SET status = $2, updated_at = $3 WHERE id = ANY($1::uuid[]) AND status = $4`, [
        planIds, PlanStatus.Running, new Date(), PlanStatus.Created,
      ]),
    ).catch((e: unknown) => {
      this.logger.warn(`${planIds.length} plan(s) stay CREATED after their first dispatch: ${e instanceof Error ? e.message : String(e)}`);
    });
  }

  /**
   * Hands back claims a stopping scheduler will not publish, as they were before the claim, so another
   * scheduler takes them at once instead of after their lease (only while nobody re-claimed them).
   */
  async release(tasks: ClaimedTask[]): Promise<void> {
    for (const kind of ['due', 'retry', 'lease'] as const) {
      const of = tasks.filter((t) => t.kind === kind);
      if (of.length === 0) continue;
      const ids = of.map((t) => t.taskId);
      const seqs = of.map((t) => t.dispatchSeq);
      const restore =
        kind === 'due'
          ? `status = '${TaskStatus.Created}', attempt = t.attempt - 1, lease_until = NULL`
          : kind === 'retry'
            ? `status = '${TaskStatus.Failure}', attempt = t.attempt - 1, lease_until = NULL, retry_at = now()`
            : `attempt = t.attempt - 1, lease_until = now()`;
      await withTransientRetry(() =>
        this.ds.query(
          `UPDATE tasks t SET ${restore}
           FROM unnest($1::uuid[], $2::int[]) AS r(id, seq)
           WHERE t.id = r.id AND t.dispatch_seq = r.seq AND t.status = '${TaskStatus.Processing}'`,
          [ids, seqs],
        ),
      );
    }
  }

  /**
   * Pause and overlap, for freshly claimed occurrences (due claims), inside the claim's transaction:
   *
   * - A paused plan's occurrence is not dispatched: it becomes PAUSED (as the pause made its siblings) and
   *   gets no successor; resume decides when it runs. It got here because the claim that created it ran
   *   alongside the pause (PlansRepository.pausePendingTasks).
   * - SKIP and BUFFER_ONE plans are serialised on their plan row (FOR NO KEY UPDATE, the lock cancel takes,
   *   SKIP LOCKED so the claim never waits for a plan: see claim()); a plan whose row is busy has its rows
   *   handed back for the next poll. The plan's last dispatched task (plans.active_task_*) says in one lookup
   *   whether one still runs. If none does, the row is dispatched and becomes the active task. If one does:
   *   a row claimed ahead of its due time is handed back, so the decision is taken when it is due, not up to
   *   two polls early; a due row is skipped (CANCELLED, with an error log saying so, visible in the summary),
   *   or under BUFFER_ONE, when no other occurrence waits yet, BUFFERED: releaseBuffered() makes it due
   *   again as soon as the running one ends. Skipped and buffered rows still advance the schedule.
   *
   * Handing back undoes the claim (status, attempt, lease); dispatch_seq stays bumped, which is harmless:
   * the next claim bumps it again before any message carries it.
   */
  private async gate(m: EntityManager, rows: ClaimedRow[], plans: Map<string, PlanRow>, now: number): Promise<Gated> {
    const handBack = async (of: ClaimedRow[], status: TaskStatus) => {
      if (of.length === 0) return;
      await m.query(
        `UPDATE tasks t SET status = $3, attempt = t.attempt - 1, lease_until = NULL
         FROM unnest($1::uuid[], $2::int[]) AS r(id, key) WHERE t.id = r.id AND t.partition_key = r.key`,
        [of.map((r) => r.id), of.map((r) => r.partition_key), status],
      );
    };
    // The plans read above were not locked: a row is set aside as PAUSED only while its plan, locked FOR
    // SHARE (a resume or cancel then waits for this claim), is still paused; a busy plan row means the next
    // poll decides. Without the lock a resume committing meanwhile would leave a PAUSED task on an active plan.
    let paused = rows.filter((r) => plans.get(r.plan_id)?.paused_at != null);
    let busy: ClaimedRow[] = [];
    if (paused.length > 0) {
      const confirmed = await sqlRows<{ id: string; paused: boolean }>(
        m,
        `SELECT id, paused_at IS NOT NULL AS paused FROM plans WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE SKIP LOCKED`,
        [[...new Set(paused.map((r) => r.plan_id))]],
      );
      const still = new Map(confirmed.map((p) => [p.id, p.paused]));
      busy = paused.filter((r) => !still.has(r.plan_id));
      for (const r of paused.filter((r) => still.get(r.plan_id) === false)) plans.get(r.plan_id)!.paused_at = null;
      paused = paused.filter((r) => still.get(r.plan_id) === true);
    }
    const managed = rows.filter((r) => plans.get(r.plan_id)?.paused_at == null && overlapOf(plans.get(r.plan_id)) !== 'ALLOW');
    if (paused.length === 0 && busy.length === 0 && managed.length === 0) return { dispatch: rows, advance: rows };
    const dispatch = rows.filter((r) => !paused.includes(r) && !busy.includes(r) && !managed.includes(r));
    const advance = [...dispatch];
    await handBack(paused, TaskStatus.Paused);
    await handBack(busy, TaskStatus.Created);
    if (managed.length === 0) return { dispatch, advance };

    const planIds = [...new Set(managed.map((r) => r.plan_id))].sort();
    const locked = await sqlRows<{ id: string; running: boolean; buffered: boolean }>(
      m,
      `WITH p AS (
         SELECT id, active_task_id, active_task_key FROM plans WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED
       )
       SELECT p.id,
         -- The rows of this claim are PROCESSING now, but none of them runs yet: one may be the active task
         -- itself, handed back by a stopping scheduler (release()) after it was dispatched.
         EXISTS (SELECT 1 FROM tasks a WHERE a.id = p.active_task_id AND a.partition_key = p.active_task_key AND a.id <> ALL($2::uuid[])
           AND ${IN_FLIGHT('a')}) AS running,
         EXISTS (SELECT 1 FROM tasks b WHERE b.plan_id = p.id AND b.status = '${TaskStatus.Buffered}') AS buffered
       FROM p`,
      [planIds, managed.map((r) => r.id)],
    );
    const state = new Map(locked.map((p) => [p.id, { running: p.running, buffered: p.buffered }]));
    const back: ClaimedRow[] = [];
    const buffer: ClaimedRow[] = [];
    const skip: { row: ClaimedRow; reason: string }[] = [];
    /** Plans whose waiting occurrence (stored BUFFERED before this claim) gives way to their final one. */
    const supersede: string[] = [];
    const active = new Map<string, ClaimedRow>();
    const skipped = (due: Date, policy: OverlapPolicy) =>
      `Occurrence due at ${due.toISOString()} skipped --- overlap ${policy}: the previous task was still running`;
    for (const r of [...managed].sort((a, b) => a.due_at.getTime() - b.due_at.getTime())) {
      const s = state.get(r.plan_id);
      const plan = plans.get(r.plan_id)!;
      const policy = overlapOf(plan);
      if (!s) back.push(r); // its plan row is busy: next poll
      else if (!s.running) {
        s.running = true;
        active.set(r.plan_id, r);
        dispatch.push(r);
        advance.push(r);
      } else if (r.due_at.getTime() > now) back.push(r);
      else if (isLastRun(plan.type, r.due_at.getTime())) {
        // A bounded plan's final occurrence is never skipped, under either policy: skipped, it would leave
        // the plan RUNNING for ever (only a run completes a plan, and fires ON_COMPLETION). It waits, and
        // one already waiting gives way to it, so at most one still waits.
        if (s.buffered) {
          const i = buffer.findIndex((b) => b.plan_id === r.plan_id);
          if (i >= 0) {
            const [earlier] = buffer.splice(i, 1);
            skip.push({ row: earlier, reason: skipped(earlier.due_at, policy) });
          }
          else supersede.push(r.plan_id);
        }
        s.buffered = true;
        buffer.push(r);
        advance.push(r);
      } else if (policy === 'BUFFER_ONE' && !s.buffered) {
        s.buffered = true;
        buffer.push(r);
        advance.push(r);
      } else {
        skip.push({ row: r, reason: skipped(r.due_at, policy) });
        advance.push(r);
      }
    }
    if (supersede.length > 0) {
      const gone = await sqlRows<{ id: string; partition_key: number; plan_id: string; due: Date }>(
        m,
        `SELECT id, partition_key, plan_id, next_execution_at AS due FROM tasks
         WHERE plan_id = ANY($1::uuid[]) AND status = '${TaskStatus.Buffered}' FOR UPDATE`,
        [supersede],
      );
      for (const g of gone) {
        const row = { id: g.id, partition_key: g.partition_key, plan_id: g.plan_id, due_at: g.due } as ClaimedRow;
        skip.push({ row, reason: skipped(g.due, overlapOf(plans.get(g.plan_id))) });
      }
    }
    await handBack(back, TaskStatus.Created);
    await handBack(buffer, TaskStatus.Buffered);
    if (skip.length > 0) {
      await m.query(
        `UPDATE tasks t SET status = $3, lease_until = NULL, executed_at = $4
         FROM unnest($1::uuid[], $2::int[]) AS r(id, key) WHERE t.id = r.id AND t.partition_key = r.key`,
        [skip.map((s) => s.row.id), skip.map((s) => s.row.partition_key), TaskStatus.Cancelled, new Date(now)],
      );
      await m.query(
        `INSERT INTO error_logs (plan_id, task_id, type, error, timestamp)
         SELECT r.plan_id, r.task_id, $4, r.error, $5 FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS r(plan_id, task_id, error)`,
        [skip.map((s) => s.row.plan_id), skip.map((s) => s.row.id), skip.map((s) => s.reason), ErrorLogKind.Executor, new Date(now)],
      );
    }
    if (active.size > 0) {
      const chosen = [...active.values()];
      await m.query(
        `UPDATE plans p SET active_task_id = r.task_id, active_task_key = r.key
         FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS r(plan_id, task_id, key) WHERE p.id = r.plan_id`,
        [chosen.map((r) => r.plan_id), chosen.map((r) => r.id), chosen.map((r) => r.partition_key)],
      );
    }
    return { dispatch, advance };
  }

  /**
   * BUFFER_ONE: an occurrence that waited (BUFFERED) becomes CREATED again once its plan's active task has
   * ended, at its own slot, which is past, so the next due claim of its partition takes it at once (and the
   * gate dispatches it). Run by every claim loop before its due claim, over its partitions; finds rows
   * through tasks_buffered_idx, which holds only the waiting ones, so it costs an index probe when none wait.
   * A paused plan's waiting occurrence stays put (pause has made it PAUSED anyway).
   */
  async releaseBuffered(partitions: number[]): Promise<number> {
    const rows = await withTransientRetry(() =>
      sqlRows<{ id: string }>(
        this.ds,
        `UPDATE tasks t SET status = '${TaskStatus.Created}'
         FROM plans p
         WHERE t.partition_key = ANY($1::int[]) AND t.status = '${TaskStatus.Buffered}' AND p.id = t.plan_id AND p.paused_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM tasks a WHERE a.id = p.active_task_id AND a.partition_key = p.active_task_key AND ${IN_FLIGHT('a')})
         RETURNING t.id`,
        [partitions],
      ),
    );
    return rows.length;
  }

  private async plansOf(m: EntityManager, ids: string[]): Promise<Map<string, PlanRow>> {
    const rows: PlanRow[] = await m.query(
      `SELECT id, type, status, action, period_time, max_failure_retry, paused_at, trace_context FROM plans WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((p) => [p.id, p]));
  }

  private async createSuccessors(
    m: EntityManager,
    rows: ClaimedRow[],
    plans: Map<string, PlanRow>,
    now: number,
    totalPartitions: number,
  ): Promise<void> {
    const from: string[] = [];
    const next: { id: string; key: number; planId: string; due: Date }[] = [];
    for (const r of rows) {
      const plan = plans.get(r.plan_id)!;
      if (r.next_created || plan.type.type === PLAN_TYPE.OneTime) continue;
      const due = nextOccurrence(plan, r.due_at.getTime(), now);
      if (due === undefined) continue; // not a type this version knows: leave it be
      from.push(r.id);
      if (due !== null) next.push({ id: randomUUID(), key: randomInt(1, totalPartitions + 1), planId: r.plan_id, due: new Date(due) });
    }
    if (from.length === 0) return;
    await m.query(`UPDATE tasks SET next_created = true WHERE id = ANY($1::uuid[])`, [from]);
    if (next.length > 0) {
      await m.query(
        `INSERT INTO tasks (id, partition_key, plan_id, status, created_at, next_execution_at)
         SELECT r.id, r.key, r.plan_id, '${TaskStatus.Created}', $5, r.due
         FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::timestamptz[]) AS r(id, key, plan_id, due)`,
        [next.map((n) => n.id), next.map((n) => n.key), next.map((n) => n.planId), next.map((n) => n.due), new Date(now)],
      );
    }
  }
}


/**
 * The due time of the occurrence after one due at `due`: null when the plan has no more (ended), undefined
 * for a plan type this version does not know (a row written by a newer one), which is left alone.
 */
function nextOccurrence(plan: PlanRow, due: number, now: number): number | null | undefined {
  try {
    if (plan.type.type === PLAN_TYPE.Recurring) return nextDue(due, parsePeriod(plan.period_time), plan.type.end_at, now);
    if (plan.type.type === PLAN_TYPE.Cron) {
      const { expression, time_zone } = plan.type;
      if (typeof expression !== 'string' || typeof time_zone !== 'string') return undefined;
      return nextCronDue(cronSchedule(expression, time_zone), due, plan.type.end_at, now);
    }
  } catch (e) {
    // A stored schedule this runtime refuses (an older time zone database in a rolling upgrade): one plan
    // must not fail the claim of the whole batch, and with it its partitions. This occurrence still runs;
    // the plan gets no successor, which this error says.
    new Logger('TaskClaims').error({ plan_id: plan.id }, `plan ${plan.id}: cannot compute its next occurrence: ${e instanceof Error ? e.message : String(e)}`);
  }
  return undefined;
}

/** A recurring or cron plan's overlap policy; ALLOW when missing (plans from before it existed) or OneTime. */
function overlapOf(plan: PlanRow | undefined): OverlapPolicy {
  const overlap = plan?.type.overlap;
  return overlap === 'SKIP' || overlap === 'BUFFER_ONE' ? overlap : 'ALLOW';
}

function isLive(plan: PlanRow | undefined): plan is PlanRow {
  return plan !== undefined && (plan.status === PlanStatus.Created || plan.status === PlanStatus.Running);
}

/**
 * The due time of the occurrence after one due at `due`, on the plan's grid (previous due + period: the
 * original used processing time + period, so schedules drifted). A bounded plan runs every slot up to and
 * including the first at or after `end_at`, so no successor follows a slot at or past it. When slots were
 * missed (the cluster was down), they coalesce into the latest slot not in the future: one catch-up run
 * now, then the grid continues.
 */
export function nextDue(due: number, period: number, endAt: unknown, now: number): number | null {
  if (typeof endAt === 'number' && due >= endAt) return null;
  // A zero period would recur in a loop; the API refuses periods under minRecurringPeriod, this guards old rows.
  const step = Math.max(period, 1);
  let next = due + step;
  if (next <= now - step) next = due + Math.floor((now - due) / step) * step;
  return next;
}
