import { Module } from '@nestjs/common';

/**
 * Claims due tasks and dispatches them to the executor queue. Scheduler role only; its claim loop
 * (started from onApplicationBootstrap) arrives with the pipeline issue.
 */
@Module({})
export class SchedulerModule {}
