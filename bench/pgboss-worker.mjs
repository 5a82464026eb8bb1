// The pg-boss side of the comparison, in its own process like Karya's executor and the BullMQ worker:
// pg-boss 10 workers (`work()` called `workers` times, each fetching `batchSize` jobs per poll, as its
// maintainer recommends since v10 removed teamSize) making the same POST to the same sink
// (Idempotency-Key = the per-job key the job carries, the body {"due": …}). A batch's jobs run concurrently
// (bounded by the sink pool's connections); pg-boss completes them together, or fails them together when one
// call failed (retryLimit 0: a failed job is a lost task, like BullMQ's attempts 1).
import PgBoss from 'pg-boss';
import { postToSink, sinkPool } from './lib/sink-post.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
/** The settings, as JSON from the harness (bench/lib/pgboss.mjs PGBOSS_TUNING). */
const tuning = JSON.parse(env('BENCH_TUNING'));
const queue = env('BENCH_QUEUE');
const sink = sinkPool(env('BENCH_SINK_PORT'), tuning.sinkConnections);

const boss = new PgBoss({ connectionString: env('BENCH_PG_URL'), max: tuning.poolSize });
boss.on('error', (e) => process.stderr.write(`pg-boss error: ${e.message}\n`));
await boss.start();
await boss.createQueue(queue, { retryLimit: 0 });

for (let i = 0; i < tuning.workers; i++) {
  await boss.work(queue, { batchSize: tuning.batchSize, pollingIntervalSeconds: tuning.pollingIntervalSeconds }, async (jobs) => {
    await Promise.all(jobs.map((j) => postToSink(sink, /** @type {{ run: string, key: string, due: number }} */ (j.data))));
  });
}
process.stdout.write('WORKER_READY\n');

const stop = async () => {
  await boss.stop({ graceful: true, timeout: 5000, wait: true });
  await sink.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
