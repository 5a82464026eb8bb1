import { Injectable } from '@nestjs/common';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { QueueName, TaskQueue } from '../../connectors/queue/queue.port';
import { HOOK_MESSAGE_TYPE, HookMessage, Trigger } from './hook-message';
import { activeTraceparent } from '../../tracing/tracing';

export interface FiredBy {
  planId: string;
  taskId: string;
  taskAttempt: number;
  taskStatus: string;
}

/** Puts one message per matching hook on the hooks queue (several hooks may share a trigger). */
@Injectable()
export class HookPublisher {
  constructor(private readonly queue: TaskQueue) {}

  async fire(trigger: Trigger, hooks: JsonObject[], by: FiredBy): Promise<number> {
    const messages: HookMessage[] = [];
    // Null unless tracing is on and the firing execution is traced: the hook's run joins its trace.
    const traceparent = activeTraceparent();
    hooks.forEach((hook, hookIndex) => {
      if (hook.trigger !== trigger) return;
      messages.push({
        type: HOOK_MESSAGE_TYPE,
        planId: by.planId,
        taskId: by.taskId,
        trigger,
        taskStatus: by.taskStatus,
        taskAttempt: by.taskAttempt,
        hookIndex,
        attempt: 1,
        hook: { trigger, action: hook.action as JsonObject, max_retry: typeof hook.max_retry === 'number' ? hook.max_retry : 3 },
        ...(traceparent !== null && { traceparent }),
      });
    });
    if (messages.length > 0) await this.queue.publishBatch(QueueName.Hooks, messages);
    return messages.length;
  }

  /** The next try of a failed hook, after its backoff. */
  async retry(message: HookMessage): Promise<void> {
    await this.queue.publish(QueueName.Hooks, { ...message, attempt: message.attempt + 1 });
  }
}
