import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { QueueName, TaskQueue } from '../../connectors/queue/queue.port';
import { HookRetriesRepository } from './hook-retries.repository';

/** How often an idle relay looks for due tries it was not told about (parked by other executors). */
export const HOOK_RETRY_POLL_MS = 1000;
/** Tries moved per transaction; a full batch means more may be due, so the relay goes again at once. */
const MOVE_BATCH = 100;
/** Slack after a local wake-up time, so the row the timer is for is due by the database's clock too. */
const WAKE_SLACK_MS = 5;
const WAKE_GRAIN_MS = 50;

/**
 * Moves hook tries whose backoff is over from `hook_retries` back onto the hooks queue (executor role only:
 * HooksModule is imported by no other role). It polls, and also wakes at the due time of every try this
 * process parked, so a retry is not up to a poll late.
 */
@Injectable()
export class HookRetryRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('HookRetries');
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  /** A wake-up that came while the relay was busy: the next pause is skipped. */
  private wakePending = false;
  /** Wake-up timers by the time they fire. */
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private failureLogged = false;

  constructor(
    private readonly retries: HookRetriesRepository,
    private readonly queue: TaskQueue,
  ) {}

  onApplicationBootstrap(): void {
    this.running = true;
    this.loop = this.run();
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    this.timers.forEach((t) => clearTimeout(t));
    this.timers.clear();
    this.wake?.();
    await this.loop;
  }

  /** A try parked by this process falls due in `delayMs`. */
  dueIn(delayMs: number): void {
    if (!this.running) return;
    // One timer per 50 ms of due times, however many hooks fail together.
    const at = Math.ceil((Date.now() + delayMs + WAKE_SLACK_MS) / WAKE_GRAIN_MS) * WAKE_GRAIN_MS;
    if (this.timers.has(at)) return;
    const timer = setTimeout(() => {
      this.timers.delete(at);
      this.wakePending = true;
      this.wake?.();
    }, at - Date.now());
    this.timers.set(at, timer);
  }

  private async run(): Promise<void> {
    while (this.running) {
      let moved = 0;
      try {
        moved = await this.retries.moveDue(MOVE_BATCH, (messages) => this.queue.publishBatch(QueueName.Hooks, messages));
        this.failureLogged = false;
      } catch (e) {
        // The database or the broker is away: the rows stay parked, and the next pass tries again.
        if (!this.failureLogged) this.logger.warn(`moving due hook retries failed: ${e instanceof Error ? e.message : String(e)}`);
        this.failureLogged = true;
      }
      if (moved < MOVE_BATCH) await this.pause();
    }
  }

  private pause(): Promise<void> {
    if (this.wakePending || !this.running) {
      this.wakePending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        this.wakePending = false;
        resolve();
      };
      const timer = setTimeout(done, HOOK_RETRY_POLL_MS);
      this.wake = done;
    });
  }
}
