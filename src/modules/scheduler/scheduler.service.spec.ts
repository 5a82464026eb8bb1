import { Logger } from '@nestjs/common';
import type { RepoConfig, SchedulerConfig } from '../../config/karya-config';
import type { TaskQueue } from '../../connectors/queue/queue.port';
import type { KaryaMetrics } from '../../metrics/karya-metrics';
import type { HookPublisher } from '../hooks/hook-publisher';
import { MIN_CLAIM_BATCH, SchedulerService } from './scheduler.service';
import type { ClaimedTask, TaskClaimsRepository } from './task-claims.repository';

describe('SchedulerService publish: late dispatch lines', () => {
  afterEach(() => jest.restoreAllMocks());

  const service = () =>
    new SchedulerService(
      {} as TaskClaimsRepository,
      { publishBatch: async () => undefined } as unknown as TaskQueue,
      { executionBuffer: 1_000, repoPartitions: [1] } as unknown as SchedulerConfig,
      { partitions: 1 } as RepoConfig,
      { dispatched: () => undefined } as unknown as KaryaMetrics,
      {} as HookPublisher,
    );
  const task = (i: number, dueAt: number): ClaimedTask => ({
    kind: 'due',
    taskId: `t-${i}`,
    partitionKey: 1,
    planId: `p-${i}`,
    attempt: 1,
    dispatchSeq: 1,
    dueAt,
    action: { type: 'RestApiRequest' },
    maxFailureRetry: 0,
    leaseUntil: dueAt + 60_000,
  });
  const publish = (s: SchedulerService, tasks: ClaimedTask[]) =>
    (s as unknown as { publish(tasks: ClaimedTask[], retry: boolean): Promise<void> }).publish(tasks, false);

  it('writes the first 10 late tasks of a batch at warn, the rest at debug behind one count line', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const debug = jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
    const now = Date.now();
    // 25 tasks an hour late, 5 on time.
    const tasks = [...Array.from({ length: 25 }, (_, i) => task(i, now - 3_600_000)), ...Array.from({ length: 5 }, (_, i) => task(100 + i, now))];
    await publish(service(), tasks);
    const lateWarns = warn.mock.calls.filter(([fields]) => typeof fields === 'object' && fields !== null && 'late_ms' in fields);
    expect(lateWarns.map(([fields]) => (fields as { task_id: string }).task_id)).toEqual(Array.from({ length: 10 }, (_, i) => `t-${i}`));
    expect(warn).toHaveBeenCalledWith({ tasks: 15 }, '15 more tasks of this batch dispatched late (one debug line each)');
    expect(warn).toHaveBeenCalledTimes(11);
    expect(debug.mock.calls.map(([fields]) => (fields as { task_id: string }).task_id)).toEqual(Array.from({ length: 15 }, (_, i) => `t-${10 + i}`));
  });

  it('writes no count line when few are late', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const now = Date.now();
    await publish(service(), [task(1, now - 3_600_000), task(2, now)]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ task_id: 't-1', late_ms: expect.any(Number) }), expect.stringContaining('dispatched'));
  });
});

/**
 * scheduler.yml's fetcher keys as the header of scheduler.service.ts defines them: channelCapacity is the depth
 * of the channel between claim loops and publishers, not the claim size; pollFrequency the longest pause.
 * Fake timers (Date included) make "not before" assertions exact instead of waits.
 */
