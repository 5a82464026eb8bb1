import { Logger } from '@nestjs/common';
import {
  ALL_QUEUES, assertPrefetch, ConsumeOptions, Consumer, deadLetterReason, Delivery, DeliveryHandler, QueueConsumer, QueueMessage, QueueName, recordedReason, TaskQueue,
} from './queue.port';

/**
 * In-process TaskQueue for tests and single-process runs. It imitates a broker, not a function call:
 * messages are stored as JSON text (so a publisher mutating its object afterwards changes nothing, and a
 * value JSON cannot carry fails or degrades here exactly as it would on RabbitMQ), and each delivery is a
 * fresh parse (so a handler mutating its copy cannot alter what is dead-lettered or redelivered).
 * JSON rather than structuredClone on purpose: structuredClone would let a Date, Map or BigInt through
 * here that RabbitMQ would turn into a string or reject, hiding a bug until production.
 */
export class MemoryQueue extends TaskQueue {
  private readonly logger = new Logger(MemoryQueue.name);
  private readonly pending = new Map<QueueName, StoredMessage[]>(ALL_QUEUES.map((q) => [q, []]));
  private readonly consumers = new Map<QueueName, ConsumerState[]>(ALL_QUEUES.map((q) => [q, []]));
  /** Round-robin cursor per queue, so competing consumers share the load as a broker would. */
  private readonly cursor = new Map<QueueName, number>();
  private readonly dispatchScheduled = new Set<QueueName>();
  private closing: Promise<void> | undefined;

  async publish(queue: QueueName, message: QueueMessage): Promise<void> {
    this.assertOpen();
    this.enqueue(queue, { body: serialise(message), redelivered: false });
  }

  async publishBatch(queue: QueueName, messages: readonly QueueMessage[]): Promise<void> {
    this.assertOpen();
    // Serialise everything first: one unserialisable message rejects the batch before any is enqueued.
    const bodies = messages.map(serialise);
    for (const body of bodies) this.enqueue(queue, { body, redelivered: false });
  }

  async deadLetter(from: QueueName, message: QueueMessage, reason: string): Promise<void> {
    this.assertOpen();
    this.enqueue(QueueName.DeadLetter, {
      body: serialise(message),
      redelivered: false,
      deadLetterReason: recordedReason(reason),
      originalQueue: from,
    });
  }

  async consume(queue: QueueName, handler: DeliveryHandler, options: ConsumeOptions): Promise<QueueConsumer> {
    this.assertOpen();
    assertPrefetch(options.prefetch);
    const state: ConsumerState = {
      queue,
      handler,
      prefetch: options.prefetch,
      active: true,
      inFlight: new Set(),
      stopped: undefined,
    };
    this.consumersOf(queue).push(state);
    this.scheduleDispatch(queue);
    return new QueueConsumer(
      () => this.cancelConsumer(state),
      () => this.abortConsumer(state),
    );
  }

  async ping(): Promise<void> {
    this.assertOpen();
  }

  /** Messages held for `queue`: waiting, and in consumers' hands (what this process keeps in memory). */
  depth(queue: QueueName): number {
    return this.pendingOf(queue).length + this.consumersOf(queue).reduce((n, c) => n + c.inFlight.size, 0);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const all = ALL_QUEUES.flatMap((q) => [...this.consumersOf(q)]);
      await Promise.all(all.map((c) => this.cancelConsumer(c)));
      for (const q of ALL_QUEUES) this.pendingOf(q).length = 0;
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('MemoryQueue is closed');
  }

  private enqueue(queue: QueueName, message: StoredMessage): void {
    this.pendingOf(queue).push(message);
    this.scheduleDispatch(queue);
  }

  /** Dispatch runs on a later macrotask, never inside publish: handlers must not run in the publisher's stack. */
  private scheduleDispatch(queue: QueueName): void {
    if (this.closing || this.dispatchScheduled.has(queue)) return;
    this.dispatchScheduled.add(queue);
    setImmediate(() => {
      this.dispatchScheduled.delete(queue);
      this.dispatch(queue);
    });
  }

  private dispatch(queue: QueueName): void {
    const pending = this.pendingOf(queue);
    while (pending.length > 0 && !this.closing) {
      const consumer = this.nextConsumerWithRoom(queue);
      if (!consumer) return;
      const stored = pending.shift();
      if (stored) this.deliver(consumer, stored);
    }
  }

