import { Logger } from '@nestjs/common';
import type { RepoConfig, SchedulerConfig } from '../../config/karya-config';
import type { TaskQueue } from '../../connectors/queue/queue.port';
import type { KaryaMetrics } from '../../metrics/karya-metrics';
import type { HookPublisher } from '../hooks/hook-publisher';
import { SchedulerService } from './scheduler.service';
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
