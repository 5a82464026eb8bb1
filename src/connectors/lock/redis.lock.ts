import { Logger } from '@nestjs/common';
import Redis, { Cluster } from 'ioredis';
import Redlock, { ExecutionError, Lock, ResourceLockedError } from 'redlock';
import { LockConfig } from '../../config/karya-config';
import { DistributedLock, LockLease, LockOptions } from './lock.port';
import { createRedisClient } from './redis-client';

/** How long `ping()` may take in total, so /health answers promptly while Redis is down. */
const PING_TIMEOUT_MS = 1500;
/** A graceful QUIT must not hold up shutdown when Redis is unreachable. */
const QUIT_TIMEOUT_MS = 2000;
/** Bounds of redlock's retry interval: short enough that a released key is picked up promptly, long
 * enough that a long wait does not hammer Redis. */
const MIN_RETRY_DELAY_MS = 10;
const MAX_RETRY_DELAY_MS = 100;
/** Least time `acquire` gives a connection that is not up yet: waitTime budgets contention, and a
 * waitTime of 0 ("one try") must not fail merely because the adapter was created a moment ago. */
const CONNECT_GRACE_MS = 1000;

class RedisLease implements LockLease {
  /**
   * Snapshot, because redlock zeroes `Lock.expiration` on release. Redlock counts from the start of the
   * `acquire` call (waiting included), so this errs early, never late: safe for a holder checking it.
   */
  readonly expiresAt: number;
  /** ES-private so that inspecting or logging a lease does not dump the redlock instance and its clients. */
  readonly #lock: Lock;

  constructor(
    readonly key: string,
    lock: Lock,
  ) {
    this.#lock = lock;
    this.expiresAt = lock.expiration;
  }

  static lockOf(lease: RedisLease): Lock {
    return lease.#lock;
  }
}

interface ReadyWaiter {
  /** Resolves the wait, or rejects it with `error`; also disarms its timer. */
  settle(error?: Error): void;
}

/**
 * Redis-backed lock: redlock's token-checked SET PX / compare-and-delete scripts over one ioredis
 * connection (single node) or an ioredis Cluster.
 *
 * The offline queue is off: while Redis is down, commands fail at once instead of piling up until
 * ioredis gives up on them, so `ping()` and `acquire()` keep to their deadlines; `whenReady` covers the
 * moments (boot, reconnect) when the connection is merely not up yet. A Redis failure makes `acquire`
 * throw rather than resolve null: null means "someone else holds it", and an outage is not that.
 * ioredis's default retryStrategy keeps reconnecting forever, so the adapter recovers by itself after
 * a Redis restart.
 */
export class RedisLock extends DistributedLock {
  private readonly logger = new Logger(RedisLock.name);
  private readonly client: Redis | Cluster;
  private readonly redlock: Redlock;
  private readonly waitTime: number;
  private readonly leaseTime: number;
  private lastError: string | undefined;
  /** Logs the first error of an outage only: ioredis reports every failed reconnect, up to one per 2 s. */
  private degraded = false;
  private closed = false;
  /** One 'ready' listener serves every caller waiting for the connection, however many queue up in an outage. */
  private readonly readyWaiters = new Set<ReadyWaiter>();

  constructor(
    config: LockConfig,
    private readonly keyPrefix = 'karya:lock:',
  ) {
    super();
    validateTimes(config.waitTime, config.leaseTime);
    this.waitTime = config.waitTime;
    this.leaseTime = config.leaseTime;
    this.client = createRedisClient(config);
    this.client.on('error', (error: Error) => {
      this.lastError = error.message;
      if (this.degraded || this.closed) return;
      this.degraded = true;
      this.logger.warn(`Redis lock store error, reconnecting in the background: ${error.message}`);
    });
    this.client.on('ready', () => {
      this.lastError = undefined;
      if (this.degraded) this.logger.log('Redis lock store connection restored');
      this.degraded = false;
      for (const waiter of this.readyWaiters) waiter.settle();
      this.readyWaiters.clear();
    });
    // No retries by default: acquire derives its own from each call's wait time, and release must not retry.
    this.redlock = new Redlock([this.client], { retryCount: 0, retryJitter: 0 });
  }

