import { Module } from '@nestjs/common';

/**
 * Plan submission, listing, update and cancel (`/v1/plan`). Server role only.
 * Its endpoints arrive with the v1 API issue; the module exists now so role composition is real.
 */
@Module({})
export class PlansModule {}
