import { Logger } from '@nestjs/common';
import type { ActionRegistry } from '../../actions/action-registry';
import type { ExecutorConfig } from '../../config/karya-config';
import { PlanStatus } from '../../connectors/repo/entities/plan.entity';
import type { TaskQueue } from '../../connectors/queue/queue.port';
import { LOGGED_ERROR_LENGTH } from '../../logging/task-log';
import type { KaryaMetrics } from '../../metrics/karya-metrics';
import { EXECUTOR_MESSAGE_TYPE, ExecutorMessage } from '../../pipeline/executor-message';
import type { TaskStatsRecorder } from '../../stats/task-stats.recorder';
import type { HookPublisher } from '../hooks/hook-publisher';
import { ExecutorService } from './executor.service';
import type { StartedTask, TaskResultsRepository } from './task-results.repository';

/** The failure text of a target answering 500 with a long body, its URL carrying an Azure SAS signature. */
const FAILURE = `REST call failed --- [500 | http://127.0.0.1:9/x?sv=2024&sig=sas-exec-spec-1] | ${'b'.repeat(5_000)}`;

describe('ExecutorService: the failed-attempt line', () => {
  afterEach(() => jest.restoreAllMocks());

  const run = async (recorded: boolean) => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const debug = jest.spyOn(Logger.prototype, 'debug').mockImplementation(() => undefined);
    const noop = () => undefined;
    const service = new ExecutorService(
      { failed: async () => recorded } as unknown as TaskResultsRepository,
      { get: () => ({ run: async () => ({ ok: false, permanent: false, error: FAILURE }) }) } as unknown as ActionRegistry,
      { concurrency: 1, retry: { initialDelay: 100, multiplier: 1, maxDelay: 100, jitter: 0 } } as unknown as ExecutorConfig,
      { observeLateness: noop, observeExecution: noop, retryScheduled: noop, deadLettered: noop } as unknown as KaryaMetrics,
      { fire: async () => undefined } as unknown as HookPublisher,
      {} as TaskQueue,
      { finished: noop } as unknown as TaskStatsRecorder,
    );
    const message: ExecutorMessage = {
      type: EXECUTOR_MESSAGE_TYPE, planId: 'p-1', taskId: 't-1', partitionKey: 1, attempt: 1, dispatchSeq: 3,
      action: { type: 'RestApiRequest' }, maxFailureRetry: 2, toBeExecutedAt: Date.now(),
    };
    const started: StartedTask = { planStatus: PlanStatus.Running, pausedAt: null, planType: { type: 'Recurring' }, hooks: [], dueAt: Date.now(), userId: 'u-1' };
    await (service as unknown as { runStarted(m: ExecutorMessage, s: StartedTask): Promise<void> }).runStarted(message, started);
    return { warn, debug };
  };

  it('when recorded: warns once, the error cut short and without the URL query', async () => {
    const { warn } = await run(true);
    expect(warn).toHaveBeenCalledTimes(1);
    const [fields, msg] = warn.mock.calls[0] as [{ error: string; retry_at: string | null }, string];
    expect(msg).toContain('retry at');
    expect(fields.retry_at).toEqual(expect.any(String));
    expect(fields.error.startsWith('REST call failed --- [500 | http://127.0.0.1:9/x?…] | bbb')).toBe(true);
    expect(fields.error).not.toContain('sas-exec-spec-1');
    expect(fields.error.length).toBeLessThan(LOGGED_ERROR_LENGTH + 40);
  });

  it('when not recorded (a stale dispatch): no warn claiming a retry, a debug line saying so', async () => {
    const { warn, debug } = await run(false);
    expect(warn).not.toHaveBeenCalled();
    expect(debug).toHaveBeenCalledWith(expect.objectContaining({ task_id: 't-1', dispatch_seq: 3 }), 'task t-1: attempt 1 failed; not recorded (stale dispatch)');
  });
});
