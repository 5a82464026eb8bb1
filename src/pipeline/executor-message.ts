import { QueueName } from '../connectors/queue/queue.port';
import { JsonObject } from '../connectors/repo/entities/plan.entity';

/** The original's discriminator for executor-queue messages, kept so the message shape is recognisable. */
export const EXECUTOR_MESSAGE_TYPE = 'karya.core.queues.entities.QueueMessage.ExecutorMessage';

/**
 * What a scheduler publishes for one dispatch of a task. camelCase like the original's queue messages.
 * `dispatchSeq` is the fencing token: the executor runs the task only while the row still carries it.
 */
export type ExecutorMessage = {
  type: typeof EXECUTOR_MESSAGE_TYPE;
  planId: string;
  taskId: string;
  partitionKey: number;
  attempt: number;
  dispatchSeq: number;
  action: JsonObject;
  maxFailureRetry: number;
  /** Epoch ms the attempt is due (the task's due time, or its retry time). */
  toBeExecutedAt: number;
  /**
   * Epoch ms until which the claim's lease already covers this dispatch, its run included (see
   * RUN_LEASE_MARGIN_MS). An executor that starts before `leaseUntil − timeout − margin` needs no write to
   * start the task. Absent in messages from older schedulers: the executor then extends the lease.
   */
  leaseUntil?: number;
  /**
   * The W3C traceparent of the dispatch span (README "Traces"), so the execution joins the plan's trace. Only
   * while tracing is on and the plan has a trace context; absent in messages from older schedulers. Telemetry
   * only: parseExecutorMessage drops one that is not a string, and its use ignores one that is no valid
   * traceparent, so it never fails a task.
   */
  traceparent?: string;
};

/**
 * Added to an action's own timeout for the lease that covers its run: the slack between the plugin's hard
 * deadline and the commit of the result. A lease lapses (and the task is dispatched again) only when the
 * result is this late, i.e. when the executor died or lost its database.
 */
export const RUN_LEASE_MARGIN_MS = 10_000;

/** The run time a dispatch's lease must cover: the action's timeout (ms, when it has one) plus the margin. */
export function runLeaseMs(action: JsonObject): number {
  const timeout = typeof action.timeout === 'number' && action.timeout > 0 ? action.timeout : 0;
  return timeout + RUN_LEASE_MARGIN_MS;
}

/**
 * Several tasks due at the same instant travel in one queue message: one confirmed publish, one delivery
 * and one acknowledgement for up to MAX_TASKS_PER_MESSAGE tasks, instead of one each. Measured on a
 * 2-core machine, a persistent confirmed message cost RabbitMQ ≈ 0.12 ms of CPU, the same again in the
 * scheduler and the executor: a third of a task's whole cost in a burst. Each task is still fenced,
 * checked, run, recorded and (when it must be) dead-lettered on its own; a single task still travels as a
 * plain ExecutorMessage, so executors of every version read what a scheduler sends one task at a time.
 */
export const EXECUTOR_BATCH_TYPE = 'karya.executor.ExecutorBatch';
export const MAX_TASKS_PER_MESSAGE = 50;

export type ExecutorBatch = { type: typeof EXECUTOR_BATCH_TYPE; tasks: ExecutorMessage[] };

/** The queue messages that carry `tasks`: batches of at most MAX_TASKS_PER_MESSAGE, a lone task as itself. */
export function executorMessages(tasks: ExecutorMessage[]): (ExecutorMessage | ExecutorBatch)[] {
  const out: (ExecutorMessage | ExecutorBatch)[] = [];
  for (let i = 0; i < tasks.length; i += MAX_TASKS_PER_MESSAGE) {
    const chunk = tasks.slice(i, i + MAX_TASKS_PER_MESSAGE);
    out.push(chunk.length === 1 ? chunk[0] : { type: EXECUTOR_BATCH_TYPE, tasks: chunk });
  }
  return out;
}

/**
 * The queue each message of `tasks` travels on: lone tasks on the executor queue, batches on the executor
 * batch queue. They travel apart because a broker's prefetch counts messages, not tasks: with one queue, a
 * prefetch of `concurrency` messages let an executor take `concurrency` × 50 tasks at once (thousands),
 * hoarding a burst while other executors sat idle and the hoard's leases lapsed. Apart, each queue gets the
 * prefetch that bounds its tasks (executorPrefetch). A lone task keeps the original's queue and shape.
 */
