import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { latenessSlot } from './lateness-histogram';
import { TaskStatsRecorder } from './task-stats.recorder';
import { BUCKET_MS, bucketOf, STATS_KEEP_MS } from './task-stats';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';

/** A task_stats row as the fake database holds it. */
interface Row { bucket: number; userId: string; source: string; succeeded: number; failed: number; lateness: number[] }

/**
 * A data source applying the recorder's upsert as PostgreSQL would (overwrite the row of (bucket, user,
 * source) unless it already holds as many tasks). `down`: fails before writing; `lostReply`: writes, then
 * fails as a dropped connection would after the commit.
 */
function fakeDatabase() {
  const rows = new Map<string, Row>();
  const db = {
    down: false,
    lostReply: false,
    statements: 0,
    /** How many cells each statement carried. */
    sent: [] as number[],
    rows: () => [...rows.values()].sort((x, y) => x.bucket - y.bucket || x.userId.localeCompare(y.userId)),
    query: async (sql: string, p: unknown[]): Promise<unknown> => {
      db.statements++;
      if (db.down) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      expect(sql).toMatch(/ON CONFLICT \(bucket, user_id, source\) DO UPDATE\s+SET succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, lateness = EXCLUDED.lateness/);
      const [source, buckets, users, ok, failed, lateness] = p as [string, Date[], string[], number[], number[], string[]];
      db.sent.push(buckets.length);
      buckets.forEach((b, i) => {
        const key = `${b.getTime()} ${users[i]} ${source}`;
        const old = rows.get(key);
        if (old && old.succeeded + old.failed >= ok[i] + failed[i]) return;
        rows.set(key, { bucket: b.getTime(), userId: users[i], source, succeeded: ok[i], failed: failed[i], lateness: JSON.parse(`[${lateness[i].slice(1, -1)}]`) });
      });
      if (db.lostReply) throw new Error('Connection terminated unexpectedly');
      return [];
    },
  };
  return db;
}

