import { Consumer, Delivery, MAX_DEAD_LETTER_REASON_BYTES, QueueMessage, QueueName, TaskQueue } from './queue.port';

/**
 * The behaviour every TaskQueue adapter must show, run by queue.contract.spec.ts against each adapter.
 * Each test gets a fresh adapter and closes it.
 */

/**
 * A consumer that can also stop the way a crashed process does: without settling what it holds. Not part
 * of the port (production code only ever cancels); both adapters' consumers have it, which is what lets
 * the at-least-once promise be tested the same way on each.
 */
export interface AbortableConsumer extends Consumer {
  abort(): Promise<void>;
}

export function isAbortable(consumer: Consumer): consumer is AbortableConsumer {
  return typeof (consumer as Partial<AbortableConsumer>).abort === 'function';
}

/** How long "nothing more arrives" is watched for. Long enough for a broker round trip, short enough to run often. */
const QUIET_MS = 300;

export function describeQueueContract(name: string, make: () => Promise<TaskQueue>): void {
  describe(`TaskQueue contract: ${name}`, () => {
    let queue: TaskQueue;
    let gates: Gate[];

    /** A promise the test opens when it likes; all are opened after each test so no handler keeps close() waiting. */
    function gate(): Gate {
      const created = new Gate();
      gates.push(created);
      return created;
    }

    beforeEach(async () => {
      gates = [];
      queue = await make();
    });

    afterEach(async () => {
      for (const g of gates) g.open();
      await queue.close();
    });

    it('delivers a published message with its JSON exactly as sent', async () => {
      const sent: QueueMessage = {
        id: 'task-1',
        nested: { deep: { list: [1, 'two', { three: 3 }, null, true, false], empty: {}, none: [] } },
        unicode: 'héllo wörld ✓ 日本語 🚀 עברית',
        escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 lone surrogate \ud800',
        numbers: {
          int: 42,
          negative: -7,
          zero: 0,
          float: 3.14159,
          tiny: 1e-7,
          huge: 1.5e300,
          maxSafe: Number.MAX_SAFE_INTEGER,
          minSafe: Number.MIN_SAFE_INTEGER,
        },
      };
      const got: Delivery[] = [];
      await queue.consume(QueueName.Executor, async (d) => void got.push(d), { prefetch: 1 });

      await queue.publish(QueueName.Executor, sent);

      await waitFor(() => got.length === 1, 'the delivery');
      expect(got[0].message).toStrictEqual(sent);
      expect(JSON.stringify(got[0].message)).toBe(JSON.stringify(sent));
      expect(got[0].queue).toBe(QueueName.Executor);
      expect(got[0].redelivered).toBe(false);
      expect(got[0].deadLetterReason).toBeUndefined();
      expect(got[0].originalQueue).toBeUndefined();
    });

    it('keeps what was published: later changes to the object do not travel, and values travel as JSON', async () => {
      const original = {
        list: [1],
        nested: { value: 'before' },
        when: new Date('2024-01-02T03:04:05.000Z'),
        gone: undefined,
      };
      await queue.publish(QueueName.Executor, original);
      original.list.push(2);
      original.nested.value = 'after';
      const got: Delivery[] = [];

      await queue.consume(QueueName.Executor, async (d) => void got.push(d), { prefetch: 1 });

      await waitFor(() => got.length === 1, 'the delivery');
      expect(got[0].message).toStrictEqual({ list: [1], nested: { value: 'before' }, when: '2024-01-02T03:04:05.000Z' });
    });

    it('rejects a message JSON cannot carry', async () => {
      await expect(queue.publish(QueueName.Executor, { count: BigInt(1) })).rejects.toThrow();
      await expect(queue.publishBatch(QueueName.Executor, [{ ok: 1 }, { count: BigInt(1) }])).rejects.toThrow();
    });

    it('rejects a prefetch that is not a positive integer', async () => {
      await expect(queue.consume(QueueName.Executor, async () => undefined, { prefetch: 0 })).rejects.toThrow(RangeError);
      await expect(queue.consume(QueueName.Executor, async () => undefined, { prefetch: 1.5 })).rejects.toThrow(RangeError);
    });

    it('delivers in publish order to a single consumer with prefetch 1', async () => {
      for (let i = 0; i < 50; i++) await queue.publish(QueueName.Executor, { seq: i });
      const order: unknown[] = [];

      await queue.consume(QueueName.Executor, async (d) => void order.push(d.message.seq), { prefetch: 1 });

      await waitFor(() => order.length === 50, '50 deliveries');
      expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));
    });

    it('gives each message to exactly one of two competing consumers, and both get some', async () => {
      const deliveries = new Map<unknown, number>();
      const perConsumer = [0, 0];
      for (const index of [0, 1]) {
        await queue.consume(
          QueueName.Executor,
          async (d) => {
            await sleep(Math.random() * 3);
            deliveries.set(d.message.seq, (deliveries.get(d.message.seq) ?? 0) + 1);
            perConsumer[index]++;
          },
          { prefetch: 5 },
        );
      }

      await queue.publishBatch(
        QueueName.Executor,
        Array.from({ length: 200 }, (_, i) => ({ seq: i })),
      );

      await waitFor(() => deliveries.size === 200, '200 distinct deliveries');
      await sleep(QUIET_MS);
      expect([...deliveries.values()].every((n) => n === 1)).toBe(true);
      expect(perConsumer[0] + perConsumer[1]).toBe(200);
      expect(perConsumer[0]).toBeGreaterThan(0);
      expect(perConsumer[1]).toBeGreaterThan(0);
    });

    it('keeps at most prefetch messages in one consumer’s hands', async () => {
      const release = gate();
      let inFlight = 0;
      let maxInFlight = 0;
      let done = 0;
      await queue.consume(
        QueueName.Executor,
        async () => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await release.promise;
          inFlight--;
          done++;
        },
        { prefetch: 3 },
      );

      await queue.publishBatch(
        QueueName.Executor,
        Array.from({ length: 10 }, (_, i) => ({ seq: i })),
      );

      await waitFor(() => inFlight === 3, '3 messages in flight');
      await sleep(QUIET_MS);
      expect(inFlight).toBe(3);
      expect(maxInFlight).toBe(3);
      release.open();
      await waitFor(() => done === 10, 'all 10 handled');
      expect(maxInFlight).toBe(3);
    });

    it.each([QueueName.Executor, QueueName.Hooks])(
      'dead-letters a message whose %s handler fails, with the error as reason, and does not redeliver it',
      async (source) => {
        let attempts = 0;
        await queue.consume(
          source,
          async (d) => {
            attempts++;
            // A broker keeps the message as published, whatever the handler did to its copy.
            d.message.id = 'changed by the handler';
            throw new Error('boom: connector said no');
          },
          { prefetch: 1 },
        );
        const dead: Delivery[] = [];
        await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });

        await queue.publish(source, { id: 'failing', payload: { a: 1 } });

        await waitFor(() => dead.length === 1, 'the dead letter');
        await sleep(QUIET_MS);
        expect(attempts).toBe(1);
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({
          queue: QueueName.DeadLetter,
          message: { id: 'failing', payload: { a: 1 } },
          deadLetterReason: 'boom: connector said no',
          originalQueue: source,
        });
      },
    );

    it('dead-letters explicitly with the given reason and origin', async () => {
      await queue.deadLetter(QueueName.Hooks, { id: 'poison', n: [1, 2] }, 'invalid hook payload');
      const dead: Delivery[] = [];

      await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });

      await waitFor(() => dead.length === 1, 'the dead letter');
      expect(dead[0]).toStrictEqual({
        queue: QueueName.DeadLetter,
        message: { id: 'poison', n: [1, 2] },
        redelivered: false,
        deadLetterReason: 'invalid hook payload',
        originalQueue: QueueName.Hooks,
      });
    });

    it('records a reason as storable text, capped, whether given or thrown', async () => {
      await queue.deadLetter(QueueName.Executor, { id: 'nul' }, `bad\u0000gateway\uD800 ${'x'.repeat(10_000)}`);
      await queue.consume(QueueName.Hooks, async () => {
        throw new Error('thrown\u0000reason');
      }, { prefetch: 1 });
      await queue.publish(QueueName.Hooks, { id: 'thrown' });
      const dead: Delivery[] = [];

      await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });

      await waitFor(() => dead.length === 2, 'both dead letters');
      const given = dead.find((d) => d.message.id === 'nul')!.deadLetterReason!;
      expect(given.startsWith('bad\uFFFDgateway\uFFFD xxx')).toBe(true);
      expect(Buffer.byteLength(given, 'utf8')).toBeLessThanOrEqual(MAX_DEAD_LETTER_REASON_BYTES);
      expect(given).toMatch(/… \[truncated, 10017 bytes in all\]$/);
      expect(dead.find((d) => d.message.id === 'thrown')!.deadLetterReason).toBe('thrown\uFFFDreason');
    });

    it('does not loop a dead letter whose handler fails', async () => {
      await queue.deadLetter(QueueName.Executor, { id: 'dead' }, 'first failure');
      let attempts = 0;

      await queue.consume(
        QueueName.DeadLetter,
        async () => {
          attempts++;
          throw new Error('cannot process the dead letter either');
        },
        { prefetch: 1 },
      );

      await waitFor(() => attempts === 1, 'the attempt');
      await sleep(QUIET_MS);
      expect(attempts).toBe(1);
    });

    it('redelivers, flagged, a message whose consumer stopped before settling it; the late outcome counts for nothing', async () => {
      const release = gate();
      const first: Delivery[] = [];
      const consumer = await queue.consume(
        QueueName.Executor,
        async (d) => {
          first.push(d);
          await release.promise;
          throw new Error('finished after its consumer died');
        },
        { prefetch: 1 },
      );
      const dead: Delivery[] = [];
      await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });
      await queue.publish(QueueName.Executor, { id: 'crash' });
      await waitFor(() => first.length === 1, 'the first delivery');
      expect(first[0].redelivered).toBe(false);
      if (!isAbortable(consumer)) throw new Error(`${name}: consumers must expose abort() for this test`);

      await consumer.abort();
      const second: Delivery[] = [];
      await queue.consume(QueueName.Executor, async (d) => void second.push(d), { prefetch: 1 });

      await waitFor(() => second.length === 1, 'the redelivery');
      expect(second[0]).toMatchObject({ message: { id: 'crash' }, redelivered: true });
      release.open();
      await sleep(QUIET_MS);
      expect(first).toHaveLength(1);
      expect(second).toHaveLength(1);
      expect(dead).toHaveLength(0);
    });

    it('delivers every message of a batch of 1000', async () => {
      const batch = Array.from({ length: 1000 }, (_, i) => ({ seq: i, body: `message ${i}` }));
      await queue.publishBatch(QueueName.Executor, batch);
      await queue.publishBatch(QueueName.Executor, []);
      const seen = new Set<unknown>();
      let count = 0;

      await queue.consume(
        QueueName.Executor,
        async (d) => {
          seen.add(d.message.seq);
          count++;
        },
        { prefetch: 100 },
      );

      await waitFor(() => seen.size === 1000, '1000 deliveries');
      await sleep(QUIET_MS);
      expect(count).toBe(1000);
    });

    it('stops delivering to a cancelled consumer; later messages wait for the next one', async () => {
      const a: unknown[] = [];
      const consumerA = await queue.consume(QueueName.Executor, async (d) => void a.push(d.message.seq), {
        prefetch: 1,
      });
      await queue.publish(QueueName.Executor, { seq: 0 });
      await waitFor(() => a.length === 1, 'the first delivery');

      await consumerA.cancel();
      await queue.publishBatch(QueueName.Executor, [{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
      await sleep(QUIET_MS);
      expect(a).toEqual([0]);

      const b: unknown[] = [];
      await queue.consume(QueueName.Executor, async (d) => void b.push(d.message.seq), { prefetch: 1 });
      await waitFor(() => b.length === 3, 'the 3 waiting messages');
      expect(b).toEqual([1, 2, 3]);
      expect(a).toEqual([0]);
    });

    it('cancel waits for running handlers, whose messages are then settled for good', async () => {
      const release = gate();
      let started = 0;
      let finished = false;
      const consumer = await queue.consume(
        QueueName.Executor,
        async () => {
          started++;
          await release.promise;
          await sleep(20);
          finished = true;
        },
        { prefetch: 1 },
      );
      await queue.publish(QueueName.Executor, { id: 'slow' });
      await waitFor(() => started === 1, 'the handler to start');

      let cancelled = false;
      const cancelling = consumer.cancel().then(() => {
        cancelled = true;
      });
      await sleep(100);
      expect(cancelled).toBe(false);
      release.open();
      await cancelling;
      expect(finished).toBe(true);

      const later: Delivery[] = [];
      await queue.consume(QueueName.Executor, async (d) => void later.push(d), { prefetch: 1 });
      await sleep(QUIET_MS);
      expect(later).toHaveLength(0);
    });

    it('close lets running handlers settle, then refuses work', async () => {
      const release = gate();
      let started = 0;
      let finished = false;
      await queue.consume(
        QueueName.Executor,
        async () => {
          started++;
          await release.promise;
          finished = true;
        },
        { prefetch: 1 },
      );
      await queue.publish(QueueName.Executor, { id: 'slow' });
      await waitFor(() => started === 1, 'the handler to start');

      let closed = false;
      const closing = queue.close().then(() => {
        closed = true;
      });
      await sleep(100);
      expect(closed).toBe(false);
      release.open();
      await closing;

      expect(finished).toBe(true);
      await expect(queue.publish(QueueName.Executor, { id: 'late' })).rejects.toThrow();
      await expect(queue.ping()).rejects.toThrow();
    });

    it('keeps the hooks queue independent of the executor queue', async () => {
      const executor: Delivery[] = [];
      const hooks: Delivery[] = [];
      await queue.consume(QueueName.Executor, async (d) => void executor.push(d), { prefetch: 5 });
      await queue.consume(QueueName.Hooks, async (d) => void hooks.push(d), { prefetch: 5 });

      await queue.publish(QueueName.Executor, { id: 'e1' });
      await queue.publish(QueueName.Hooks, { id: 'h1' });
      await queue.publish(QueueName.Executor, { id: 'e2' });

      await waitFor(() => executor.length === 2 && hooks.length === 1, 'all three deliveries');
      await sleep(QUIET_MS);
      expect(executor.map((d) => [d.queue, d.message.id])).toEqual([
        [QueueName.Executor, 'e1'],
        [QueueName.Executor, 'e2'],
      ]);
      expect(hooks.map((d) => [d.queue, d.message.id])).toEqual([[QueueName.Hooks, 'h1']]);
    });

    it('answers ping', async () => {
      await expect(queue.ping()).resolves.toBeUndefined();
    });
  });
}

export class Gate {
  readonly promise: Promise<void>;
  private release!: () => void;

  constructor() {
    this.promise = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  open(): void {
    this.release();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}
