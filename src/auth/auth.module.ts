import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { RateLimitModule } from '../rate-limit/rate-limit.module';
import { ApiGuard } from './api.guard';
import { ApiKeysService } from './api-keys.service';

/**
 * Authentication for every role: ApiGuard guards every HTTP route (the scheduler's and executor's /metrics
 * too), so it lives beside the connectors rather than in the server role's modules. Key management
 * endpoints are the server role's (api-keys.module.ts).
 */
@Global()
@Module({
  imports: [RateLimitModule],
  providers: [ApiKeysService, { provide: APP_GUARD, useClass: ApiGuard }],
  exports: [ApiKeysService],
})
export class AuthModule {}
