import { Module } from '@nestjs/common';
import { PlanStoreModule } from '../modules/plans/plan-store.module';
import { ActionRegistry } from './action-registry';

/** The action plugins this process has enabled, shared by the executor (task actions) and hooks. */
@Module({
  imports: [PlanStoreModule],
  providers: [ActionRegistry],
  exports: [ActionRegistry],
})
export class ActionsModule {}
