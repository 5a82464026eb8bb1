import { Controller, Get, Res, ServiceUnavailableException } from '@nestjs/common';
import type { Response } from 'express';
import { ApiExcludeEndpoint, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth-policy';
import { ProvidersConfig } from '../config/karya-config';
import { DistributedLock } from '../connectors/lock/lock.port';
import { TaskQueue } from '../connectors/queue/queue.port';

/** A probe slower than this counts as down: a health check must answer while its target hangs. */
const PROBE_TIMEOUT_MS = 2000;

@ApiTags('health')
// Open in every auth mode: load balancers and orchestrators probe it without credentials.
@Public()
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly providers: ProvidersConfig,
    private readonly dataSource: DataSource,
    private readonly lock: DistributedLock,
    private readonly queue: TaskQueue,
  ) {}

  /** Liveness, kept from the original: `{}`. */
  @Get()
  @ApiExcludeEndpoint()
  root(): Record<string, never> {
    return {};
  }

  /** Readiness: one indicator per configured connector, each probing the real backend. */
  @Get('health')
  @HealthCheck()
  @ApiOkResponse({ description: 'Every connector answers' })
  async check(@Res({ passthrough: true }) res: Response): Promise<HealthCheckResult> {
    try {
      return await this.probe();
    } catch (e) {
      // Terminus reports "down" as a 503 exception; answer it here, as JSON, rather than letting the API's
      // plain-text error filter flatten the per-connector details that monitoring reads.
      if (e instanceof ServiceUnavailableException) {
        res.status(503);
        return e.getResponse() as HealthCheckResult;
      }
      throw e;
    }
  }

  private probe(): Promise<HealthCheckResult> {
    const { repo, lock, queue } = this.providers;
    return this.health.check([
      () =>
        this.indicators
          .check('repo')
          .attempt(async () => {
            await this.dataSource.query('SELECT 1');
            return { provider: repo.provider };
          })
          .withTimeout(PROBE_TIMEOUT_MS),
      () =>
        this.indicators
          .check('lock')
          .attempt(async () => {
            await this.lock.ping();
            return { provider: lock.provider };
          })
          .withTimeout(PROBE_TIMEOUT_MS),
      () =>
        this.indicators
          .check('queue')
          .attempt(async () => {
            await this.queue.ping();
            return { provider: queue.provider };
          })
          .withTimeout(PROBE_TIMEOUT_MS),
    ]);
  }
}