export function executorDispatches(tasks: ExecutorMessage[]): { queue: QueueName; messages: (ExecutorMessage | ExecutorBatch)[] }[] {
  const lone: ExecutorMessage[] = [];
  const batches: ExecutorBatch[] = [];
  for (const m of executorMessages(tasks)) {
    if (m.type === EXECUTOR_BATCH_TYPE) batches.push(m);
    else lone.push(m);
  }
  return [
    { queue: QueueName.Executor, messages: lone },
    { queue: QueueName.ExecutorBatch, messages: batches },
  ].filter((d) => d.messages.length > 0);
}

/**
 * An executor's prefetch per queue, so that the tasks it holds (running or waiting for a slot) are bounded by
 * its `concurrency`, not by `concurrency` messages of up to MAX_TASKS_PER_MESSAGE tasks each:
 * - lone tasks: `concurrency` messages, i.e. at most `concurrency` tasks (a slow action needs that many in
 *   flight);
 * - batches: enough messages to fill every slot twice (⌈2 × concurrency / 50⌉), plus one. A batch is
 *   acknowledged only when all of its tasks are settled, so the next ones must already be there while the
 *   last tasks of the oldest finish. Measured with bench/probe.mjs (concurrency 256, 20,000 tasks): one
 *   slot's worth (6 + 1 batches) drained up to 9 % slower than the single queue did, twice that (11 + 1)
 *   as fast (BENCHMARKS.md).
 * In all, at most `3 × concurrency + 100` tasks; a burst's other messages stay in the broker, where any
 * executor with room takes them.
 */
export function executorPrefetch(concurrency: number): { lone: number; batch: number } {
  return { lone: concurrency, batch: Math.ceil((2 * concurrency) / MAX_TASKS_PER_MESSAGE) + 1 };
}

/**
 * The entries of a batch message (each still untrusted: parse them one by one), null when `raw` is not a
 * batch, or a reason when it claims to be one but carries no list of tasks.
 */
export function batchEntries(raw: Record<string, unknown>): Record<string, unknown>[] | null | string {
  if (raw.type !== EXECUTOR_BATCH_TYPE) return null;
  if (!Array.isArray(raw.tasks)) return 'malformed executor batch: tasks is not a list';
  return raw.tasks.map((t: unknown) => (typeof t === 'object' && t !== null && !Array.isArray(t) ? (t as Record<string, unknown>) : { entry: t }));
}

/** Narrows an untrusted queue payload; returns a reason when it is not an executor message. */
export function parseExecutorMessage(raw: Record<string, unknown>): ExecutorMessage | string {
  if (raw.type !== EXECUTOR_MESSAGE_TYPE) return `not an executor message (type ${JSON.stringify(raw.type)})`;
  // Every task of a burst passes here: the well-formed case is checked without building closures or lists.
  if (
    typeof raw.planId === 'string' && typeof raw.taskId === 'string' && Number.isInteger(raw.partitionKey)
    && Number.isInteger(raw.attempt) && Number.isInteger(raw.dispatchSeq) && Number.isInteger(raw.maxFailureRetry)
    && Number.isInteger(raw.toBeExecutedAt) && typeof raw.action === 'object' && raw.action !== null && !Array.isArray(raw.action)
    && (raw.leaseUntil === undefined || Number.isInteger(raw.leaseUntil))
    && (raw.traceparent === undefined || typeof raw.traceparent === 'string')
  ) {
    return raw as unknown as ExecutorMessage;
  }
  const str = (k: string) => typeof raw[k] === 'string';
  const int = (k: string) => Number.isInteger(raw[k]);
  const missing = ['planId', 'taskId'].filter((k) => !str(k))
    .concat(['partitionKey', 'attempt', 'dispatchSeq', 'maxFailureRetry', 'toBeExecutedAt'].filter((k) => !int(k)));
  if (typeof raw.action !== 'object' || raw.action === null || Array.isArray(raw.action)) missing.push('action');
  if (raw.leaseUntil !== undefined && !int('leaseUntil')) missing.push('leaseUntil');
  if (missing.length > 0) return `malformed executor message: bad or missing ${missing.join(', ')}`;
  if (raw.traceparent !== undefined && typeof raw.traceparent !== 'string') {
    const { traceparent: _dropped, ...rest } = raw;
    return rest as unknown as ExecutorMessage;
  }
  return raw as unknown as ExecutorMessage;
}
