import { Limiter } from './limiter';

describe('Limiter', () => {
  it('never runs more than max at once, and runs every function in arrival order', async () => {
    const limiter = new Limiter(3);
    let now = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        limiter.run(async () => {
          started.push(i);
          now++;
          peak = Math.max(peak, now);
          await new Promise((r) => setTimeout(r, 5));
          now--;
          return i * 2;
        }),
      ),
    );
    expect(results).toEqual(Array.from({ length: 10 }, (_, i) => i * 2));
    expect(peak).toBe(3);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(limiter.active).toBe(0);
  });

  it('keeps arrival order through a queue long enough to be compacted on the way', async () => {
    const limiter = new Limiter(2);
    const order: number[] = [];
    await Promise.all(Array.from({ length: 5000 }, (_, i) => limiter.run(async () => void order.push(i))));
    expect(order).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(limiter.active).toBe(0);
  });

  it('frees the slot of a function that throws', async () => {
    const limiter = new Limiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limiter.run(async () => 'next')).resolves.toBe('next');
    expect(limiter.active).toBe(0);
  });

  it('refuses a limit that could never run anything', () => {
    expect(() => new Limiter(0)).toThrow(RangeError);
    expect(() => new Limiter(1.5)).toThrow(RangeError);
  });
});
