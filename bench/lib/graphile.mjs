// graphile-worker producer side: jobs scheduled ahead with `run_at` (WorkerUtils.addJobs, i.e. one
// `graphile_worker.add_jobs` call per chunk), in a database of their own, executed by
// bench/graphile-worker.mjs.
import { join } from 'node:path';
import { Logger, makeWorkerUtils } from 'graphile-worker';
import { Child } from './proc.mjs';
import { addRateLoop, progress, round } from './util.mjs';

/**
 * Worker settings from graphile-worker's performance page (https://worker.graphile.org/docs/performance):
 * its benchmark configuration uses a local queue of 500, completeJobBatchDelay / failJobBatchDelay 0 and a
 * pool of concurrentJobs + 1; its option docs advise maxPoolSize = max(10, concurrentJobs + 2). Concurrency
 * 64 = the sink pool's connections (each job is one HTTP call; more in flight would only queue in the pool).
 * pollInterval 100 ms = Karya's pollFrequency: new jobs are announced by LISTEN/NOTIFY on insert, but jobs
 * scheduled ahead (run_at) are found by polling, so this bounds their lateness (default 2,000 ms).
 */
export const GRAPHILE_TUNING = {
  version: '0.17.3',
  workerProcesses: 1,
  concurrentJobs: 64,
  maxPoolSize: 66,
  pollInterval: 100,
  localQueueSize: 500,
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
  listenNotify: 'on (graphile-worker always LISTENs for jobs:insert)',
  sinkConnections: 64,
  addJobsChunk: 1000,
  producerPoolSize: 16,
  jobOptions: 'maxAttempts 1, run_at = due time, payload {run, key, due}',
};

const quiet = new Logger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
});

export class GraphileBench {
  /** @param {{ root: string, dir: string, pgUrl: string, sinkPort: number }} o */
  constructor(o) {
    this.o = o;
    /** @type {Child | undefined} */
    this.worker = undefined;
    /** @type {import('graphile-worker').WorkerUtils | undefined} */
    this.utils = undefined;
  }

  /** Starts the worker process (which installs graphile-worker's schema), then the producer's utils. */
  async startWorker() {
    this.worker = new Child('graphile-worker', join(this.o.root, 'bench/graphile-worker.mjs'), {
      BENCH_PG_URL: this.o.pgUrl,
      BENCH_SINK_PORT: String(this.o.sinkPort),
      BENCH_TUNING: JSON.stringify(GRAPHILE_TUNING),
    }, this.o.dir, this.o.root);
    await this.worker.waitForStdout(/WORKER_READY/, 60_000);
    this.utils = await makeWorkerUtils({ connectionString: this.o.pgUrl, maxPoolSize: GRAPHILE_TUNING.producerPoolSize, logger: quiet });
    return this.worker.pid;
  }

  /** Adds one job per due instant (epoch ms) with run_at = due, `addJobsChunk` per add_jobs call. */
  async addDelayed(run, dues, label) {
    const utils = /** @type {import('graphile-worker').WorkerUtils} */ (this.utils);
    const t0 = Date.now();
    let overran = 0;
    const chunk = GRAPHILE_TUNING.addJobsChunk;
    for (let i = 0; i < dues.length; i += chunk) {
      const now = Date.now();
      const specs = [];
      for (let j = i; j < Math.min(dues.length, i + chunk); j++) {
        if (dues[j] < now) overran++;
        specs.push({ identifier: 'post', payload: { run, key: `${run}-${j}`, due: dues[j] }, runAt: new Date(dues[j]), maxAttempts: 1 });
      }
      await utils.addJobs(specs);
      progress(`${label}: added ${Math.min(dues.length, i + chunk)}/${dues.length} jobs`);
    }
    const ms = Date.now() - t0;
    return { ms, overran, rate: round((dues.length * 1000) / ms, 0) };
  }

  /**
   * The submission counterpart of POST /v1/plan: `addJob` one job at a time, `connections` in flight, for
   * `seconds`; the jobs are for a task the worker does not know, due in 10 years, and deleted afterwards.
   */
  async addRate(o) {
    const utils = /** @type {import('graphile-worker').WorkerUtils} */ (this.utils);
    const runAt = new Date(Date.now() + 3650 * 86_400_000);
    const r = await addRateLoop('graphile-worker submission', o, () => utils.addJob('never', { run: 'never', due: 0 }, { runAt, maxAttempts: 1 }));
    await utils.withPgClient((c) => c.query(
      `DELETE FROM graphile_worker._private_jobs WHERE task_id = (SELECT id FROM graphile_worker._private_tasks WHERE identifier = 'never')`,
    ));
    return r;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    await this.worker?.stop(10_000);
    await this.utils?.release().catch(() => undefined);
  }
}
