import { Module } from '@nestjs/common';
import { HookPublisher } from './hook-publisher';

/**
 * Firing hooks, apart from running them: HookPublisher needs only the queue, so the scheduler (which fires
 * ON_FAILURE for tasks whose lease ran out with no attempt left) imports this without building the action
 * plugins that HooksModule runs hooks with.
 */
@Module({
  providers: [HookPublisher],
  exports: [HookPublisher],
})
export class HookPublisherModule {}