describe('TaskStatsRecorder', () => {
  // The outage warnings are expected here.
  beforeAll(() => Logger.overrideLogger(false));
  afterEach(() => jest.useRealTimers());

  it('writes what is left at shutdown, and does not hold shutdown up when the database does not answer', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    recorder.onApplicationBootstrap();
    recorder.finished(A, Date.now(), true, 0);
    await recorder.onApplicationShutdown();
    expect(db.rows().map((r) => [r.succeeded, r.source])).toEqual([[1, recorder.source]]);

    const silent = new TaskStatsRecorder({ query: () => new Promise(() => undefined) } as unknown as DataSource);
    silent.finished(A, Date.now(), true, 0);
    const started = Date.now();
    await silent.onApplicationShutdown();
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('adds up per (10 s bucket, user) in memory and upserts the changed cells once per flush, nothing when idle', async () => {
    jest.useFakeTimers({ now: bucketOf(Date.now()) + 1000, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    const t = bucketOf(Date.now()) - BUCKET_MS;
    recorder.finished(A, t + 1, true, 0.002);
    recorder.finished(A, t + 9_999, false, 0.002);
    recorder.finished(A, t + BUCKET_MS, true, 70);
    recorder.finished(B, t + 5, true, null);
    expect(db.statements).toBe(0);
    await recorder.flush();
    expect(db.sent).toEqual([3]);
    const slot = latenessSlot(0.002);
    const rows = db.rows();
    expect(rows.map(({ lateness, source: _, ...r }) => ({ ...r, late: lateness.reduce((s, n) => s + n, 0) }))).toEqual([
      { bucket: t, userId: A, succeeded: 1, failed: 1, late: 2 },
      { bucket: t, userId: B, succeeded: 1, failed: 0, late: 0 },
      { bucket: t + BUCKET_MS, userId: A, succeeded: 1, failed: 0, late: 1 },
    ]);
    expect(rows[0].lateness[slot]).toBe(2);
    expect(rows[2].lateness[rows[2].lateness.length - 1]).toBe(1);
    // The closed bucket t is written: it left memory. The current one stays, and only it is sent again.
    expect(recorder.size).toBe(1);
    await recorder.flush();
    expect(db.statements).toBe(1);
    recorder.finished(A, Date.now(), true, 0.002);
    await recorder.flush();
    expect(db.sent).toEqual([3, 1]);
    expect(db.rows().map((r) => r.succeeded)).toEqual([1, 1, 2]);
  });

  it('re-sends the absolute counts after a failed flush, so one that committed unseen counts nothing twice', async () => {
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    const t = Date.now();
    db.lostReply = true;
    recorder.finished(A, t, true, 0.01);
    await expect(recorder.flush()).resolves.toBeUndefined();
    db.lostReply = false;
    db.down = true;
    recorder.finished(A, t, false, 0.01);
    await recorder.flush();
    expect(db.rows().map((r) => [r.succeeded, r.failed])).toEqual([[1, 0]]);
    db.down = false;
    await recorder.flush();
    expect(db.rows()).toHaveLength(1);
    expect(db.rows()[0]).toMatchObject({ userId: A, succeeded: 1, failed: 1 });
    expect(db.rows()[0].lateness[latenessSlot(0.01)]).toBe(2);
    // A retry of the same values changes nothing either.
    recorder.finished(A, t, true, 0.01);
    db.lostReply = true;
    await recorder.flush();
    db.lostReply = false;
    await recorder.flush();
    expect(db.rows().map((r) => [r.succeeded, r.failed])).toEqual([[2, 1]]);
    expect(recorder.droppedTasks).toBe(0);
  });

  it('counts a late finish in a bucket already let go in the oldest kept one, instead of overwriting its row', async () => {
    jest.useFakeTimers({ now: bucketOf(Date.now()) + 1000, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const db = fakeDatabase();
    const recorder = new TaskStatsRecorder(db as unknown as DataSource);
    const old = bucketOf(Date.now()) - BUCKET_MS;
    recorder.finished(A, old, true, 0);
    recorder.finished(A, old, true, 0);
    await recorder.flush();
    expect(recorder.size).toBe(0);
    recorder.finished(A, old + 5, true, 0);
    await recorder.flush();
    expect(db.rows().map((r) => [r.bucket, r.succeeded])).toEqual([[old, 2], [old + BUCKET_MS, 1]]);
  });

  it('drops (and counts) buckets older than an hour while a flush hangs, keeping at most 361 buckets per user', async () => {
    const start = bucketOf(Date.now());
    jest.useFakeTimers({ now: start, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    let calls = 0;
    const hung = { query: () => { calls++; return new Promise(() => undefined); } };
    const recorder = new TaskStatsRecorder(hung as unknown as DataSource);
    recorder.onApplicationBootstrap();
    recorder.finished(A, start, true, 0);
    recorder.finished(B, start, false, 0);
    // Two hours of tasks, one every 5 s per user, while the first flush never returns.
    let tasks = 2;
    while (Date.now() < start + 2 * STATS_KEEP_MS) {
      jest.advanceTimersByTime(5000);
      recorder.finished(A, Date.now(), true, 0);
      recorder.finished(B, Date.now(), true, 0);
      tasks += 2;
      expect(recorder.size).toBeLessThanOrEqual(2 * 361);
    }
    expect(calls).toBe(1);
    // Kept: the 360 buckets of the last hour per user, 359 full ones (two tasks each) and the current one
    // (just begun: one task). Everything else was dropped, and counted.
    expect(recorder.size).toBe(2 * 360);
    expect(recorder.droppedTasks).toBe(tasks - 2 * (359 * 2 + 1));
    clearInterval((recorder as unknown as { timer: NodeJS.Timeout }).timer);
  });

  it('ages a bucket out while a flush carrying it is under way, and takes its tasks back off droppedTasks when that flush succeeds', async () => {
    let release!: () => void;
    const ds = { query: () => new Promise<void>((resolve) => (release = resolve)) };
    const start = bucketOf(Date.now());
    jest.useFakeTimers({ now: start, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    const recorder = new TaskStatsRecorder(ds as unknown as DataSource);
    recorder.finished(A, start, true, 0);
    const flushing = recorder.flush();
    jest.setSystemTime(start + STATS_KEEP_MS + BUCKET_MS);
    recorder.finished(B, Date.now(), true, 0);
    expect(recorder.droppedTasks).toBe(1);
    release();
    await flushing;
    expect(recorder.droppedTasks).toBe(0);
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
