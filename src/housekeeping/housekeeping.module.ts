import { Module } from '@nestjs/common';
import { Housekeeper } from './housekeeper.service';
import { HousekeepingRepository } from './housekeeping.repository';

/**
 * Retention (scheduler role): deletes finished history older than scheduler.yml's `retention`. Its loop
 * starts in Housekeeper.onApplicationBootstrap.
 */
@Module({
  providers: [Housekeeper, HousekeepingRepository],
})
export class HousekeepingModule {}
