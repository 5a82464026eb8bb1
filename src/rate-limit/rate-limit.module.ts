import { Inject, Injectable, Logger, Module, OnApplicationShutdown } from '@nestjs/common';
import { ThrottlerStorage, ThrottlerStorageService } from '@nestjs/throttler';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import Redis, { Cluster } from 'ioredis';
import { LockConfig, ServerConfig } from '../config/karya-config';
import { createRedisClient } from '../connectors/lock/redis-client';
import { RateLimiter } from './rate-limiter';

/** The connection behind the shared storage; null when the counters live in memory. */
const RATE_LIMIT_REDIS = Symbol('karya.rate-limit.redis');

/**
 * A counting call waits at most this long for Redis, then goes through unlimited (rate-limiter.ts). The
 * offline queue is on (unlike the lock's) so that calls arriving while the connection is still being set
 * up, at boot or after a reconnect, are counted instead of failing at once.
 */
const COMMAND_TIMEOUT_MS = 500;
const QUIT_TIMEOUT_MS = 2000;

function redisClient(lock: LockConfig, server: ServerConfig): Redis | Cluster | null {
  const { requestsPerMinute, submissionsPerMinute } = server.rateLimit;
  // Widened so the check still runs when the value comes from untyped input (YAML, env, tests).
  const provider: string = lock.provider;
  switch (provider) {
    case 'redis':
      // No connection for limits that are off (none mode by default).
      if (requestsPerMinute === 0 && submissionsPerMinute === 0) return null;
      return quiet(createRedisClient(lock, { enableOfflineQueue: true, commandTimeout: COMMAND_TIMEOUT_MS }));
    case 'memory':
      // An embedded lock means one process (config.loader.ts refuses split roles on it): memory is shared enough.
      return null;
    default:
      // Never fall back to memory silently: each process would then count alone, multiplying the limit.
      throw new Error(`Unknown lock provider "${provider}" (expected "redis" or "memory")`);
  }
}

/**
 * Without a listener ioredis prints every failed reconnect to stderr; RateLimiter already warns (at most
 * once a minute) when a count fails, and the lock reports the outage of the same Redis.
 */
function quiet(client: Redis | Cluster): Redis | Cluster {
  client.on('error', () => undefined);
  return client;
}

function redisStorage(client: Redis | Cluster): ThrottlerStorage {
  // Given a client, the library never disconnects it: RateLimitRedisCloser does. Two calls because the
  // constructor is overloaded per client type rather than declared for the union.
  return client instanceof Cluster ? new ThrottlerStorageRedisService(client) : new ThrottlerStorageRedisService(client);
}

/** Closes the storage's own Redis connection, so it never keeps the process alive after shutdown. */
@Injectable()
class RateLimitRedisCloser implements OnApplicationShutdown {
  private readonly logger = new Logger('RateLimiter');

  constructor(@Inject(RATE_LIMIT_REDIS) private readonly redis: Redis | Cluster | null) {}

  async onApplicationShutdown(): Promise<void> {
    const redis = this.redis;
    if (!redis) return;
    if (redis.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          redis.quit(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('Redis QUIT timed out')), QUIT_TIMEOUT_MS);
          }),
        ]);
        return;
      } catch (error) {
        this.logger.warn(`Closing the rate-limit Redis connection: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        clearTimeout(timer);
      }
    }
    redis.disconnect();
  }
}

/**
 * RateLimiter with the right @nestjs/throttler storage: @nest-lab/throttler-storage-redis (one Lua
 * script per count, atomic across processes) on the lock's Redis, or throttler's in-memory storage.
 */
@Module({
  providers: [
    { provide: RATE_LIMIT_REDIS, useFactory: redisClient, inject: [LockConfig, ServerConfig] },
    {
      provide: ThrottlerStorage,
      useFactory: (redis: Redis | Cluster | null): ThrottlerStorage => (redis ? redisStorage(redis) : new ThrottlerStorageService()),
      inject: [RATE_LIMIT_REDIS],
    },
    RateLimitRedisCloser,
    RateLimiter,
  ],
  exports: [RateLimiter],
})
export class RateLimitModule {}
