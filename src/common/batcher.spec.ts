import { Batcher } from './batcher';

/** A run function that records every batch and is released by hand, so tests control when batches end. */
function gatedRun() {
  const batches: number[][] = [];
  const gates: (() => void)[] = [];
  const run = async (items: number[]): Promise<string[]> => {
    batches.push(items);
    await new Promise<void>((release) => gates.push(release));
    return items.map((i) => `r${i}`);
  };
  const releaseAll = () => gates.splice(0).forEach((g) => g());
  return { batches, run, releaseAll };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Batcher', () => {
  it('gives every caller its own result, items added in one turn sharing one batch', async () => {
    const calls: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      calls.push(items);
      return items.map((i) => i * 10);
    }, { maxBatch: 100, maxInFlight: 1 });
    const results = await Promise.all([1, 2, 3].map((i) => b.add(i)));
    expect(results).toEqual([10, 20, 30]);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  it('runs a lone item on the next turn of the event loop, without a timer to wait out', async () => {
    const calls: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      calls.push(items);
      return items;
    }, { maxBatch: 100, maxInFlight: 1 });
    const result = b.add(7);
    expect(calls).toEqual([]); // not synchronously: the rest of this turn may add company
    await tick();
    expect(calls).toEqual([[7]]);
    await expect(result).resolves.toBe(7);
  });

  it('never puts more than maxBatch items in one batch', async () => {
    const calls: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      calls.push(items);
      return items;
    }, { maxBatch: 2, maxInFlight: 10 });
    await Promise.all([1, 2, 3, 4, 5].map((i) => b.add(i)));
    expect(calls).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('queues items while maxInFlight batches run and sends them together when one ends', async () => {
    const g = gatedRun();
    const b = new Batcher<number, string>(g.run, { maxBatch: 100, maxInFlight: 1 });
    const first = b.add(1);
    await tick();
    expect(g.batches).toEqual([[1]]);
    const later = [2, 3, 4].map((i) => b.add(i));
    await tick();
    expect(g.batches).toHaveLength(1); // still one in flight
    expect(b.waiting).toBe(3);
    g.releaseAll();
    await expect(first).resolves.toBe('r1');
    await tick();
    expect(g.batches).toEqual([[1], [2, 3, 4]]);
    g.releaseAll();
    await expect(Promise.all(later)).resolves.toEqual(['r2', 'r3', 'r4']);
  });

  it('when a batch fails, runs its items alone and rejects only the one that fails alone, with its own error', async () => {
    const calls: number[][] = [];
    const b = new Batcher<number, number>(async (items) => {
      calls.push(items);
      if (items.includes(13)) throw new Error(items.length === 1 ? 'thirteen' : 'unlucky batch');
      return items;
    }, { maxBatch: 3, maxInFlight: 4 });
    const results = await Promise.allSettled([12, 13, 14].map((i) => b.add(i)));
    expect(results).toEqual([
      { status: 'fulfilled', value: 12 },
      { status: 'rejected', reason: new Error('thirteen') },
      { status: 'fulfilled', value: 14 },
    ]);
    expect(calls).toEqual([[12, 13, 14], [12], [13], [14]]);
    await expect(b.add(15)).resolves.toBe(15); // the batcher keeps working
  });

  it('runs every batch through retry, and runs the items alone only when the batch still fails', async () => {
    const calls: number[][] = [];
    let failuresLeft = 2;
    const tries: number[] = [];
    // A retry that tries up to 3 times, as withTransientRetry would for a transient error.
    const retry = async <T>(work: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await work();
        } catch (e) {
          tries.push(attempt);
          if (attempt >= 3) throw e;
        }
      }
    };
    const b = new Batcher<number, number>(async (items) => {
      calls.push(items);
      if (failuresLeft-- > 0) throw new Error('connection lost');
      return items.map((i) => i * 2);
    }, { maxBatch: 10, maxInFlight: 1, retry });
    await expect(Promise.all([1, 2, 3].map((i) => b.add(i)))).resolves.toEqual([2, 4, 6]);
    expect(calls).toEqual([[1, 2, 3], [1, 2, 3], [1, 2, 3]]); // retried as a batch: no item run alone
    expect(tries).toEqual([1, 2]);

    failuresLeft = 3; // the batch fails on all 3 tries; each item alone then succeeds
    calls.length = 0;
    await expect(Promise.all([4, 5].map((i) => b.add(i)))).resolves.toEqual([8, 10]);
    expect(calls).toEqual([[4, 5], [4, 5], [4, 5], [4], [5]]);
  });

  it('rejects the items of a batch that fails however it is run, each with the error of its own last try', async () => {
    let n = 0;
    const b = new Batcher<number, number>(async () => {
      throw new Error(`down ${++n}`);
    }, { maxBatch: 10, maxInFlight: 1 });
    const results = await Promise.allSettled([1, 2].map((i) => b.add(i)));
    expect(results).toEqual([
      { status: 'rejected', reason: new Error('down 2') },
      { status: 'rejected', reason: new Error('down 3') },
    ]);
  });

  it('rejects one item whose result is a failure and answers the others', async () => {
    const b = new Batcher<number, number>(async (items) => items.map((i) => (i === 2 ? Batcher.fail(new Error('two')) : i)), {
      maxBatch: 10,
      maxInFlight: 1,
    });
    const results = await Promise.allSettled([1, 2, 3].map((i) => b.add(i)));
    expect(results).toEqual([
      { status: 'fulfilled', value: 1 },
      { status: 'rejected', reason: new Error('two') },
      { status: 'fulfilled', value: 3 },
    ]);
  });

  it('rejects a batch whose run returned the wrong number of results', async () => {
    const b = new Batcher<number, number>(async (items) => items.slice(1), { maxBatch: 10, maxInFlight: 1 });
    await expect(Promise.all([1, 2].map((i) => b.add(i)))).rejects.toThrow('batch returned 0 results for 1 items'); // alone, too
  });

  it('refuses a configuration that could never run a batch', () => {
    expect(() => new Batcher(async (i: number[]) => i, { maxBatch: 0, maxInFlight: 1 })).toThrow(RangeError);
    expect(() => new Batcher(async (i: number[]) => i, { maxBatch: 1, maxInFlight: 0 })).toThrow(RangeError);
  });
});
