import { DynamicModule, Global, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { LockConfig } from '../../config/karya-config';
import { DistributedLock } from './lock.port';
import { MemoryLock } from './memory.lock';
import { RedisLock } from './redis.lock';

/** Closes the adapter when Nest shuts down, so a Redis connection never keeps the process alive. */
@Injectable()
class LockCloser implements OnApplicationShutdown {
  constructor(private readonly lock: DistributedLock) {}

  async onApplicationShutdown(): Promise<void> {
    await this.lock.close();
  }
}

@Global()
@Module({})
export class LockModule {
  static forRoot(config: LockConfig): DynamicModule {
    // Resolved here rather than in the factory so a bad provider fails at module assembly, and never
    // falls back to the in-memory lock, which would silently drop mutual exclusion across instances.
    const create = adapterFactory(config);
    return {
      module: LockModule,
      providers: [{ provide: DistributedLock, useFactory: create }, LockCloser],
      exports: [DistributedLock],
    };
  }
}

function adapterFactory(config: LockConfig): () => DistributedLock {
  // Widened so the check still runs when the value comes from untyped input (YAML, env, tests).
  const provider: string = config.provider;
  switch (provider) {
    case 'redis':
      return () => new RedisLock(config);
    case 'memory':
      return () => new MemoryLock(config);
    default:
      throw new Error(`Unknown lock provider "${provider}" (expected "redis" or "memory")`);
  }
}
