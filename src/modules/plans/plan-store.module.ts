import { Module } from '@nestjs/common';
import { PlansRepository } from './plans.repository';
import { PlansService } from './plans.service';

/**
 * Plan creation and lookup without HTTP: the server's PlansModule puts the API on top, and the executor's
 * chained plugin uses it to create child plans (the executor role must not expose /v1 routes).
 */
@Module({
  providers: [PlansService, PlansRepository],
  exports: [PlansService],
})
export class PlanStoreModule {}
