import { DistributedLock, LockLease, LockOptions } from './lock.port';
import { LockConfig } from '../../config/karya-config';

/**
 * The lease object's identity is its token: only the very object handed out by `acquire` can release
 * the key, and an object identity cannot be guessed or forged by copying `key`/`expiresAt`, which a
 * random string stored beside it could not improve on inside one process.
 */
class MemoryLease implements LockLease {
  constructor(
    readonly key: string,
    readonly expiresAt: number,
  ) {}
}

interface Waiter {
  readonly leaseTime: number;
  readonly resolve: (lease: MemoryLease | null) => void;
  readonly deadline: NodeJS.Timeout;
}

/**
 * Single-process lock for development and tests. Waiters queue per key (FIFO) instead of polling, so a
 * release hands the key over at once and no timer runs while nobody waits: expired leases are noticed
 * lazily on the next `acquire`, and an expiry timer exists only while someone queues behind a holder.
 */
export class MemoryLock extends DistributedLock {
  private readonly holders = new Map<string, MemoryLease>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly config: Pick<LockConfig, 'waitTime' | 'leaseTime'>) {
    super();
    validateTimes(config.waitTime, config.leaseTime);
  }

  async acquire(key: string, options?: LockOptions): Promise<LockLease | null> {
    if (this.closed) throw new Error('MemoryLock is closed');
    const waitTime = options?.waitTime ?? this.config.waitTime;
    const leaseTime = options?.leaseTime ?? this.config.leaseTime;
    validateTimes(waitTime, leaseTime);

    const holder = this.holders.get(key);
    const queue = this.waiters.get(key);
    if (!queue && (!holder || holder.expiresAt <= Date.now())) return this.grant(key, leaseTime);
    if (waitTime === 0) return null;

    return new Promise<MemoryLease | null>((resolve) => {
      const waiter: Waiter = {
        leaseTime,
        resolve,
        deadline: setTimeout(() => this.giveUp(key, waiter), waitTime),
      };
      const pending = this.waiters.get(key) ?? [];
      pending.push(waiter);
      this.waiters.set(key, pending);
      this.watchExpiry(key);
    });
  }

  async release(lease: LockLease): Promise<void> {
    if (!(lease instanceof MemoryLease)) throw new TypeError('MemoryLock.release: lease was not issued by a MemoryLock');
    // A lease that expired and was taken over is no longer the stored object, so it cannot free the new holder.
    if (this.holders.get(lease.key) !== lease) return;
    this.holders.delete(lease.key);
    this.handOver(lease.key);
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('MemoryLock is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.expiryTimers.values()) clearTimeout(timer);
    this.expiryTimers.clear();
    // Waiters resolve null rather than hang: during shutdown "not acquired" is the truthful answer.
    for (const queue of this.waiters.values()) {
      for (const waiter of queue) {
        clearTimeout(waiter.deadline);
        waiter.resolve(null);
      }
    }
    this.waiters.clear();
    this.holders.clear();
  }

  private grant(key: string, leaseTime: number): MemoryLease {
    const lease = new MemoryLease(key, Date.now() + leaseTime);
    this.holders.set(key, lease);
    return lease;
  }

  /** Passes a free key to the longest waiter, if any. */
  private handOver(key: string): void {
    const timer = this.expiryTimers.get(key);
    if (timer) clearTimeout(timer);
    this.expiryTimers.delete(key);

    const queue = this.waiters.get(key);
    const next = queue?.shift();
    if (!queue || !next) {
      this.waiters.delete(key);
      return;
    }
    if (queue.length === 0) this.waiters.delete(key);
    clearTimeout(next.deadline);
    next.resolve(this.grant(key, next.leaseTime));
    this.watchExpiry(key);
  }

  /** Arms the timer that frees the key when its holder's lease lapses, but only while someone waits for it. */
  private watchExpiry(key: string): void {
    if (this.expiryTimers.has(key) || !this.waiters.has(key)) return;
    const holder = this.holders.get(key);
    if (!holder) {
      this.handOver(key);
      return;
    }
    const timer = setTimeout(() => {
      this.expiryTimers.delete(key);
      if (this.holders.get(key) !== holder) return;
      // Timers and Date.now() use different clocks; re-arm rather than free a lease a millisecond early.
      if (holder.expiresAt > Date.now()) {
        this.watchExpiry(key);
        return;
      }
      this.holders.delete(key);
      this.handOver(key);
    }, Math.max(0, holder.expiresAt - Date.now()));
    this.expiryTimers.set(key, timer);
  }

  private giveUp(key: string, waiter: Waiter): void {
    const queue = this.waiters.get(key);
    if (queue) {
      const index = queue.indexOf(waiter);
      if (index >= 0) queue.splice(index, 1);
      if (queue.length === 0) {
        this.waiters.delete(key);
        // Nobody waits any more, so the expiry timer has no one to wake.
        const timer = this.expiryTimers.get(key);
        if (timer) clearTimeout(timer);
        this.expiryTimers.delete(key);
      }
    }
    waiter.resolve(null);
  }
}

function validateTimes(waitTime: number, leaseTime: number): void {
  if (!Number.isFinite(waitTime) || waitTime < 0) throw new RangeError(`waitTime must be a finite number >= 0, got ${waitTime}`);
  if (!Number.isFinite(leaseTime) || leaseTime <= 0) throw new RangeError(`leaseTime must be a finite number > 0, got ${leaseTime}`);
}
