import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { latenessSlot } from './lateness-histogram';
import { TaskStatsRecorder } from './task-stats.recorder';
import { BUCKET_MS, bucketOf, STATS_KEEP_MS } from './task-stats';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

/** What one INSERT carried: a row per (bucket, user). */
interface Row { bucket: number; userId: string; succeeded: number; failed: number; lateness: number[] }

/** A data source whose INSERTs fail while `down`, recording the rows of those that go through. */
function fakeDatabase() {
  const db = {
    down: false,
    statements: 0,
    rows: [] as Row[],
    query: async (_sql: string, p: unknown[]): Promise<unknown> => {
      db.statements++;
      if (db.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      const [buckets, users, ok, failed, lateness] = p as [Date[], string[], number[], number[], string[]];
      buckets.forEach((b, i) =>
        db.rows.push({ bucket: b.getTime(), userId: users[i], succeeded: ok[i], failed: failed[i], lateness: JSON.parse(`[${lateness[i].slice(1, -1)}]`) }),
      );
      return [];
    },
  };
  return db;
}

describe('TaskStatsRecorder', () => {
  // The outage warnings are expected here.
  beforeAll(() => Logger.overrideLogger(false));

  it('writes what is left at shutdown, and does not hold shutdown up when the database does not answer', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    recorder.onApplicationBootstrap();
    recorder.finished(A, Date.now(), true, 0);
    await recorder.beforeApplicationShutdown();
    expect(db.rows.map((r) => r.succeeded)).toEqual([1]);

    const silent = new TaskStatsRecorder({ query: () => new Promise(() => undefined) } as unknown as DataSource);
    silent.finished(A, Date.now(), true, 0);
    const started = Date.now();
    await silent.beforeApplicationShutdown();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('adds up per (10 s bucket, user) in memory and writes one INSERT per flush, nothing when idle', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    const t = bucketOf(Date.now());
    recorder.finished(A, t + 1, true, 0.002);
    recorder.finished(A, t + 9_999, false, 0.002);
    recorder.finished(A, t + BUCKET_MS, true, 70);
    recorder.finished(B, t + 5, true, null);
    expect(db.statements).toBe(0);
    await recorder.flush();
    expect(db.statements).toBe(1);
    const slot = latenessSlot(0.002);
    const rows = [...db.rows].sort((x, y) => x.bucket - y.bucket || x.userId.localeCompare(y.userId));
    expect(rows.map(({ lateness, ...r }) => ({ ...r, late: lateness.reduce((s, n) => s + n, 0) }))).toEqual([
      { bucket: t, userId: A, succeeded: 1, failed: 1, late: 2 },
      { bucket: t, userId: B, succeeded: 1, failed: 0, late: 0 },
      { bucket: t + BUCKET_MS, userId: A, succeeded: 1, failed: 0, late: 1 },
    ]);
    expect(rows[0].lateness[slot]).toBe(2);
    expect(rows[2].lateness[rows[2].lateness.length - 1]).toBe(1);
    await recorder.flush();
    expect(db.statements).toBe(1);
  });

  it('keeps the counts of a failed flush for the next one, merged with new ones, without throwing', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    const t = Date.now();
    db.down = true;
    recorder.finished(A, t, true, 0.01);
    await expect(recorder.flush()).resolves.toBeUndefined();
    recorder.finished(A, t, false, 0.01);
    await recorder.flush();
    expect(db.rows).toEqual([]);
    db.down = false;
    await recorder.flush();
    expect(db.rows).toHaveLength(1);
    expect(db.rows[0]).toMatchObject({ userId: A, succeeded: 1, failed: 1 });
    expect(db.rows[0].lateness[latenessSlot(0.01)]).toBe(2);
    expect(recorder.droppedTasks).toBe(0);
  });

  it('drops (and counts) buckets older than an hour while the database stays down', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    db.down = true;
    recorder.finished(A, Date.now() - STATS_KEEP_MS - BUCKET_MS, true, 0);
    recorder.finished(A, Date.now() - STATS_KEEP_MS - BUCKET_MS, false, 0);
    recorder.finished(B, Date.now(), true, 0);
    await recorder.flush();
    expect(recorder.droppedTasks).toBe(2);
    db.down = false;
    await recorder.flush();
    expect(db.rows.map((r) => r.userId)).toEqual([B]);
  });

  it('runs one flush at a time: a second call while one is under way waits for it', async () => {
    let release!: () => void;
    let calls = 0;
    const ds = { query: () => { calls++; return new Promise<void>((resolve) => (release = resolve)); } };
    const recorder = new TaskStatsRecorder(ds as unknown as DataSource);
    recorder.finished(A, Date.now(), true, 0);
    const first = recorder.flush();
    const second = recorder.flush();
    expect(calls).toBe(1);
    release();
    await Promise.all([first, second]);
    expect(calls).toBe(1);
  });
});
