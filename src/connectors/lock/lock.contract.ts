import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DistributedLock, LockLease, LockUnavailableError } from './lock.port';

/**
 * The behaviour every DistributedLock adapter must show, run by lock.contract.spec.ts against each one.
 * Timings are generous on purpose: these prove semantics (who holds what, when), not speed, and must
 * not flake on a loaded CI machine. Every test uses fresh keys, so adapters sharing a store (one Redis)
 * cannot see each other's leftovers.
 */
export function describeLockContract(
  name: string,
  make: (opts: { waitTime: number; leaseTime: number }) => Promise<DistributedLock>,
): void {
  describe(`DistributedLock contract: ${name}`, () => {
    const WAIT = 200;
    const LEASE = 300;
    /** Room for timer and event-loop jitter on either side of an expected instant. */
    const SLACK = 50;

    let lock: DistributedLock;
    const held: LockLease[] = [];

    const uniqueKey = (label: string): string => `contract-${label}-${randomUUID()}`;
    const mustAcquire = async (key: string, options?: { waitTime?: number; leaseTime?: number }): Promise<LockLease> => {
      const lease = await lock.acquire(key, options);
      if (!lease) throw new Error(`expected to acquire ${key}`);
      held.push(lease);
      return lease;
    };
    const timed = async <T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> => {
      const start = Date.now();
      const value = await work();
      return { value, ms: Date.now() - start };
    };

    beforeEach(async () => {
      lock = await make({ waitTime: WAIT, leaseTime: LEASE });
    });

    afterEach(async () => {
      // Releasing is a no-op for leases already released or expired, and keeps a shared store tidy.
      await Promise.all(held.splice(0).map((lease) => lock.release(lease)));
      await lock.close();
    });

    it('hands out a lease naming the key and expiring after leaseTime', async () => {
      const key = uniqueKey('lease');
      const before = Date.now();
      const lease = await mustAcquire(key);
      expect(lease.key).toBe(key);
      expect(lease.expiresAt).toBeGreaterThan(before);
      expect(lease.expiresAt).toBeLessThanOrEqual(Date.now() + LEASE + SLACK);
    });

    it('grants a single try (waitTime 0) on an adapter made a moment ago', async () => {
      // Setting up a connection is not contention: a fresh adapter must not turn it into a refusal.
      await mustAcquire(uniqueKey('fresh'), { waitTime: 0 });
    });

    it('excludes a second acquirer, which gets null only after about waitTime', async () => {
      const key = uniqueKey('exclusive');
      await mustAcquire(key);
      const { value, ms } = await timed(() => lock.acquire(key));
      expect(value).toBeNull();
      expect(ms).toBeGreaterThanOrEqual(WAIT - SLACK);
      expect(ms).toBeLessThan(WAIT + 1000);
    });

    it('honours a per-call waitTime of 0 as a single try', async () => {
      const key = uniqueKey('nowait');
      await mustAcquire(key);
      const { value, ms } = await timed(() => lock.acquire(key, { waitTime: 0 }));
      expect(value).toBeNull();
      expect(ms).toBeLessThan(WAIT);
    });

    it('keeps different keys independent', async () => {
      await mustAcquire(uniqueKey('a'));
      const { value, ms } = await timed(() => lock.acquire(uniqueKey('b')));
      expect(value).not.toBeNull();
      if (value) held.push(value);
      expect(ms).toBeLessThan(WAIT);
    });

    it('lets a blocked waiter in promptly once the holder releases', async () => {
      const key = uniqueKey('handover');
      const first = await mustAcquire(key, { leaseTime: 10_000 });
      const waiter = lock.acquire(key, { waitTime: 5_000 });
      await sleep(WAIT);
      const releasedAt = Date.now();
      await lock.release(first);
      const second = await waiter;
      expect(second).not.toBeNull();
      if (second) held.push(second);
      // Far below both the waiter's waitTime and the first lease: only the release can explain it.
      expect(Date.now() - releasedAt).toBeLessThan(1_000);
    });

    it('frees the key by itself once leaseTime has passed', async () => {
      const key = uniqueKey('expiry');
      await mustAcquire(key);
      expect(await lock.acquire(key, { waitTime: 0 })).toBeNull();
      await sleep(LEASE + SLACK);
      await mustAcquire(key, { waitTime: 0 });
    });

    it('lets a blocked waiter in when the holder lease lapses', async () => {
      const key = uniqueKey('expiry-waiter');
      await mustAcquire(key);
      const { value, ms } = await timed(() => lock.acquire(key, { waitTime: 3_000 }));
      expect(value).not.toBeNull();
      if (value) held.push(value);
      expect(ms).toBeGreaterThanOrEqual(LEASE - SLACK);
      expect(ms).toBeLessThan(LEASE + 1_000);
    });

    it('ignores the release of a stale lease: the newer holder keeps the key', async () => {
      const key = uniqueKey('stale');
      const stale = await mustAcquire(key);
      await sleep(LEASE + SLACK);
      const current = await mustAcquire(key, { leaseTime: 10_000 });

      await expect(lock.release(stale)).resolves.toBeUndefined();
      expect(await lock.acquire(key, { waitTime: 0 })).toBeNull();

      await lock.release(current);
      // A second release of the same lease is a no-op too.
      await expect(lock.release(current)).resolves.toBeUndefined();
      await mustAcquire(key, { waitTime: 0 });
    });

    it('runs fn under the lock in using() and releases afterwards', async () => {
      const key = uniqueKey('using');
      const result = await lock.using(key, async () => {
        expect(await lock.acquire(key, { waitTime: 0 })).toBeNull();
        return 42;
      });
      expect(result).toBe(42);
      await mustAcquire(key, { waitTime: 0 });
    });

    it('releases in using() even when fn throws, and passes the error on', async () => {
      const key = uniqueKey('using-throws');
      const failure = new Error('boom');
      await expect(
        lock.using(key, async () => {
          throw failure;
        }),
      ).rejects.toBe(failure);
      await mustAcquire(key, { waitTime: 0 });
    });

    it('throws LockUnavailableError from using() when the key stays taken, without running fn', async () => {
      const key = uniqueKey('using-busy');
      await mustAcquire(key, { leaseTime: 10_000 });
      const fn = jest.fn(async () => 'ran');
      const attempt = lock.using(key, fn);
      await expect(attempt).rejects.toBeInstanceOf(LockUnavailableError);
      await expect(attempt).rejects.toThrow(`Unable to acquire lock on --- ${key} | Try again later`);
      expect(fn).not.toHaveBeenCalled();
    });

    it('never lets 20 concurrent using() calls overlap in the critical section', async () => {
      const key = uniqueKey('concurrency');
      let counter = 0;
      let active = 0;
      let maxActive = 0;
      const increment = async (): Promise<void> => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        const read = counter;
        // Yields to the other callers mid-update: without exclusion the read-modify-write loses increments.
        await sleep(5);
        counter = read + 1;
        active -= 1;
      };
      await Promise.all(
        Array.from({ length: 20 }, () => lock.using(key, increment, { waitTime: 20_000, leaseTime: 10_000 })),
      );
      expect(maxActive).toBe(1);
      expect(counter).toBe(20);
    });

    it('answers ping()', async () => {
      await expect(lock.ping()).resolves.toBeUndefined();
    });
  });
}
