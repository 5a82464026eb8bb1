import { EntityManager } from 'typeorm';
import { sqlRows } from '../connectors/repo/sql';

/** The width of a task_stats bucket: finished tasks are counted per 10 s of their finish time. */
export const BUCKET_MS = 10_000;
/** How long task_stats rows are kept (and how far back GET /v1/stats reaches). */
export const STATS_KEEP_MS = 3_600_000;

/** The start of the bucket holding instant `t` (epoch ms). */
export function bucketOf(t: number): number {
  return Math.floor(t / BUCKET_MS) * BUCKET_MS;
}

/**
 * Deletes up to `limit` task_stats rows older than STATS_KEEP_MS (by the database's clock), for the
 * housekeeper. Picking them by ctid first keeps each statement bounded; the (bucket, user_id, source) index
 * finds them. Rows that old are no longer upserted (the recorders age their cells out after the same hour);
 * one updated in between has a new ctid and is simply left for the next pass.
 */
export async function deleteExpiredTaskStats(tx: EntityManager, limit: number): Promise<number> {
  const rows = await sqlRows<{ bucket: Date }>(
    tx,
    `DELETE FROM task_stats WHERE ctid = ANY(ARRAY(
       SELECT ctid FROM task_stats WHERE bucket < now() - $1::float8 * interval '1 millisecond' LIMIT $2
     )) RETURNING bucket`,
    [STATS_KEEP_MS, limit],
  );
  return rows.length;
}