describe('SchedulerService claim loop: channelCapacity and pollFrequency', () => {
  beforeEach(() => jest.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => jest.useRealTimers());

  interface Call {
    kind: string;
    limit: number;
    at: number;
  }

  /** A claims repository whose `due` claims return `dueBatches` in turn (each made at call time), then nothing. */
  const fakeClaims = (dueBatches: ((limit: number, now: number) => ClaimedTask[])[]) => {
    const calls: Call[] = [];
    const claims = {
      releaseBuffered: async () => undefined,
      claim: async (kind: string, o: { limit: number }) => {
        calls.push({ kind, limit: o.limit, at: Date.now() });
        if (kind !== 'due') return [];
        return dueBatches.shift()?.(o.limit, Date.now()) ?? [];
      },
      sweepLapsed: async () => ({ claimed: [], exhausted: [] }),
      release: async () => undefined,
    };
    return { calls, claims: claims as unknown as TaskClaimsRepository };
  };
  const tasks = (n: number, dueAt: number, from = 0): ClaimedTask[] =>
    Array.from({ length: n }, (_, i) => ({
      kind: 'due', taskId: `t-${from + i}`, partitionKey: 1, planId: `p-${from + i}`, attempt: 1, dispatchSeq: 1, dueAt,
      action: { type: 'RestApiRequest' }, maxFailureRetry: 0, leaseUntil: dueAt + 60_000,
    }));
  const start = (claims: TaskClaimsRepository, channelCapacity: number, published: number[]) => {
    const s = new SchedulerService(
      claims,
      { publishBatch: async (_q: unknown, messages: { tasks?: unknown[] }[]) => void published.push(Date.now(), messages.length) } as unknown as TaskQueue,
      { workers: 1, channelCapacity, pollFrequency: 300, executionBuffer: 1_000, leaseTime: 30_000, repoPartitions: [1] } as unknown as SchedulerConfig,
      { partitions: 1 } as RepoConfig,
      { dispatched: () => undefined, observeClaimBatch: () => undefined, observeFetchLatency: () => undefined } as unknown as KaryaMetrics,
      {} as HookPublisher,
    );
    s.onApplicationBootstrap();
    return s;
  };

  it('claims max(channelCapacity, MIN_CLAIM_BATCH) per statement, so the original sample (10) claims 500', async () => {
    const { calls, claims } = fakeClaims([]);
    const s = start(claims, 10, []);
    await jest.advanceTimersByTimeAsync(0);
    expect(calls[0]).toEqual({ kind: 'due', limit: MIN_CLAIM_BATCH, at: 1_000_000 });
    await s.beforeApplicationShutdown();

    const big = fakeClaims([]);
    const t = start(big.claims, 2_000, []);
    await jest.advanceTimersByTimeAsync(0);
    expect(big.calls[0].limit).toBe(2_000);
    await t.beforeApplicationShutdown();
  });

  it('claims again at once after a full claim, without a poll in between', async () => {
    const { calls, claims } = fakeClaims([(limit, now) => tasks(limit, now), (limit, now) => tasks(limit, now, limit)]);
    const s = start(claims, 10, []);
    await jest.advanceTimersByTimeAsync(0);
    // Two full claims of due work, then an empty one: all three at the same instant.
    expect(calls.filter((c) => c.kind === 'due').map((c) => c.at)).toEqual([1_000_000, 1_000_000, 1_000_000]);
    await s.beforeApplicationShutdown();
  });

  it('waits while the channel is full and claims again as soon as the publishers make room, not a poll later', async () => {
    // 20 tasks due in 100 ms fill a channel of 10: the loop must not claim until they are published.
    const { calls, claims } = fakeClaims([(_limit, now) => tasks(20, now + 100)]);
    const published: number[] = [];
    const s = start(claims, 10, published);
    await jest.advanceTimersByTimeAsync(99);
    expect(calls.map((c) => c.kind)).toEqual(['due']);
    expect(published).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(published[0]).toBe(1_000_100);
    // The retry claim the full channel held back runs right after the publish, well before a poll (300 ms).
    expect(calls.map((c) => [c.kind, c.at])).toEqual([['due', 1_000_000], ['retry', 1_000_100]]);
    await s.beforeApplicationShutdown();
  });

  it('rests at most pollFrequency when there is nothing to claim', async () => {
    const { calls, claims } = fakeClaims([]);
    const s = start(claims, 10, []);
    await jest.advanceTimersByTimeAsync(299);
    expect(calls.filter((c) => c.kind === 'due')).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(calls.filter((c) => c.kind === 'due').map((c) => c.at)).toEqual([1_000_000, 1_000_300]);
    await s.beforeApplicationShutdown();
  });
});
