import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { LATENESS_SLOTS, latenessSlot } from './lateness-histogram';
import { BUCKET_MS, bucketOf, STATS_KEEP_MS } from './task-stats';

/** How often the counts are written. */
const FLUSH_MS = 2000;
/** The last flush at shutdown gives up after this (the database may be down): what is left is lost. */
const SHUTDOWN_FLUSH_MS = 2000;

interface Cell {
  bucket: number;
  userId: string;
  succeeded: number;
  failed: number;
  lateness: number[];
}

/**
 * Counts finished task attempts per (10 s bucket of their finish time, user) in memory and inserts them
 * into task_stats every FLUSH_MS with one multi-row INSERT (executor role; operations.migration.ts). The
 * pipeline pays a map increment per task: no I/O, no log line. Rows are only inserted (several rows of a
 * bucket, from this process's flushes and from other executors, are summed by the reader).
 *
 * A flush that fails (the database is down) keeps its counts for the next one, so nothing waits on the
 * database and nothing is lost for a short outage; counts of buckets older than STATS_KEEP_MS (which the
 * housekeeper would delete anyway) are dropped and counted in `droppedTasks`. One flush runs at a time.
 */
@Injectable()
export class TaskStatsRecorder implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('TaskStats');
  private cells = new Map<string, Cell>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failing = false;
  /** Task attempts whose counts were dropped because their bucket aged out while the database was down. */
  droppedTasks = 0;

  constructor(private readonly ds: DataSource) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    let timeout: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timeout = setTimeout(resolve, SHUTDOWN_FLUSH_MS);
      timeout.unref();
    });
    // The flush under way (if any), then one for what arrived since.
    await Promise.race([this.flush().then(() => this.flush()), giveUp]);
    clearTimeout(timeout);
  }

  /**
   * One finished attempt of a task of `userId`: `ok` for SUCCESS, else a FAILURE; `latenessSeconds` is
   * start − due (null when the task never started its action, e.g. no plugin for it).
   */
  finished(userId: string, finishedAt: number, ok: boolean, latenessSeconds: number | null): void {
    const bucket = bucketOf(finishedAt);
    const key = `${bucket} ${userId}`;
    let cell = this.cells.get(key);
    if (!cell) {
      cell = { bucket, userId, succeeded: 0, failed: 0, lateness: new Array<number>(LATENESS_SLOTS).fill(0) };
      this.cells.set(key, cell);
    }
    if (ok) cell.succeeded++;
    else cell.failed++;
    if (latenessSeconds !== null) cell.lateness[latenessSlot(latenessSeconds)]++;
  }

  /** Writes what was counted so far; resolves when written or kept for later (never rejects). */
  flush(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.write().finally(() => (this.inFlight = undefined));
    }
    return this.inFlight;
  }

  private async write(): Promise<void> {
    if (this.cells.size === 0) return;
    const cells = [...this.cells.values()];
    this.cells = new Map();
    try {
      await this.ds.query(
        `INSERT INTO task_stats (bucket, user_id, succeeded, failed, lateness)
         SELECT v.bucket, v.user_id, v.succeeded, v.failed, v.lateness::int[]
         FROM unnest($1::timestamptz[], $2::uuid[], $3::int[], $4::int[], $5::text[]) AS v(bucket, user_id, succeeded, failed, lateness)`,
        [
          cells.map((c) => new Date(c.bucket)), cells.map((c) => c.userId), cells.map((c) => c.succeeded), cells.map((c) => c.failed),
          cells.map((c) => `{${c.lateness.join(',')}}`),
        ],
      );
      if (this.failing) this.logger.log(`task statistics are written again (${this.droppedTasks} task attempt(s) dropped so far)`);
      this.failing = false;
    } catch (e) {
      this.keep(cells);
      // Once per outage, not every FLUSH_MS.
      if (!this.failing) this.logger.warn(`could not write task statistics, keeping them for the next try: ${e instanceof Error ? e.message : String(e)}`);
      this.failing = true;
    }
  }

  /** Puts unwritten counts back, merged with what arrived meanwhile, dropping buckets past the kept hour. */
  private keep(cells: Cell[]): void {
    const oldest = bucketOf(Date.now() - STATS_KEEP_MS) + BUCKET_MS;
    for (const c of cells) {
      if (c.bucket < oldest) {
        this.droppedTasks += c.succeeded + c.failed;
        continue;
      }
      const key = `${c.bucket} ${c.userId}`;
      const now = this.cells.get(key);
      if (!now) {
        this.cells.set(key, c);
        continue;
      }
      now.succeeded += c.succeeded;
      now.failed += c.failed;
      for (let i = 0; i < LATENESS_SLOTS; i++) now.lateness[i] += c.lateness[i];
    }
    for (const [key, c] of this.cells) {
      if (c.bucket < oldest) {
        this.droppedTasks += c.succeeded + c.failed;
        this.cells.delete(key);
      }
    }
  }
}
