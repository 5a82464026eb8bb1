import { Module } from '@nestjs/common';
import { ActionsModule } from '../../actions/actions.module';
import { HookPublisherModule } from './hook-publisher.module';
import { HooksController } from './hooks.controller';
import { HooksService } from './hooks.service';
import { HookRetriesRepository } from './hook-retries.repository';
import { HookRetryRelay } from './hook-retry.relay';

/**
 * Hooks (ON_FAILURE / ON_COMPLETION). The executor and the scheduler fire them through HookPublisher
 * (HookPublisherModule); HooksController runs them from the hooks queue, which only processes with the
 * executor role consume (app.factory.ts), and HookRetryRelay moves tries whose backoff is over back onto
 * that queue. Executor role only: the server's hook rules are part of plan validation (plans DTOs), so this
 * module (its plugins, and the relay's loop) has nothing to do there.
 */
@Module({
  imports: [ActionsModule, HookPublisherModule],
  controllers: [HooksController],
  providers: [HooksService, HookRetriesRepository, HookRetryRelay],
})
export class HooksModule {}
