import { DynamicModule, Global, Module } from '@nestjs/common';
import { KaryaConfig } from '../config/karya-config';
import { Role } from '../role/role';
import { KaryaMetrics, NoopKaryaMetrics } from './karya-metrics';
import { MetricsController } from './metrics.controller';
import { PrometheusKaryaMetrics } from './prometheus-karya-metrics';

export interface MetricsModuleOptions {
  enabled: boolean;
  /** Labels added to every series of this process's registry (e.g. `{ role: 'scheduler' }`). */
  defaultLabels?: Record<string, string>;
}

/**
 * Global so the scheduler and executor modules inject KaryaMetrics without importing this module.
 * Disabled, it still provides KaryaMetrics (a no-op) but mounts no controller: /metrics is a 404.
 */
@Global()
@Module({})
export class MetricsModule {
  static forRoot(options: MetricsModuleOptions): DynamicModule {
    const { enabled, defaultLabels } = options;
    return {
      module: MetricsModule,
      // A factory, so Nest's preview mode (the OpenAPI build) creates no registry.
      providers: [
        {
          provide: KaryaMetrics,
          useFactory: (): KaryaMetrics => (enabled ? new PrometheusKaryaMetrics(defaultLabels) : new NoopKaryaMetrics()),
        },
      ],
      controllers: enabled ? [MetricsController] : [],
      exports: [KaryaMetrics],
    };
  }
}

/** The part of KaryaConfig that decides it. */
export type MetricsSwitches = Pick<KaryaConfig, 'roles'> & {
  [R in 'server' | 'scheduler' | 'executor']: Pick<KaryaConfig[R], 'metricsEnabled'>;
};

/**
 * Each role has its own `metricsEnabled` (as in the original), but a process has one registry and one
 * /metrics: it is on when any role this process runs asks for it.
 */
export function metricsEnabledFor(config: MetricsSwitches): boolean {
  const byRole: Record<Role, boolean> = {
    [Role.Server]: config.server.metricsEnabled,
    [Role.Scheduler]: config.scheduler.metricsEnabled,
    [Role.Executor]: config.executor.metricsEnabled,
  };
  return [...config.roles].some((role) => byRole[role]);
}
