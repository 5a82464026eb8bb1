import { Module } from '@nestjs/common';
import { PlanStoreModule } from './plan-store.module';
import { PlansController } from './plans.controller';

/** Plan submission, listing, update and cancel (`/v1/plan`). Server role only. */
@Module({
  imports: [PlanStoreModule],
  controllers: [PlansController],
})
export class PlansModule {}
