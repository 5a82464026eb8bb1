import { Controller, UseFilters } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { QueueName } from '../../connectors/queue/queue.port';
import { PassThroughRpcFilter } from '../../pipeline/pass-through-rpc.filter';
import { ExecutorService } from './executor.service';

/** Messages of the executor queue, delivered by QueueTransport (pattern = queue name). */
@Controller()
@UseFilters(new PassThroughRpcFilter())
export class ExecutorController {
  constructor(private readonly executor: ExecutorService) {}

  @EventPattern(QueueName.Executor)
  handle(@Payload() message: Record<string, unknown>): Promise<void> {
    return this.executor.handleDelivery(message);
  }

  /** Batches travel on their own queue only for the prefetch (executorPrefetch); they are handled alike. */
  @EventPattern(QueueName.ExecutorBatch)
  handleBatch(@Payload() message: Record<string, unknown>): Promise<void> {
    return this.executor.handleDelivery(message);
  }
}
