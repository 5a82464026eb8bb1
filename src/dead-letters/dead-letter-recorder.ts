import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { sleepUnlessAborted } from '../common/sleep';
import { DeadLetterKind } from '../connectors/repo/entities/dead-letter.entity';
import { Consumer, Delivery, QueueConsumer, QueueName, recordedReason, TaskQueue } from '../connectors/queue/queue.port';
import { isDatabaseUnavailable } from '../connectors/repo/transient';
import { HOOK_MESSAGE_TYPE } from '../modules/hooks/hook-message';
import { DeadLetterRecord, DeadLettersRepository, deadLetterId, storableMessage, uuidOrNull } from './dead-letters.repository';
import { rawTaskLogFields } from '../logging/task-log';

/** Dead letters taken from the broker at once; each is acknowledged when its row is committed. */
const PREFETCH = 256;
/** Pauses between tries of a record the database would not take (it is down or silent), up to the last. */
const RETRY_DELAYS_MS = [250, 500, 1000, 2000, 5000];

/**
 * Drains the broker's dead-letter queue into the dead_letters table, so the broker's queue (and the embedded
 * queue's memory) holds a dead letter only until a row has it. Runs in every executor (executor role), as
 * competing consumers; a dead letter is acknowledged only after its row is committed, and a copy delivered
 * again after a crash in between is recorded once (the row id is derived from the dead letter).
 *
 * While the database is down a dead letter is held (unacknowledged, within the prefetch) and tried again;
 * at shutdown the consumer is aborted rather than cancelled, so the broker keeps what was not recorded.
 */
@Injectable()
export class DeadLetterRecorder implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('DeadLetters');
  private consumer: Consumer | undefined;
  private running = false;
  private readonly stopping = new AbortController();

  constructor(
    private readonly queue: TaskQueue,
    private readonly letters: DeadLettersRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.running = true;
    this.consumer = await this.queue.consume(QueueName.DeadLetter, (d) => this.recordDelivery(d), { prefetch: PREFETCH });
  }

  async beforeApplicationShutdown(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = undefined;
    // Abort first: a handler still waiting for the database must not settle a dead letter it did not record;
    // once aborted, the broker has it back and whatever the handler does next counts for nothing.
    if (consumer instanceof QueueConsumer) await consumer.abort();
    else await consumer?.cancel();
    this.running = false;
    this.stopping.abort();
  }

  private async recordDelivery(d: Delivery): Promise<void> {
    const record = toRecord(d);
    for (let tries = 1; ; tries++) {
      try {
        await this.letters.record(record);
        return;
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        if (!isDatabaseUnavailable(e)) {
          if (record.message !== null) {
            // Something in the body the database refuses: keep the record without it.
            this.logger.warn({ ...rawTaskLogFields(d.message), dead_letter_id: record.id }, `dead letter ${record.id} stored without its body: ${why}`);
            record.message = null;
            continue;
          }
          // Trying again cannot help; holding it would stall a prefetch slot for good.
          this.logger.error({ ...rawTaskLogFields(d.message), dead_letter_id: record.id }, `dead letter ${record.id} from ${record.queue} could not be recorded and is dropped: ${why} (reason: ${record.reason})`);
          return;
        }
        if (!this.running) throw e;
        const pause = RETRY_DELAYS_MS[Math.min(tries - 1, RETRY_DELAYS_MS.length - 1)];
        if (tries === 1) this.logger.warn({ ...rawTaskLogFields(d.message), dead_letter_id: record.id }, `recording dead letter ${record.id} failed (${why}); trying again until it goes through`);
        await sleepUnlessAborted(pause, this.stopping.signal);
      }
    }
  }
}

/** What a dead-letter delivery says, read defensively: a poison message may hold anything. */
export function toRecord(d: Delivery): DeadLetterRecord {
  const m = d.message;
  const queue = d.originalQueue ?? 'unknown';
  // Our adapters store reasons already made storable; a message someone else put on the queue may not be.
  const reason = recordedReason(d.deadLetterReason ?? 'no reason recorded');
  const hook = m.type === HOOK_MESSAGE_TYPE || queue === QueueName.Hooks;
  const message = storableMessage(m);
  return {
    id: deadLetterId(queue, reason, message ?? safeStringify(m)),
    kind: hook ? DeadLetterKind.Hook : DeadLetterKind.Task,
    queue,
    planId: uuidOrNull(m.planId),
    taskId: uuidOrNull(m.taskId),
    reason,
    attempts: Number.isInteger(m.attempt) ? Math.max(0, Math.min(m.attempt as number, 2_147_483_647)) : 0,
    message,
  };
}

function safeStringify(m: Record<string, unknown>): string {
  try {
    return JSON.stringify(m);
  } catch {
    return String(m);
  }
}
