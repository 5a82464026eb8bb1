/**
 * The distributed-lock port. Used as its own DI token (an abstract class survives compilation,
 * an interface does not). Keys are plain strings, by convention a plan or task UUID, as in the original.
 *
 * Semantics every adapter must honour (proved by lock.contract.ts against each adapter):
 * - at most one holder of a key at a time;
 * - `acquire` waits up to `waitTime` ms and then resolves `null` (never throws for contention);
 * - a lock not released within `leaseTime` ms expires by itself, so a crashed holder cannot wedge a plan;
 * - `release` of a lease that has already expired or been taken over is a no-op, never frees another holder.
 */
export interface LockLease {
  readonly key: string;
  /** Epoch ms at which the lease lapses unless released before. */
  readonly expiresAt: number;
}

export interface LockOptions {
  /** Overrides the configured wait time for this call (ms). */
  waitTime?: number;
  /** Overrides the configured lease time for this call (ms). */
  leaseTime?: number;
}

export class LockUnavailableError extends Error {
  constructor(readonly key: string) {
    super(`Unable to acquire lock on --- ${key} | Try again later`);
    this.name = 'LockUnavailableError';
  }
}

export abstract class DistributedLock {
  abstract acquire(key: string, options?: LockOptions): Promise<LockLease | null>;
  abstract release(lease: LockLease): Promise<void>;
  /** Cheap liveness probe for /health: resolves when the backing store answers, rejects otherwise. */
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;

  /** Runs `fn` while holding `key`; throws LockUnavailableError when the lock cannot be had in time. */
  async using<T>(key: string, fn: () => Promise<T>, options?: LockOptions): Promise<T> {
    const lease = await this.acquire(key, options);
    if (!lease) throw new LockUnavailableError(key);
    try {
      return await fn();
    } finally {
      await this.release(lease);
    }
  }
}
