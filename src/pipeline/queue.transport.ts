import { CustomTransportStrategy, Server } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { Consumer, Delivery, QueueName, TaskQueue } from '../connectors/queue/queue.port';

/**
 * A Nest microservice transport over Karya's queue port, so @EventPattern handlers run the same on
 * RabbitMQ and on the embedded queue. The pattern is the queue name. A handler that resolves acks its
 * message; one that rejects has it dead-lettered with the error message as the reason (queue port
 * contract), never requeued.
 */
export class QueueTransport extends Server implements CustomTransportStrategy {
  private readonly consumers: Consumer[] = [];

  constructor(
    private readonly queue: TaskQueue,
    private readonly queues: { name: QueueName; prefetch: number }[],
  ) {
    super();
  }

  async listen(callback: (...optionalParams: unknown[]) => void): Promise<void> {
    try {
      for (const { name, prefetch } of this.queues) {
        this.consumers.push(await this.queue.consume(name, (d) => this.dispatch(d), { prefetch }));
      }
      callback();
    } catch (e) {
      callback(e);
    }
  }

  private async dispatch(delivery: Delivery): Promise<void> {
    const handler = this.getHandlerByPattern(delivery.queue);
    if (!handler) throw new Error(`No handler for queue ${delivery.queue}`);
    await lastValueFrom(this.transformToObservable(await handler(delivery.message, delivery)), { defaultValue: undefined });
  }

  /** Stops consuming; lets running handlers settle (the queue port's cancel waits for them). */
  async close(): Promise<void> {
    await Promise.all(this.consumers.splice(0).map((c) => c.cancel()));
  }

  on(): void {
    // The queue port reports connection trouble itself; there are no transport events to subscribe to.
  }

  unwrap<T>(): T {
    return this.queue as unknown as T;
  }
}
