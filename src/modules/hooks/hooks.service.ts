import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { ActionRegistry } from '../../actions/action-registry';
import { sleepUnlessAborted } from '../../common/sleep';
import { storableText } from '../../common/storable-text';
import { ExecutorConfig } from '../../config/karya-config';
import { isDatabaseUnavailable } from '../../connectors/repo/transient';
import { KaryaMetrics } from '../../metrics/karya-metrics';
import { backoffDelay, DeadLetter } from '../../pipeline/retry';
import { HookMessage, parseHookMessage } from './hook-message';
import { HookPublisher } from './hook-publisher';
import { HookRetriesRepository } from './hook-retries.repository';
import { HookRetryRelay } from './hook-retry.relay';
import { loggedError, taskLogFields } from '../../logging/task-log';

/**
 * Runs hook messages from the hooks queue through the same plugins as plans ("eat what you kill"). A failed
 * try writes a HookErrorLog; while tries remain, its next try is parked in the repository for the backoff
 * (HookRetriesRepository, moved back onto the queue by HookRetryRelay) and this delivery is acknowledged at
 * once; after the last try it is dead-lettered.
 *
 * Why the repository and not a delayed republish: holding the delivery through the backoff (up to 5 minutes,
 * up to 100 tries) let as many failing hooks as the prefetch allows stall every hook. RabbitMQ has no
 * per-message delay without a plugin (per-backoff TTL queues dead-lettering back would work, but need a queue
 * per delay bucket and their own twin in the memory queue), while a parked row survives a restart of any
 * process, works the same on every stack, and is moved with the claim pattern tasks already use.
 */
@Injectable()
export class HooksService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Hooks');
  /** Aborted at shutdown: a hook waiting out a backoff in memory (see parkNext) publishes its next try at once. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly plugins: ActionRegistry,
    private readonly publisher: HookPublisher,
    private readonly retries: HookRetriesRepository,
    private readonly relay: HookRetryRelay,
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

    const error = storableText(outcome.error, this.config.maxErrorTextLength);
    const retrying = plugin && !outcome.permanent && message.attempt <= maxRetry;
    this.logger.warn(
      { ...hookLogFields(message), error: loggedError(error) },
      `hook ${message.hookIndex} (${message.trigger}) of task ${message.taskId} failed on try ${message.attempt}; ${retrying ? 'retrying' : 'dead-lettered'}`,
    );
    // A permanent failure (an egress denial) is dead-lettered at once: the same policy refuses every retry.
    if (plugin && !outcome.permanent && message.attempt <= maxRetry) {
      await this.parkNext(message, error, backoffDelay(this.config.retry, message.attempt));
      this.metrics.retryScheduled();
      return;
    }
    // The dead letter carries the reason too: a log the database cannot take now must not change what it says.
    await this.retries.log(message, error).catch((e: unknown) => {
      if (!isDatabaseUnavailable(e)) throw e;
      this.logger.warn(hookLogFields(message), `the HookErrorLog of hook ${message.hookIndex} of task ${message.taskId} was not written: ${e instanceof Error ? e.message : String(e)}`);
    });
    this.metrics.deadLettered(plugin ? 'exhausted' : 'no_connector');
    throw new DeadLetter(outcome.permanent ? outcome.error : `Hook failed after ${message.attempt} attempt(s): ${outcome.error}`);
  }

  /**
   * Logs the failed try and parks the next one for `delayMs`. When the database cannot take it, the delivery
   * is held through the backoff in memory instead (the old way, still unacknowledged so a crash loses
   * nothing): that stalls this consumer slot, but only while the database is away, when little else moves.
   */
  private async parkNext(message: HookMessage, error: string, delayMs: number): Promise<void> {
    try {
      await this.retries.logAndPark(message, error, { ...message, attempt: message.attempt + 1 }, delayMs);
      this.relay.dueIn(delayMs);
    } catch (e) {
      if (!isDatabaseUnavailable(e)) throw e;
      this.logger.warn(
        hookLogFields(message),
        `hook ${message.hookIndex} of task ${message.taskId} failed (${error}); the database is unavailable, so its ` +
          `next try waits ${delayMs} ms in memory: ${e instanceof Error ? e.message : String(e)}`,
      );
      await sleepUnlessAborted(delayMs, this.stopping.signal);
      await this.publisher.retry(message);
    }
  }
}

/** A hook line's task fields (attempt: the task's; a hook has no dispatch_seq) plus which hook and which try. */
function hookLogFields(message: HookMessage): object {
  return {
    ...taskLogFields({ planId: message.planId, taskId: message.taskId, attempt: message.taskAttempt }),
    hook_index: message.hookIndex,
    hook_attempt: message.attempt,
  };
}
