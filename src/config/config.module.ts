import { DynamicModule, Global, Module } from '@nestjs/common';
import {
  AuthConfig,
  ExecutorConfig,
  KaryaConfig,
  LockConfig,
  ProvidersConfig,
  QueueConfig,
  RepoConfig,
  SchedulerConfig,
  ServerConfig,
} from './karya-config';

/**
 * Hands the already-validated config to DI, one token per section, so a class injects only the
 * section it uses. Global because every module reads some of it (design: config and connectors only).
 */
@Global()
@Module({})
export class KaryaConfigModule {
  static forRoot(config: KaryaConfig): DynamicModule {
    const providers = [
      { provide: KaryaConfig, useValue: config },
      { provide: ProvidersConfig, useValue: config.providers },
      { provide: RepoConfig, useValue: config.providers.repo },
      { provide: LockConfig, useValue: config.providers.lock },
      { provide: QueueConfig, useValue: config.providers.queue },
      { provide: ServerConfig, useValue: config.server },
      { provide: AuthConfig, useValue: config.server.auth },
      { provide: SchedulerConfig, useValue: config.scheduler },
      { provide: ExecutorConfig, useValue: config.executor },
    ];
    return { module: KaryaConfigModule, providers, exports: providers.map((p) => p.provide) };
  }
}
