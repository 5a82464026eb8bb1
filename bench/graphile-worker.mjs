// The graphile-worker side of the comparison, in its own process like Karya's executor and the BullMQ worker:
// a graphile-worker runner (tuned as its performance page recommends: a local queue, batched completion,
// LISTEN/NOTIFY for new jobs, polling for jobs that fall due later) making the same POST to the same sink
// (Idempotency-Key = the per-job key the job carries, the body {"due": …}).
import { Logger, run } from 'graphile-worker';
import { postToSink, sinkPool } from './lib/sink-post.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
/** The settings, as JSON from the harness (bench/lib/graphile.mjs GRAPHILE_TUNING). */
const tuning = JSON.parse(env('BENCH_TUNING'));
const sink = sinkPool(env('BENCH_SINK_PORT'), tuning.sinkConnections);

// graphile-worker logs every completed job at info level: 20,000 log lines per burst would cost this process
// CPU the other peers do not spend. Warnings and errors still go to the log.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') process.stderr.write(`${level}: ${message}\n`);
});

const runner = await run({
  noHandleSignals: true,
  preset: {
    worker: {
      connectionString: env('BENCH_PG_URL'),
      concurrentJobs: tuning.concurrentJobs,
      maxPoolSize: tuning.maxPoolSize,
      pollInterval: tuning.pollInterval,
      logger,
      localQueue: { size: tuning.localQueueSize },
      completeJobBatchDelay: tuning.completeJobBatchDelay,
      failJobBatchDelay: tuning.failJobBatchDelay,
    },
  },
  taskList: {
    post: (payload) => postToSink(sink, /** @type {{ run: string, key: string, due: number }} */ (payload)),
  },
});
process.stdout.write('WORKER_READY\n');

const stop = async () => {
  await runner.stop();
  await sink.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
