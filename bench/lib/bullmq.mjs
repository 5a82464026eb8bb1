// BullMQ producer side: delayed jobs added with addBulk, on the same Redis, executed by bench/bullmq-worker.mjs.
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Child } from './proc.mjs';
import { addRateLoop, progress, round } from './util.mjs';

export const BULL_TUNING = {
  workerProcesses: 1,
  concurrency: 256,
  sinkConnections: 64,
  addBulkChunk: 1000,
  jobOptions: 'attempts 1, removeOnComplete, jobId = <run>-<i>',
};

export class BullBench {
  /** @param {{ root: string, dir: string, redis: {host: string, port: number}, sinkPort: number, queueName: string }} o */
  constructor(o) {
    this.o = o;
    this.connection = { host: o.redis.host, port: o.redis.port, maxRetriesPerRequest: null };
    this.queue = new Queue(o.queueName, { connection: this.connection });
    /** @type {Child | undefined} */
    this.worker = undefined;
  }

  async startWorker() {
    this.worker = new Child('bullmq-worker', join(this.o.root, 'bench/bullmq-worker.mjs'), {
      BENCH_QUEUE: this.o.queueName,
      BENCH_CONCURRENCY: String(BULL_TUNING.concurrency),
      BENCH_CONNECTIONS: String(BULL_TUNING.sinkConnections),
      BENCH_SINK_PORT: String(this.o.sinkPort),
      BENCH_REDIS_HOST: this.o.redis.host,
      BENCH_REDIS_PORT: String(this.o.redis.port),
    }, this.o.dir, this.o.root);
    await this.worker.waitForStdout(/WORKER_READY/, 30_000);
    return this.worker.pid;
  }

  /** Adds one delayed job per due instant (epoch ms), `addBulkChunk` at a time. */
  async addDelayed(run, dues, label) {
    const t0 = Date.now();
    let overran = 0;
    for (let i = 0; i < dues.length; i += BULL_TUNING.addBulkChunk) {
      const now = Date.now();
      const jobs = [];
      for (let j = i; j < Math.min(dues.length, i + BULL_TUNING.addBulkChunk); j++) {
        const delay = Math.round(dues[j] - now);
        if (delay < 0) overran++;
        jobs.push({
          name: 'post',
          data: { run, due: dues[j] },
          opts: { delay: Math.max(0, delay), jobId: `${run}-${j}`, attempts: 1, removeOnComplete: true },
        });
      }
      await this.queue.addBulk(jobs);
      progress(`${label}: added ${Math.min(dues.length, i + BULL_TUNING.addBulkChunk)}/${dues.length} delayed jobs`);
    }
    const ms = Date.now() - t0;
    return { ms, overran, rate: round((dues.length * 1000) / ms, 0) };
  }

  /**
   * The submission counterpart of POST /v1/plan: `queue.add` one job at a time, `connections` in flight,
   * for `seconds`, on a separate queue (delayed 10 years, obliterated afterwards).
   */
  async addRate({ connections, seconds }) {
    const q = new Queue(`${this.o.queueName}-submit`, { connection: this.connection });
    const r = await addRateLoop('bullmq submission', { connections, seconds }, () =>
      q.add('post', { run: 'never', due: 0 }, { delay: 3650 * 86_400_000, attempts: 1 }),
    );
    await q.obliterate({ force: true });
    await q.close();
    return r;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.worker?.stop(10_000);
    await this.queue.obliterate({ force: true }).catch(() => undefined);
    await this.queue.close().catch(() => undefined);
  }
}
