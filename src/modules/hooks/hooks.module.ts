import { Module } from '@nestjs/common';
import { ActionsModule } from '../../actions/actions.module';
import { HookPublisher } from './hook-publisher';
import { HooksController } from './hooks.controller';
import { HooksService } from './hooks.service';

/**
 * Hooks (ON_FAILURE / ON_COMPLETION). The executor fires them through HookPublisher; HooksController runs
 * them from the hooks queue, which only processes with the executor role consume (app.factory.ts). In the
 * server role the hook rules are part of plan validation (plans DTOs), and nothing here receives messages.
 */
@Module({
  imports: [ActionsModule],
  controllers: [HooksController],
  providers: [HooksService, HookPublisher],
  exports: [HookPublisher],
})
export class HooksModule {}
