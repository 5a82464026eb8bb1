import { Module } from '@nestjs/common';
import { DashboardController } from './dashboard.controller';
import { DASHBOARD_DIR, defaultDashboardDir } from './dashboard-files';

/** The built-in web dashboard at /ui (issue 14): static files only; the page talks to /v1. Server role. */
@Module({
  controllers: [DashboardController],
  providers: [{ provide: DASHBOARD_DIR, useFactory: defaultDashboardDir }],
})
export class DashboardModule {}