  async acquire(key: string, options?: LockOptions): Promise<LockLease | null> {
    this.assertOpen();
    const waitTime = options?.waitTime ?? this.waitTime;
    const leaseTime = options?.leaseTime ?? this.leaseTime;
    validateTimes(waitTime, leaseTime);

    const start = Date.now();
    await this.whenReady(Math.max(waitTime, CONNECT_GRACE_MS), key);
    const remaining = Math.max(0, waitTime - (Date.now() - start));
    const retryDelay = Math.min(MAX_RETRY_DELAY_MS, Math.max(MIN_RETRY_DELAY_MS, Math.floor(remaining / 10)));
    try {
      const lock = await this.redlock.acquire([this.keyPrefix + key], Math.ceil(leaseTime), {
        retryCount: Math.ceil(remaining / retryDelay),
        retryDelay,
        // Desynchronises waiters that started together without stretching the total wait on average.
        retryJitter: Math.floor(retryDelay / 4),
      });
      return new RedisLease(key, lock);
    } catch (error) {
      if (!(error instanceof ExecutionError)) throw error;
      const cause = await lastFailure(error);
      // Contention is the expected outcome and is reported as null; a Redis failure is not contention,
      // and calling it "try again later" would hide an outage from the caller.
      if (!cause) return null;
      throw this.unavailable(key, cause);
    }
  }

  async release(lease: LockLease): Promise<void> {
    if (!(lease instanceof RedisLease)) throw new TypeError('RedisLock.release: lease was not issued by a RedisLock');
    try {
      // No retries: a lease already gone (expired or taken over) makes redlock retry the whole window
      // and then throw, which is exactly the no-op case.
      await this.redlock.release(RedisLease.lockOf(lease), { retryCount: 0 });
    } catch (error) {
      if (!(error instanceof ExecutionError)) throw error;
      const cause = await lastFailure(error);
      if (!cause) return;
      // Not rethrown: the work under the lock is done, and failing here (inside `using`'s finally) would
      // report it as failed; the key lapses by itself after leaseTime.
      this.logger.warn(`Could not release lock ${lease.key}, it will lapse by itself: ${cause.message}`);
    }
  }

  async ping(): Promise<void> {
    this.assertOpen();
    const start = Date.now();
    await this.whenReady(PING_TIMEOUT_MS);
    await withTimeout(this.client.ping(), PING_TIMEOUT_MS - (Date.now() - start), 'Redis PING timed out');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.readyWaiters) waiter.settle(new Error('RedisLock is closed'));
    if (this.client.status === 'ready') {
      try {
        await withTimeout(this.client.quit(), QUIT_TIMEOUT_MS, 'Redis QUIT timed out');
        return;
      } catch {
        // Fall through: the connection is unusable anyway, drop it.
      }
    }
    // QUIT cannot be sent without a connection (the offline queue is off), and disconnect() also stops reconnecting.
    this.client.disconnect();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('RedisLock is closed');
  }

  /** Waits (up to `timeoutMs`) for a usable connection instead of failing on a connection still being set up. */
  private whenReady(timeoutMs: number, key?: string): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    if (this.client.status === 'end' || timeoutMs <= 0) return Promise.reject(this.unavailable(key));
    return new Promise<void>((resolve, reject) => {
      const waiter: ReadyWaiter = {
        settle: (error) => {
          clearTimeout(timer);
          this.readyWaiters.delete(waiter);
          if (error) reject(error);
          else resolve();
        },
      };
      const timer = setTimeout(() => waiter.settle(this.unavailable(key)), timeoutMs);
      this.readyWaiters.add(waiter);
    });
  }

  private unavailable(key?: string, cause?: Error): Error {
    const detail = cause?.message ?? this.lastError ?? `connection status ${this.client.status}`;
    const what = key === undefined ? 'Redis lock store unavailable' : `Redis lock store unavailable while locking ${key}`;
    return new Error(`${what}: ${detail}`, cause ? { cause } : undefined);
  }
}

/**
 * Redlock reports both "someone else holds it" and "Redis did not answer" as one ExecutionError; the
 * votes of its last attempt tell them apart. Returns the failure when it was not plain contention.
 */
async function lastFailure(error: ExecutionError): Promise<Error | undefined> {
  const stats = await error.attempts[error.attempts.length - 1];
  if (!stats) return error;
  return [...stats.votesAgainst.values()].find((vote) => !(vote instanceof ResourceLockedError));
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), Math.max(0, ms));
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function validateTimes(waitTime: number, leaseTime: number): void {
  if (!Number.isFinite(waitTime) || waitTime < 0) throw new RangeError(`waitTime must be a finite number >= 0, got ${waitTime}`);
  if (!Number.isFinite(leaseTime) || leaseTime <= 0) throw new RangeError(`leaseTime must be a finite number > 0, got ${leaseTime}`);
}
