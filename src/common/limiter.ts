/**
 * Runs at most `max` async functions at once; the others wait their turn in arrival order. A finishing
 * function hands its slot straight to the next waiter, so the limit holds exactly.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`Limiter needs a positive integer, got ${max}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.max) this.running++;
    else await new Promise<void>((resume) => this.waiting.push(resume));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Functions running now (for tests and metrics). */
  get active(): number {
    return this.running;
  }
}
