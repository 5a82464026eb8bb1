import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ActionRegistry } from '../../actions/action-registry';
import { ExecutorConfig } from '../../config/karya-config';
import { ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { KaryaMetrics } from '../../metrics/karya-metrics';
import { backoffDelay, DeadLetter } from '../../pipeline/retry';
import { HookMessage, parseHookMessage } from './hook-message';
import { HookPublisher } from './hook-publisher';

/**
 * Runs hook messages from the hooks queue through the same plugins as plans ("eat what you kill"). A failed
 * try writes a HookErrorLog; while tries remain the message waits out its backoff (still unacknowledged, so
 * a crash loses nothing) and is published again for the next try; after the last it is dead-lettered.
 */
@Injectable()
export class HooksService implements BeforeApplicationShutdown {
  /** Aborted at shutdown: hooks waiting out a backoff publish their next try at once instead of holding it up. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly plugins: ActionRegistry,
    private readonly publisher: HookPublisher,
    private readonly ds: DataSource,
    private readonly config: ExecutorConfig,
    private readonly metrics: KaryaMetrics,
  ) {}

  beforeApplicationShutdown(): void {
    this.stopping.abort();
  }

  async handle(raw: Record<string, unknown>): Promise<void> {
    const message = parseHookMessage(raw);
    if (typeof message === 'string') {
      this.metrics.deadLettered('poison');
      throw new DeadLetter(message);
    }
    const { action, max_retry: maxRetry } = message.hook;
    const plugin = this.plugins.get(action.type);
    const outcome = plugin
      ? await plugin.run(action, {
          planId: message.planId,
          taskId: message.taskId,
          attempt: message.attempt,
          hook: {
            trigger: message.trigger,
            taskStatus: message.taskStatus,
            key: `${message.taskId}:${message.taskAttempt}:${message.trigger}:${message.hookIndex}`,
          },
        })
      : { ok: false as const, error: `No connector configured for ${String(action.type)}` };
    if (outcome.ok) return;

    await this.ds.query(`INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, $3, $4, $5)`, [
      message.planId, message.taskId, ErrorLogKind.Hook, outcome.error, new Date(),
    ]);
    // A permanent failure (an egress denial) is dead-lettered at once: the same policy refuses every retry.
    if (plugin && !outcome.permanent && message.attempt <= maxRetry) {
      await this.wait(backoffDelay(this.config.retry, message.attempt));
      await this.publisher.retry(message);
      this.metrics.retryScheduled();
      return;
    }
    this.metrics.deadLettered(plugin ? 'exhausted' : 'no_connector');
    throw new DeadLetter(outcome.permanent ? outcome.error : `Hook failed after ${message.attempt} attempt(s): ${outcome.error}`);
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping.signal.aborted) return resolve();
      const timer = setTimeout(resolve, ms);
      this.stopping.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}
