import { Module } from '@nestjs/common';
import { ActionsModule } from '../../actions/actions.module';
import { HookPublisherModule } from '../hooks/hook-publisher.module';
import { TaskStatsRecorderModule } from '../../stats/task-stats-recorder.module';
import { ExecutorController } from './executor.controller';
import { ExecutorService } from './executor.service';
import { TaskResultsRepository } from './task-results.repository';

/**
 * Consumes the executor queue (through QueueTransport, connected in app.factory.ts for this role) and runs
 * actions through their plugins. Executor role only.
 */
@Module({
  imports: [ActionsModule, HookPublisherModule, TaskStatsRecorderModule],
  controllers: [ExecutorController],
  providers: [ExecutorService, TaskResultsRepository],
})
export class ExecutorModule {}
