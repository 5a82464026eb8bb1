import { Module } from '@nestjs/common';
import { HookPublisherModule } from '../hooks/hook-publisher.module';
import { SchedulerService } from './scheduler.service';
import { TaskClaimsRepository } from './task-claims.repository';

/**
 * Claims due tasks in batches and dispatches them to the executor queue at their due time.
 * Scheduler role only; its loops start in SchedulerService.onApplicationBootstrap.
 */
@Module({
  imports: [HookPublisherModule],
  providers: [SchedulerService, TaskClaimsRepository],
})
export class SchedulerModule {}
