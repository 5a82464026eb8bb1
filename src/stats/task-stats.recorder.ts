import { randomUUID } from 'node:crypto';
import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { LATENESS_SLOTS, latenessSlot } from './lateness-histogram';
import { BUCKET_MS, bucketOf, STATS_KEEP_MS } from './task-stats';

/** How often the counts are written. */
const FLUSH_MS = 2000;
/** The last flush at shutdown gives up after this (the database may be down): what is left is lost. */
const SHUTDOWN_FLUSH_MS = 2000;

/** The absolute counts of one (bucket, user) in this process, and how much of them is known written. */
interface Cell {
  bucket: number;
  userId: string;
  succeeded: number;
  failed: number;
  lateness: number[];
  /** Bumped by every finished task; the cell is dirty while it exceeds `written`. */
  version: number;
  /** The version of the last snapshot of this cell that a successful flush wrote. */
  written: number;
  /** succeeded + failed of that snapshot: what the database holds for this cell. */
  writtenTasks: number;
  /** Set when the cell aged out of memory (its unwritten tasks were counted in droppedTasks). */
  gone: boolean;
}

/** What one flush sends for a cell (the cell itself keeps counting meanwhile). */
interface Snapshot {
  cell: Cell;
  version: number;
  succeeded: number;
  failed: number;
  lateness: string;
}

/**
 * Counts finished task attempts per (10 s bucket of their finish time, user) in memory and upserts them into
 * task_stats every FLUSH_MS (executor role; operations.migration.ts). The pipeline pays a map increment per
 * task: no I/O, no log line.
 *
 * Idempotent writes: the process has a random `source` id, and each flush writes the ABSOLUTE counts of the
 * cells changed since the last successful flush, overwriting its own row of (bucket, user, source). A flush
 * that failed, or that committed but was not seen to (connection dropped after the commit), leaves its cells
 * dirty and the next flush writes them again: nothing is counted twice. The update is skipped when the row
 * already holds as many tasks (counts only grow), so a stale statement that lands late cannot undo a newer one.
 *
 * Memory: a closed bucket (older than the current one) leaves the map once a flush wrote its final values; a
 * task finishing later with a finish time in a bucket already let go is counted in the oldest bucket still
 * kept (`floor`), because a fresh cell would overwrite the row with a smaller count. Whatever the database
 * does (down, or a flush that hangs: statementTimeout 0 is allowed), cells of buckets older than
 * STATS_KEEP_MS (which the housekeeper deletes anyway) are dropped by finished() and the timer, their
 * unwritten tasks counted in `droppedTasks`: at most (users × 361) cells. One flush runs at a time.
 *
 * The last flush is an onApplicationShutdown hook, not beforeApplicationShutdown: Nest's close() runs
 * beforeApplicationShutdown hooks, then dispose(), which closes the executor's queue transport and waits for
 * its running handlers (which call finished()), then onApplicationShutdown hooks module by module, nearest
 * the root first and global modules (distance MAX_VALUE) last. TypeORM's DataSource is destroyed in the
 * global TypeOrmCoreModule's onApplicationShutdown, so this non-global module's hook runs after the drain and
 * while the database is still open.
 */
