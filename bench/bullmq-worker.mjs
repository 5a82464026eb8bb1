// The BullMQ side of the comparison, in its own process like Karya's executor: a Worker with tuned
// concurrency making the same POST to the same sink (Idempotency-Key = job id, the body the job carries).
import { Worker } from 'bullmq';
import { postToSink, sinkPool } from './lib/sink-post.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const queue = env('BENCH_QUEUE');
const concurrency = Number(env('BENCH_CONCURRENCY'));
const sink = sinkPool(env('BENCH_SINK_PORT'), Number(env('BENCH_CONNECTIONS')));

const worker = new Worker(
  queue,
  (job) => postToSink(sink, { run: job.data.run, key: String(job.id), due: job.data.due }),
  {
    connection: { host: env('BENCH_REDIS_HOST'), port: Number(env('BENCH_REDIS_PORT')), maxRetriesPerRequest: null },
    concurrency,
    removeOnComplete: { count: 0 },
    removeOnFail: { count: 100_000 },
  },
);
worker.on('error', (e) => process.stderr.write(`worker error: ${e.message}\n`));
worker.on('failed', (job, e) => process.stderr.write(`job ${job?.id} failed: ${e.message}\n`));
await worker.waitUntilReady();
process.stdout.write('WORKER_READY\n');

const stop = async () => {
  await worker.close();
  await sink.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
