import { QueueName } from '../connectors/queue/queue.port';
import {
  batchEntries, EXECUTOR_BATCH_TYPE, EXECUTOR_MESSAGE_TYPE, ExecutorMessage, executorDispatches, executorPrefetch, MAX_TASKS_PER_MESSAGE,
  parseExecutorMessage,
} from './executor-message';

const task = (i: number) => ({ type: EXECUTOR_MESSAGE_TYPE, taskId: `t${i}` }) as unknown as ExecutorMessage;

describe('executorDispatches', () => {
  it('puts batches on the executor batch queue and a lone task, as itself, on the executor queue', () => {
    const many = Array.from({ length: 2 * MAX_TASKS_PER_MESSAGE + 1 }, (_, i) => task(i));
    expect(executorDispatches(many)).toEqual([
      { queue: QueueName.Executor, messages: [many[2 * MAX_TASKS_PER_MESSAGE]] },
      {
        queue: QueueName.ExecutorBatch,
        messages: [
          { type: EXECUTOR_BATCH_TYPE, tasks: many.slice(0, MAX_TASKS_PER_MESSAGE) },
          { type: EXECUTOR_BATCH_TYPE, tasks: many.slice(MAX_TASKS_PER_MESSAGE, 2 * MAX_TASKS_PER_MESSAGE) },
        ],
      },
    ]);
    expect(executorDispatches([task(7)])).toEqual([{ queue: QueueName.Executor, messages: [task(7)] }]);
    expect(executorDispatches([task(1), task(2)])).toEqual([
      { queue: QueueName.ExecutorBatch, messages: [{ type: EXECUTOR_BATCH_TYPE, tasks: [task(1), task(2)] }] },
    ]);
    expect(executorDispatches([])).toEqual([]);
  });
});

describe('executorPrefetch', () => {
  it.each([1, 8, 49, 50, 64, 256, 10_000])('bounds the tasks an executor of concurrency %i holds by 3 × concurrency + 100', (concurrency) => {
    const { lone, batch } = executorPrefetch(concurrency);
    expect(lone).toBe(concurrency);
    // Enough batches to fill every slot twice, with one more waiting...
    expect(batch * MAX_TASKS_PER_MESSAGE).toBeGreaterThanOrEqual(2 * concurrency + MAX_TASKS_PER_MESSAGE);
    // ...and never the `concurrency` × 50 tasks that one prefetch of `concurrency` messages allowed.
    expect(lone + batch * MAX_TASKS_PER_MESSAGE).toBeLessThanOrEqual(3 * concurrency + 2 * MAX_TASKS_PER_MESSAGE);
  });
});

describe('parseExecutorMessage and the optional traceparent', () => {
  const valid = {
    type: EXECUTOR_MESSAGE_TYPE, planId: 'p', taskId: 't', partitionKey: 1, attempt: 1, dispatchSeq: 1,
    action: { type: 'x' }, maxFailureRetry: 3, toBeExecutedAt: 1000,
  };
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  it('accepts a message without one (older schedulers) and keeps one that is a string', () => {
    expect(parseExecutorMessage({ ...valid })).toEqual(valid);
    expect(parseExecutorMessage({ ...valid, traceparent })).toEqual({ ...valid, traceparent });
    // A string that is no valid traceparent is kept here: tracing ignores it where it would be used.
    expect(parseExecutorMessage({ ...valid, traceparent: 'garbage' })).toEqual({ ...valid, traceparent: 'garbage' });
  });

  it.each([42, null, { a: 1 }, ['x']])('drops a traceparent that is not a string (%j) and still accepts the task', (bad) => {
    expect(parseExecutorMessage({ ...valid, traceparent: bad })).toEqual(valid);
  });

  it('reads batch entries with and without one', () => {
    const entries = batchEntries({ type: EXECUTOR_BATCH_TYPE, tasks: [{ ...valid, traceparent }, { ...valid, taskId: 'u' }] });
    expect(Array.isArray(entries) && entries.map((e) => parseExecutorMessage(e))).toEqual([{ ...valid, traceparent }, { ...valid, taskId: 'u' }]);
  });
});
