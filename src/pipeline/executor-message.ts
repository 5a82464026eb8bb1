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
};

/** Narrows an untrusted queue payload; returns a reason when it is not an executor message. */
export function parseExecutorMessage(raw: Record<string, unknown>): ExecutorMessage | string {
  const str = (k: string) => typeof raw[k] === 'string';
  const int = (k: string) => Number.isInteger(raw[k]);
  if (raw.type !== EXECUTOR_MESSAGE_TYPE) return `not an executor message (type ${JSON.stringify(raw.type)})`;
  const missing = ['planId', 'taskId'].filter((k) => !str(k))
    .concat(['partitionKey', 'attempt', 'dispatchSeq', 'maxFailureRetry', 'toBeExecutedAt'].filter((k) => !int(k)));
  if (typeof raw.action !== 'object' || raw.action === null || Array.isArray(raw.action)) missing.push('action');
  if (missing.length > 0) return `malformed executor message: bad or missing ${missing.join(', ')}`;
  return raw as unknown as ExecutorMessage;
}
