import { Controller, UseFilters } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { QueueName } from '../../connectors/queue/queue.port';
import { PassThroughRpcFilter } from '../../pipeline/pass-through-rpc.filter';
import { HooksService } from './hooks.service';
import { traceHook } from '../../tracing/spans';
import { tracingOn } from '../../tracing/tracing';

/** Messages of the hooks queue, delivered by QueueTransport in processes with the executor role. */
@Controller()
@UseFilters(new PassThroughRpcFilter())
export class HooksController {
  constructor(private readonly hooks: HooksService) {}

  @EventPattern(QueueName.Hooks)
  handle(@Payload() message: Record<string, unknown>): Promise<void> {
    // Branching here: with tracing off, no closure and no extra async frame per hook message.
    return tracingOn() ? traceHook(message, () => this.hooks.handle(message)) : this.hooks.handle(message);
  }
}
