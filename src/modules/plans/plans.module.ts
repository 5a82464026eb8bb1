import { Module } from '@nestjs/common';
import { PlansController } from './plans.controller';
import { PlansRepository } from './plans.repository';
import { PlansService } from './plans.service';

/** Plan submission, listing, update and cancel (`/v1/plan`). Server role only. */
@Module({
  controllers: [PlansController],
  providers: [PlansService, PlansRepository],
})
export class PlansModule {}
