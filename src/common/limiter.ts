/**
 * Runs at most `max` async functions at once; the others wait their turn in arrival order. A finishing
 * function hands its slot straight to the next waiter, so the limit holds exactly.
 */
export class Limiter {
  private running = 0;
  /** Waiters from `head` on; an index instead of shift(), which is O(n) on the 10,000s of tasks a burst queues. */
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`Limiter needs a positive integer, got ${max}`);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.max) this.running++;
    else await new Promise<void>((resume) => this.waiting.push(resume));
    try {
      return await fn();
    } finally {
      const next = this.next();
      if (next) next();
      else this.running--;
    }
  }

  private next(): (() => void) | undefined {
    if (this.head >= this.waiting.length) return undefined;
    const next = this.waiting[this.head++];
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head); // drop the consumed half now and then
      this.head = 0;
    }
    return next;
  }

  /** Functions running now (for tests and metrics). */
  get active(): number {
    return this.running;
  }
}
