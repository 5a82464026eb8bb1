import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { MetricsRoute } from '../auth/auth-policy';
import { KaryaMetrics } from './karya-metrics';

/**
 * Prometheus scrape endpoint. Kept out of the OpenAPI document: it is not part of Karya's v1 API, and
 * the committed openapi/karya-v1.json must not change with the metrics setting.
 */
@ApiExcludeController()
// Open unless application.auth.protectMetrics (then any valid key).
@MetricsRoute()
@Controller()
export class MetricsController {
  constructor(private readonly metrics: KaryaMetrics) {}

  @Get('metrics')
  async scrape(@Res({ passthrough: true }) res: Response): Promise<string> {
    // The registry's own type carries the exposition format version Prometheus parses by.
    res.setHeader('Content-Type', this.metrics.contentType);
    return this.metrics.text();
  }
}
