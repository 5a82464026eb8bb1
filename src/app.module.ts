import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from './auth/auth.module';
import { KaryaConfigModule } from './config/config.module';
import { KaryaConfig } from './config/karya-config';
import { LockModule } from './connectors/lock/lock.module';
import { QueueModule } from './connectors/queue/queue.module';
import { RepoModule } from './connectors/repo/repo.module';
import { HealthModule } from './health/health.module';
import { metricsEnabledFor, MetricsModule } from './metrics/metrics.module';
import { modulesForRoles } from './role/role-modules';

/** Root module: config + connectors + health for every role, then the role's feature modules. */
@Module({})
export class AppModule {
  static forConfig(config: KaryaConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        KaryaConfigModule.forRoot(config),
        RepoModule.forRoot(config.providers.repo),
        LockModule.forRoot(config.providers.lock),
        QueueModule.forRoot(config.providers.queue),
        AuthModule,
        HealthModule,
        MetricsModule.forRoot({ enabled: metricsEnabledFor(config) }),
        ...modulesForRoles(config.roles),
      ],
    };
  }
}
