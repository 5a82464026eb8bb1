// What every peer worker process (bench/bullmq-worker.mjs, graphile-worker.mjs, pgboss-worker.mjs) does per
// job: the same keep-alive pool to the sink and the same POST Karya's executor makes, so the peers differ only
// in their queue.
import { Pool } from 'undici';

/** @param {string | number} port @param {number} connections */
export function sinkPool(port, connections) {
  return new Pool(`http://127.0.0.1:${port}`, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
}

/**
 * POST /r/<run> with `Idempotency-Key` = key and body {"due": due}; throws on a non-2xx answer.
 * @param {Pool} sink @param {{ run: string, key: string, due: number }} job
 */
export async function postToSink(sink, { run, key, due }) {
  const { statusCode, body } = await sink.request({
    path: `/r/${run}`,
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key },
    body: JSON.stringify({ due }),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  await body.dump();
  if (statusCode < 200 || statusCode >= 300) throw new Error(`sink answered ${statusCode}`);
}
