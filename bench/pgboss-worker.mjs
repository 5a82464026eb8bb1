// The pg-boss side of the comparison, in its own process like Karya's executor and the BullMQ worker:
// pg-boss 10 workers (`work()` called `workers` times, each fetching `batchSize` jobs per poll, as its
// maintainer recommends since v10 removed teamSize) making the same POST to the same sink
// (Idempotency-Key = the per-job key the job carries, the body {"due": …}). A batch's jobs run concurrently
// (bounded by the sink pool's connections); pg-boss completes them together, or fails them together when one
// call failed (retryLimit 0: a failed job is a lost task, like BullMQ's attempts 1).
import PgBoss from 'pg-boss';
import { Pool } from 'undici';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
/** The settings, as JSON from the harness (bench/lib/pgboss.mjs PGBOSS_TUNING). */
const tuning = JSON.parse(env('BENCH_TUNING'));
const queue = env('BENCH_QUEUE');
const sink = new Pool(`http://127.0.0.1:${env('BENCH_SINK_PORT')}`, {
  connections: tuning.sinkConnections,
  pipelining: 1,
  keepAliveTimeout: 60_000,
});

const boss = new PgBoss({ connectionString: env('BENCH_PG_URL'), max: tuning.poolSize });
boss.on('error', (e) => process.stderr.write(`pg-boss error: ${e.message}\n`));
await boss.start();
await boss.createQueue(queue, { retryLimit: 0 });

/** @param {{ run: string, key: string, due: number }} d */
async function post(d) {
  const { statusCode, body } = await sink.request({
    path: `/r/${d.run}`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': d.key },
    body: JSON.stringify({ due: d.due }),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  await body.dump();
  if (statusCode < 200 || statusCode >= 300) throw new Error(`sink answered ${statusCode}`);
}

for (let i = 0; i < tuning.workers; i++) {
  await boss.work(queue, { batchSize: tuning.batchSize, pollingIntervalSeconds: tuning.pollingIntervalSeconds }, async (jobs) => {
    await Promise.all(jobs.map((j) => post(/** @type {{ run: string, key: string, due: number }} */ (j.data))));
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