@Injectable()
export class TaskStatsRecorder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('TaskStats');
  /** This process's rows of task_stats. */
  readonly source = randomUUID();
  private readonly cells = new Map<string, Cell>();
  /** Buckets before this may have left memory: later finishes in them are counted here instead. */
  private floor = -Infinity;
  /** The bucket of the last age-out pass: finished() runs one when a new bucket starts. */
  private agedAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failing = false;
  /** Task attempts whose counts were dropped unwritten because their bucket aged out (database down or hung). */
  droppedTasks = 0;

  constructor(private readonly ds: DataSource) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.ageOut(Date.now());
      void this.flush();
    }, FLUSH_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
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

  /** Cells held in memory (for tests: bounded by users × 361). */
  get size(): number {
    return this.cells.size;
  }

  /**
   * One finished attempt of a task of `userId`: `ok` for SUCCESS, else a FAILURE; `latenessSeconds` is
   * start − due (null when the task never started its action, e.g. no plugin for it).
   */
  finished(userId: string, finishedAt: number, ok: boolean, latenessSeconds: number | null): void {
    const now = Date.now();
    if (bucketOf(now) > this.agedAt) this.ageOut(now);
    const bucket = Math.max(bucketOf(finishedAt), this.floor);
    const key = `${bucket} ${userId}`;
    let cell = this.cells.get(key);
    if (!cell) {
      cell = {
        bucket, userId, succeeded: 0, failed: 0, lateness: new Array<number>(LATENESS_SLOTS).fill(0),
        version: 0, written: 0, writtenTasks: 0, gone: false,
      };
      this.cells.set(key, cell);
    }
    if (ok) cell.succeeded++;
    else cell.failed++;
    if (latenessSeconds !== null) cell.lateness[latenessSlot(latenessSeconds)]++;
    cell.version++;
  }

  /** Writes what changed so far; resolves when written or kept for later (never rejects). */
  flush(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.write().finally(() => (this.inFlight = undefined));
    }
    return this.inFlight;
  }

  private async write(): Promise<void> {
    const sent: Snapshot[] = [];
    for (const cell of this.cells.values()) {
      if (cell.version === cell.written) continue;
      sent.push({ cell, version: cell.version, succeeded: cell.succeeded, failed: cell.failed, lateness: `{${cell.lateness.join(',')}}` });
    }
    if (sent.length > 0) {
      try {
        await this.ds.query(
          `INSERT INTO task_stats AS s (bucket, user_id, source, succeeded, failed, lateness)
           SELECT v.bucket, v.user_id, $1::uuid, v.succeeded, v.failed, v.lateness::int[]
           FROM unnest($2::timestamptz[], $3::uuid[], $4::int[], $5::int[], $6::text[]) AS v(bucket, user_id, succeeded, failed, lateness)
           ON CONFLICT (bucket, user_id, source) DO UPDATE
             SET succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, lateness = EXCLUDED.lateness
             WHERE s.succeeded + s.failed < EXCLUDED.succeeded + EXCLUDED.failed`,
          [
            this.source, sent.map((c) => new Date(c.cell.bucket)), sent.map((c) => c.cell.userId), sent.map((c) => c.succeeded),
            sent.map((c) => c.failed), sent.map((c) => c.lateness),
          ],
        );
      } catch (e) {
        // The cells stay dirty: the next flush writes their counts then. Once per outage, not every FLUSH_MS.
        if (!this.failing) this.logger.warn(`could not write task statistics, keeping them for the next try: ${e instanceof Error ? e.message : String(e)}`);
        this.failing = true;
        return;
      }
      if (this.failing) this.logger.log(`task statistics are written again (${this.droppedTasks} task attempt(s) dropped so far)`);
      this.failing = false;
      for (const s of sent) {
        const tasks = s.succeeded + s.failed;
        // Aged out while this flush was under way: its tasks did reach the database after all.
        if (s.cell.gone) this.droppedTasks -= Math.max(0, tasks - s.cell.writtenTasks);
        if (s.version > s.cell.written) Object.assign(s.cell, { written: s.version, writtenTasks: tasks });
      }
    }
    this.release(Date.now());
  }

  /** Lets go of closed buckets whose final counts are written. */
  private release(now: number): void {
    const current = bucketOf(now);
    for (const [key, c] of this.cells) {
      if (c.bucket < current && c.version === c.written) {
        this.cells.delete(key);
        this.floor = Math.max(this.floor, c.bucket + BUCKET_MS);
      }
    }
  }

  /** Drops buckets past the kept hour, written or not (their rows are the housekeeper's to delete). */
  private ageOut(now: number): void {
    this.agedAt = bucketOf(now);
    const oldest = bucketOf(now - STATS_KEEP_MS) + BUCKET_MS;
    this.floor = Math.max(this.floor, oldest);
    for (const [key, c] of this.cells) {
      if (c.bucket >= oldest) continue;
      this.droppedTasks += c.succeeded + c.failed - c.writtenTasks;
      c.gone = true;
      this.cells.delete(key);
    }
  }
}
