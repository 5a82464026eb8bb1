/**
 * Group commit for hot-path writes: callers add one item each and get their own result, while the items
 * that arrive together run as one batch (one statement, one commit, one round trip).
 *
 * There is no timer to wait out: the first item of an idle batcher is flushed on the next turn of the event
 * loop (so a lone item pays nothing but that turn), and items that arrive while `maxInFlight` batches are
 * running queue up and go together in the next one. Batches therefore grow exactly as much as the load
 * needs: one item at a time when the system is quiet, up to `maxBatch` under a burst.
 *
 * `run` gets the items in arrival order and must return one result per item, in the same order; a result
 * that is an `ItemFailure` rejects that item alone. Every run goes through `retry` (when given), which runs
 * it again while its error is worth another try (a lost connection, a deadlock). When a batch still fails,
 * its items are run again one by one (side by side, each through `retry` too), and only an item that fails
 * alone is rejected, with its own error: one bad item or one unlucky moment fails no one else. The other
 * batches are not affected. `run` must therefore commit nothing when it throws (one statement, or one
 * transaction), so that running its items again cannot apply anything twice.
 */
export class Batcher<I, O> {
  /** Wraps an error as the result of one item, so a batch can fail some items and answer the others. */
  static fail(error: unknown): ItemFailure {
    return new ItemFailure(error);
  }

  private pending: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (items: I[]) => Promise<(O | ItemFailure)[]>,
    private readonly options: { maxBatch: number; maxInFlight: number; retry?: BatchRetry },
  ) {
    if (!(options.maxBatch >= 1 && options.maxInFlight >= 1)) {
      throw new RangeError(`Batcher needs maxBatch and maxInFlight ≥ 1, got ${options.maxBatch} and ${options.maxInFlight}`);
    }
  }

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.options.maxBatch) this.flush();
      else this.schedule();
    });
  }

  /** Items waiting for a batch (for tests and metrics). */
  get waiting(): number {
    return this.pending.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the rest of the I/O that arrived in this turn (more deliveries in
    // the same socket read) gets to add its items first.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.pending.length > 0 && this.inFlight < this.options.maxInFlight) {
      const batch = this.pending.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.execute(batch);
    }
  }

  private async execute(batch: typeof this.pending): Promise<void> {
    try {
      const out = await this.attempt(batch.map((b) => b.item));
      batch.forEach((b, i) => settle(b, out[i]));
    } catch (e) {
      if (batch.length === 1) batch[0].reject(e);
      else await Promise.all(batch.map((b) => this.attempt([b.item]).then(([out]) => settle(b, out), (err: unknown) => b.reject(err))));
    } finally {
      this.inFlight--;
      // Whatever queued up while this batch ran goes now, together.
      if (this.pending.length > 0) this.flush();
    }
  }

  private attempt(items: I[]): Promise<(O | ItemFailure)[]> {
    const once = async () => {
      const out = await this.run(items);
      if (out.length !== items.length) throw new Error(`batch returned ${out.length} results for ${items.length} items`);
      return out;
    };
    return this.options.retry ? this.options.retry(once) : once();
  }
}

function settle<O>(b: { resolve: (o: O) => void; reject: (e: unknown) => void }, result: O | ItemFailure): void {
  if (result instanceof ItemFailure) b.reject(result.error);
  else b.resolve(result);
}

/** Runs one try of a batch (or of one item alone) and tries again while that is worth it. */
export type BatchRetry = <T>(work: () => Promise<T>) => Promise<T>;

export class ItemFailure {
  constructor(readonly error: unknown) {}
}
