import { storableText } from '../../common/storable-text';

/**
 * The message-queue port. Used as its own DI token. Logical queues, named as in the original's RabbitMQ
 * topology: the executor queue (tasks to run), the hooks queue (hook actions to run) and the dead-letter
 * queue (messages that must not be retried, with the reason); plus our executor batch queue, for messages
 * that carry several tasks (executor-message.ts says why they travel apart).
 *
 * Semantics every adapter must honour (proved by queue.contract.ts against each adapter):
 * - `publish` resolves only once the broker has taken responsibility for the message (publisher
 *   confirm on RabbitMQ); messages are durable where the adapter can be.
 * - Delivery is at-least-once: a message handed to a consumer that stops before settling it is
 *   delivered again to another consumer.
 * - A handler that resolves acknowledges the message. A handler that rejects sends the message to the
 *   dead-letter queue with the error message as reason, then acknowledges it: nothing is requeued in a loop.
 * - At most `prefetch` messages are in a consumer's hands at once.
 */
export enum QueueName {
  Executor = 'executor',
  ExecutorBatch = 'executor-batch',
  Hooks = 'hooks',
  DeadLetter = 'dead-letter',
}

export const ALL_QUEUES: readonly QueueName[] = [QueueName.Executor, QueueName.ExecutorBatch, QueueName.Hooks, QueueName.DeadLetter];

/** JSON-serialisable message body. */
export type QueueMessage = Record<string, unknown>;

export interface Delivery {
  readonly queue: QueueName;
  readonly message: QueueMessage;
  /** True when the broker says this message was handed out before (RabbitMQ's `redelivered` flag). */
  readonly redelivered: boolean;
  /** Set on messages of the dead-letter queue: why they were dead-lettered. */
  readonly deadLetterReason?: string;
  /** Set on messages of the dead-letter queue: the queue they were first published to. */
  readonly originalQueue?: QueueName;
}

export type DeliveryHandler = (delivery: Delivery) => Promise<void>;

export interface ConsumeOptions {
  /** Maximum unsettled messages held by this consumer. */
  prefetch: number;
}

export interface Consumer {
  /** Stops receiving; waits for handlers already running to settle. Unsettled messages are redelivered. */
  cancel(): Promise<void>;
}

/** What both adapters return from consume(): cancel, plus abort for crash simulation in tests. */
export class QueueConsumer implements Consumer {
  constructor(
    private readonly doCancel: () => Promise<void>,
    private readonly doAbort: () => Promise<void>,
  ) {}

  cancel(): Promise<void> {
    return this.doCancel();
  }

  /**
   * Stops as a crashed process would: without waiting for running handlers. The broker (or the memory
   * queue) redelivers their messages, flagged redelivered, and whatever those handlers do afterwards is ignored.
   */
  abort(): Promise<void> {
    return this.doAbort();
  }
}

export abstract class TaskQueue {
  abstract publish(queue: QueueName, message: QueueMessage): Promise<void>;
  abstract publishBatch(queue: QueueName, messages: readonly QueueMessage[]): Promise<void>;
  /** Dead-letters a message explicitly (e.g. poison message), recording the reason. */
  abstract deadLetter(from: QueueName, message: QueueMessage, reason: string): Promise<void>;
  abstract consume(queue: QueueName, handler: DeliveryHandler, options: ConsumeOptions): Promise<Consumer>;
  /** Cheap liveness probe for /health: resolves when the broker is connected, rejects otherwise. */
  abstract ping(): Promise<void>;
  /** Cancels every consumer (letting running handlers settle) and closes connections. */
  abstract close(): Promise<void>;
}

/** A reason is a diagnostic, not a payload: it travels in a header table (amqplib caps those at 64 KiB). */
export const MAX_DEAD_LETTER_REASON_BYTES = 4096;

/** A dead letter's reason as every adapter records it: storable text (storableText), capped. */
export function recordedReason(reason: string): string {
  return storableText(reason, MAX_DEAD_LETTER_REASON_BYTES);
}

/** The reason recorded with a dead letter for a handler's error (every adapter, and batch entries alike). */
export function deadLetterReason(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** Every adapter refuses a prefetch that could never deliver anything. */
export function assertPrefetch(prefetch: number): void {
  if (!Number.isInteger(prefetch) || prefetch < 1) {
    throw new RangeError(`prefetch must be a positive integer, got ${prefetch}`);
  }
}