  private nextConsumerWithRoom(queue: QueueName): ConsumerState | undefined {
    const list = this.consumersOf(queue);
    const start = this.cursor.get(queue) ?? 0;
    for (let i = 0; i < list.length; i++) {
      const index = (start + i) % list.length;
      const candidate = list[index];
      if (candidate.active && candidate.inFlight.size < candidate.prefetch) {
        this.cursor.set(queue, index + 1);
        return candidate;
      }
    }
    return undefined;
  }

  private deliver(consumer: ConsumerState, stored: StoredMessage): void {
    const handling = new Handling(stored);
    consumer.inFlight.add(handling);
    handling.done = this.runHandler(consumer, handling);
  }

  private async runHandler(consumer: ConsumerState, handling: Handling): Promise<void> {
    const { stored } = handling;
    let failure: { error: unknown } | undefined;
    try {
      await consumer.handler(toDelivery(consumer.queue, stored));
    } catch (error) {
      failure = { error };
    }
    consumer.inFlight.delete(handling);
    // An abandoned message is already back on the queue: its late outcome must count for nothing,
    // as an ack on a closed RabbitMQ channel does.
    if (!handling.abandoned && failure) this.onHandlerFailed(consumer.queue, stored, failure.error);
    if (consumer.active) this.scheduleDispatch(consumer.queue);
  }

  private onHandlerFailed(queue: QueueName, stored: StoredMessage, error: unknown): void {
    const reason = deadLetterReason(error);
    if (queue === QueueName.DeadLetter) {
      // The dead-letter queue is the end of the line: sending it back there would loop forever.
      this.logger.error(`Dropping dead-letter message whose handler failed: ${reason}`);
      return;
    }
    this.enqueue(QueueName.DeadLetter, {
      body: stored.body,
      redelivered: false,
      deadLetterReason: recordedReason(reason),
      originalQueue: queue,
    });
  }

  private async cancelConsumer(state: ConsumerState): Promise<void> {
    state.stopped ??= (async () => {
      this.detach(state);
      // Nothing is buffered on the consumer side (a message is taken off the queue only when its
      // handler starts), so there is nothing to hand back: just let the running handlers settle.
      await Promise.all([...state.inFlight].map((h) => h.done));
    })();
    return state.stopped;
  }

  private async abortConsumer(state: ConsumerState): Promise<void> {
    if (state.stopped) return state.stopped;
    this.detach(state);
    const unsettled = [...state.inFlight].filter((h) => !h.abandoned);
    for (const h of unsettled) h.abandoned = true;
    // Back to the head in their original order, flagged as a broker flags a requeued message.
    this.pendingOf(state.queue).unshift(...unsettled.map((h) => ({ ...h.stored, redelivered: true })));
    this.scheduleDispatch(state.queue);
    state.stopped = Promise.resolve();
    return state.stopped;
  }

  private detach(state: ConsumerState): void {
    state.active = false;
    const list = this.consumersOf(state.queue);
    const index = list.indexOf(state);
    if (index >= 0) list.splice(index, 1);
  }

  private pendingOf(queue: QueueName): StoredMessage[] {
    const list = this.pending.get(queue);
    if (!list) throw new Error(`Unknown queue: ${String(queue)}`);
    return list;
  }

  private consumersOf(queue: QueueName): ConsumerState[] {
    const list = this.consumers.get(queue);
    if (!list) throw new Error(`Unknown queue: ${String(queue)}`);
    return list;
  }
}


interface StoredMessage {
  /** JSON text, as a broker would hold it. */
  readonly body: string;
  readonly redelivered: boolean;
  readonly deadLetterReason?: string;
  readonly originalQueue?: QueueName;
}

interface ConsumerState {
  readonly queue: QueueName;
  readonly handler: DeliveryHandler;
  readonly prefetch: number;
  active: boolean;
  readonly inFlight: Set<Handling>;
  stopped: Promise<void> | undefined;
}

class Handling {
  abandoned = false;
  done: Promise<void> = Promise.resolve();
  constructor(readonly stored: StoredMessage) {}
}

function serialise(message: QueueMessage): string {
  return JSON.stringify(message);
}

function toDelivery(queue: QueueName, stored: StoredMessage): Delivery {
  const message = JSON.parse(stored.body) as QueueMessage;
  return {
    queue,
    message,
    redelivered: stored.redelivered,
    ...(stored.deadLetterReason !== undefined && { deadLetterReason: stored.deadLetterReason }),
    ...(stored.originalQueue !== undefined && { originalQueue: stored.originalQueue }),
  };
}
