// pg-boss producer side: jobs scheduled ahead with `startAfter` (boss.insert, one statement per chunk), in a
// database of their own, executed by bench/pgboss-worker.mjs.
import { join } from 'node:path';
import PgBoss from 'pg-boss';
import { Child } from './proc.mjs';
import { addRateLoop, progress, round } from './util.mjs';

/**
 * pg-boss 10 has no per-job concurrency option: its maintainer's advice (timgit/pg-boss#483, #542) is a
 * batchSize per fetch with the batch's jobs run concurrently in the handler, and more polling workers by
 * calling work() more than once. Each worker fetches one batch, runs it, completes it, and then waits out the
 * rest of its polling interval (at least 0.5 s, its minimum) before the next fetch, so a worker carries at
 * most batchSize / interval jobs a second: 4 workers × 500 per 0.5 s = 4,000/s. There is no LISTEN/NOTIFY:
 * jobs scheduled ahead are found by polling, so the interval bounds their lateness. Pool size: pg-boss's
 * default (10).
 */
export const PGBOSS_TUNING = {
  version: '10.4.2',
  workerProcesses: 1,
  workers: 4,
  batchSize: 500,
  pollingIntervalSeconds: 0.5,
  poolSize: 10,
  sinkConnections: 64,
  insertChunk: 1000,
  producerPoolSize: 16,
  jobOptions: 'queue retryLimit 0, startAfter = due time, data {run, key, due}',
};

export class PgBossBench {
  /** @param {{ root: string, dir: string, pgUrl: string, sinkPort: number, queueName: string }} o */
  constructor(o) {
    this.o = o;
    /** @type {Child | undefined} */
    this.worker = undefined;
    /** @type {PgBoss | undefined} */
    this.boss = undefined;
  }

  /** Starts the worker process (which installs pg-boss's schema and creates the queue), then the producer. */
  async startWorker() {
    this.worker = new Child('pgboss-worker', join(this.o.root, 'bench/pgboss-worker.mjs'), {
      BENCH_PG_URL: this.o.pgUrl,
      BENCH_QUEUE: this.o.queueName,
      BENCH_SINK_PORT: String(this.o.sinkPort),
      BENCH_TUNING: JSON.stringify(PGBOSS_TUNING),
    }, this.o.dir, this.o.root);
    await this.worker.waitForStdout(/WORKER_READY/, 60_000);
    // The producer only sends: maintenance and cron run in the worker process.
    this.boss = new PgBoss({ connectionString: this.o.pgUrl, max: PGBOSS_TUNING.producerPoolSize, supervise: false, schedule: false, migrate: false });
    this.boss.on('error', (e) => process.stderr.write(`pg-boss (producer): ${e.message}\n`));
    await this.boss.start();
    return this.worker.pid;
  }

  /** Adds one job per due instant (epoch ms) with startAfter = due, `insertChunk` per insert() call. */
  async addDelayed(run, dues, label) {
    const boss = /** @type {PgBoss} */ (this.boss);
    const t0 = Date.now();
    let overran = 0;
    const chunk = PGBOSS_TUNING.insertChunk;
    for (let i = 0; i < dues.length; i += chunk) {
      const now = Date.now();
      const jobs = [];
      for (let j = i; j < Math.min(dues.length, i + chunk); j++) {
        if (dues[j] < now) overran++;
        // A startAfter string ending in Z is cast to timestamptz (an absolute instant) by insert().
        jobs.push({ name: this.o.queueName, data: { run, key: `${run}-${j}`, due: dues[j] }, startAfter: new Date(dues[j]).toISOString() });
      }
      await boss.insert(jobs);
      progress(`${label}: added ${Math.min(dues.length, i + chunk)}/${dues.length} jobs`);
    }
    const ms = Date.now() - t0;
    return { ms, overran, rate: round((dues.length * 1000) / ms, 0) };
  }

  /**
   * The submission counterpart of POST /v1/plan: `send` one job at a time, `connections` in flight, for
   * `seconds`, on a queue of its own (no worker), due in 10 years; the queue is deleted afterwards.
   */
  async addRate(o) {
    const boss = /** @type {PgBoss} */ (this.boss);
    const q = `${this.o.queueName}-submit`;
    await boss.createQueue(q, { retryLimit: 0 });
    const startAfter = new Date(Date.now() + 3650 * 86_400_000);
    const r = await addRateLoop('pg-boss submission', o, () => boss.send(q, { run: 'never', due: 0 }, { startAfter }));
    // delete_queue refuses while jobs reference the queue: purge (deletes the queued jobs) first.
    await boss.purgeQueue(q);
    await boss.deleteQueue(q);
    return r;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.worker?.stop(10_000);
    await this.boss?.stop({ graceful: false, wait: true }).catch(() => undefined);
  }
}
