import { Module } from '@nestjs/common';
import { PlanFiresController, StatsController } from './stats.controller';
import { StatsRepository } from './stats.repository';

/** The dashboard's API (issue 14): GET /v1/stats, /v1/whoami and /v1/plan/{plan_id}/fires. Server role. */
@Module({ controllers: [StatsController, PlanFiresController], providers: [StatsRepository] })
export class StatsModule {}
