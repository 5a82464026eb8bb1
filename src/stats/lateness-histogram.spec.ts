import { LATENESS_BUCKETS } from '../metrics/karya-metrics';
import { LATENESS_SLOTS, latenessPercentileMs, latenessSlot } from './lateness-histogram';

const empty = () => new Array<number>(LATENESS_SLOTS).fill(0);

describe('lateness histogram', () => {
  it('puts a lateness in the first bucket whose bound it does not exceed, negative in the first, beyond the last in the overflow', () => {
    expect(LATENESS_SLOTS).toBe(LATENESS_BUCKETS.length + 1);
    expect(latenessSlot(-3)).toBe(0);
    expect(latenessSlot(0.001)).toBe(0);
    expect(latenessSlot(0.0011)).toBe(1);
    expect(latenessSlot(0.3)).toBe(LATENESS_BUCKETS.indexOf(0.5));
    expect(latenessSlot(60)).toBe(LATENESS_BUCKETS.length - 1);
    expect(latenessSlot(61)).toBe(LATENESS_BUCKETS.length);
    expect(latenessSlot(NaN)).toBe(LATENESS_BUCKETS.length);
  });

  it('is null for an empty histogram', () => {
    expect(latenessPercentileMs(empty(), 0.5)).toBeNull();
    expect(latenessPercentileMs([], 0.99)).toBeNull();
  });

  it('interpolates linearly inside the bucket the quantile falls in', () => {
    const h = empty();
    const i = LATENESS_BUCKETS.indexOf(0.1); // (0.05 s, 0.1 s]
    h[i] = 10;
    // Rank 5 of 10 in (50 ms, 100 ms]: halfway.
    expect(latenessPercentileMs(h, 0.5)).toBe(75);
    expect(latenessPercentileMs(h, 0.99)).toBeCloseTo(99.5, 5);
    expect(latenessPercentileMs(h, 1)).toBe(100);
  });

  it('starts the first bucket at 0 and finds the bucket by cumulative count', () => {
    const h = empty();
    h[0] = 50; // [0, 1 ms]
    h[LATENESS_BUCKETS.indexOf(1)] = 50; // (0.5 s, 1 s]
    expect(latenessPercentileMs(h, 0.5)).toBe(1); // rank 50: the top of the first bucket
    expect(latenessPercentileMs(h, 0.25)).toBe(0.5);
    expect(latenessPercentileMs(h, 0.99)).toBe(990); // rank 99: 49 of 50 into (500, 1000]
  });

  it('reports the overflow slot as the last bound, a lower bound of the truth', () => {
    const h = empty();
    h[LATENESS_SLOTS - 1] = 3;
    expect(latenessPercentileMs(h, 0.5)).toBe(60_000);
    expect(latenessPercentileMs(h, 0.99)).toBe(60_000);
  });
});
