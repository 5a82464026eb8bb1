import { JsonObject } from '../../connectors/repo/entities/plan.entity';

/** The original's discriminator for hook-queue messages. */
export const HOOK_MESSAGE_TYPE = 'karya.core.queues.entities.QueueMessage.HookMessage';
export const TRIGGERS = ['ON_FAILURE', 'ON_COMPLETION'] as const;
export type Trigger = (typeof TRIGGERS)[number];

/** One firing of one hook; `attempt` counts this hook's own tries (max_retry + 1 at most). */
export type HookMessage = {
  type: typeof HOOK_MESSAGE_TYPE;
  planId: string;
  taskId: string;
  trigger: Trigger;
  /** FAILURE or SUCCESS: the task's status when the hook fired. */
  taskStatus: string;
  /** The task attempt whose outcome fired it, and the hook's place in the plan's list: with the task id they
   * make a stable idempotency key for this firing. */
  taskAttempt: number;
  hookIndex: number;
  attempt: number;
  hook: { trigger: string; action: JsonObject; max_retry: number };
  /**
   * The traceparent of the execution that fired it, when that was traced (README "Traces"); kept by its
   * retries. Telemetry only: used only when valid (src/tracing), absent in older messages.
   */
  traceparent?: string;
};

export function parseHookMessage(raw: Record<string, unknown>): HookMessage | string {
  if (raw.type !== HOOK_MESSAGE_TYPE) return `not a hook message (type ${JSON.stringify(raw.type)})`;
  const hook = raw.hook as Record<string, unknown> | undefined;
  const bad = [
    typeof raw.planId !== 'string' && 'planId',
    typeof raw.taskId !== 'string' && 'taskId',
    !TRIGGERS.includes(raw.trigger as Trigger) && 'trigger',
    typeof raw.taskStatus !== 'string' && 'taskStatus',
    !Number.isInteger(raw.taskAttempt) && 'taskAttempt',
    !Number.isInteger(raw.hookIndex) && 'hookIndex',
    !Number.isInteger(raw.attempt) && 'attempt',
    (typeof hook !== 'object' || hook === null || typeof hook.action !== 'object' || !Number.isInteger(hook.max_retry)) && 'hook',
  ].filter((x): x is string => typeof x === 'string');
  return bad.length > 0 ? `malformed hook message: bad or missing ${bad.join(', ')}` : (raw as unknown as HookMessage);
}
