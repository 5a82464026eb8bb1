import { Module } from '@nestjs/common';
import { PlanStoreModule } from '../plans/plan-store.module';
import { ActionRegistry } from './action-registry';
import { ExecutorController } from './executor.controller';
import { ExecutorService } from './executor.service';
import { TaskResultsRepository } from './task-results.repository';

/**
 * Consumes the executor queue (through QueueTransport, connected in app.factory.ts for this role) and runs
 * actions through their plugins. Executor role only.
 */
@Module({
  imports: [PlanStoreModule],
  controllers: [ExecutorController],
  providers: [ExecutorService, TaskResultsRepository, ActionRegistry],
})
export class ExecutorModule {}
