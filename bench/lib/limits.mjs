// The machine's own limits for the operations Karya is made of, measured in the same run:
// PostgreSQL batched claims and single-row commits, RabbitMQ persistent publish+consume with confirms,
// and the sink's request rate from a tight keep-alive client.
import amqp from 'amqplib';
import pg from 'pg';
import { Pool as HttpPool } from 'undici';
import { log, progress, round } from './util.mjs';

/** Runs `step` (returning how many items it did) on `conns` loops for `seconds`; returns items/s. */
async function timed(label, seconds, conns, step) {
  const end = Date.now() + seconds * 1000;
  const t0 = Date.now();
  let n = 0;
  let shown = Date.now();
  let exhausted = false;
  await Promise.all(Array.from({ length: conns }, async (_, w) => {
    while (Date.now() < end && !exhausted) {
      const k = await step(w);
      if (k === 0) exhausted = true;
      n += k;
      if (Date.now() - shown >= 1000) {
        shown = Date.now();
        progress(`limits: ${label}: ${n} so far`);
      }
    }
  }));
  const ms = Date.now() - t0;
  return { items: n, ms, rate: round((n * 1000) / ms, 0), exhausted };
}

/** Batched `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) … RETURNING`, as Karya's claim. */
export async function pgClaimRate(url, { seconds, rows, batch = 500, conns = 3 }) {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  try {
    await setup.query('DROP TABLE IF EXISTS bench_claim');
    await setup.query(`CREATE TABLE bench_claim (id bigint PRIMARY KEY, s int NOT NULL DEFAULT 0, due timestamptz NOT NULL,
      dispatch_seq int NOT NULL DEFAULT 0, lease_until timestamptz, plan_id uuid NOT NULL)`);
    await setup.query(`INSERT INTO bench_claim (id, due, plan_id)
      SELECT g, now() - interval '1 hour' + g * interval '1 microsecond', gen_random_uuid() FROM generate_series(1, $1::int) g`, [rows]);
    await setup.query('CREATE INDEX bench_claim_due ON bench_claim (due) WHERE s = 0');
    await setup.query('VACUUM ANALYZE bench_claim');
  } finally {
    await setup.end();
  }
  const clients = await Promise.all(Array.from({ length: conns }, async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  }));
  try {
    const sql = `WITH picked AS (SELECT id FROM bench_claim WHERE s = 0 AND due <= now() ORDER BY due LIMIT $1 FOR UPDATE SKIP LOCKED)
      UPDATE bench_claim t SET s = 1, dispatch_seq = t.dispatch_seq + 1, lease_until = now() + interval '30 seconds'
      FROM picked WHERE t.id = picked.id RETURNING t.id, t.plan_id, t.dispatch_seq`;
    const r = await timed('pg claim', seconds, conns, async (w) => (await clients[w].query(sql, [batch])).rowCount ?? 0);
    return { ...r, batch, conns, tableRows: rows };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/** One INSERT per transaction (autocommit), from `conns` connections. */
export async function pgCommitRate(url, { seconds, conns }) {
  const clients = await Promise.all(Array.from({ length: conns }, async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  }));
  try {
    await clients[0].query('CREATE TABLE IF NOT EXISTS bench_commit (id bigserial PRIMARY KEY, v text NOT NULL)');
    const r = await timed(`pg commit x${conns}`, seconds, conns, async (w) => {
      await clients[w].query('INSERT INTO bench_commit (v) VALUES ($1)', ['x'.repeat(100)]);
      return 1;
    });
    return { ...r, conns };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/**
 * Persistent messages (~Karya's executor message size) to a durable queue on a confirm channel, with a
 * window of unconfirmed messages, while a consumer on another connection acks each one. Rate = consumed/s.
 */
export async function rabbitRate(amqpUrl, queue, { seconds, window = 1000, prefetch = 256 }) {
  const pubConn = await amqp.connect(amqpUrl);
  const subConn = await amqp.connect(amqpUrl);
  try {
    const pub = await pubConn.createConfirmChannel();
    await pub.assertQueue(queue, { durable: true });
    await pub.purgeQueue(queue);
    const sub = await subConn.createChannel();
    await sub.prefetch(prefetch);
    let consumed = 0;
    let counting = false;
    await sub.consume(queue, (m) => {
      if (!m) return;
      if (counting) consumed++;
      sub.ack(m);
    });
    const payload = Buffer.from(JSON.stringify({ type: 'bench', planId: crypto.randomUUID(), taskId: crypto.randomUUID(), partitionKey: 3,
      attempt: 1, dispatchSeq: 1, maxFailureRetry: 0, toBeExecutedAt: Date.now(),
      action: { type: 'karya.core.entities.Action.RestApiRequest', base_url: '127.0.0.1:1/r/x', method: 'POST', protocol: 'HTTP',
        headers: { 'content-type': 'application/json' }, body: { type: 'karya.core.entities.http.Body.JsonBody', json_string: '{"due":1}' }, timeout: 10000 } }));
    counting = true;
    const t0 = Date.now();
    const end = t0 + seconds * 1000;
    let published = 0;
    let shown = t0;
    while (Date.now() < end) {
      for (let i = 0; i < window; i++) pub.sendToQueue(queue, payload, { persistent: true });
      await pub.waitForConfirms();
      published += window;
      if (Date.now() - shown >= 1000) {
        shown = Date.now();
        progress(`limits: rabbitmq: ${published} published, ${consumed} consumed`);
      }
    }
    const ms = Date.now() - t0;
    const got = consumed;
    counting = false;
    await pub.deleteQueue(queue).catch(() => undefined);
    return { published, consumed: got, ms, rate: round((got * 1000) / ms, 0), publishRate: round((published * 1000) / ms, 0), window, prefetch };
  } finally {
    await subConn.close().catch(() => undefined);
    await pubConn.close().catch(() => undefined);
  }
}

/** POSTs to the sink from a keep-alive pool, `connections` in flight, for `seconds`. */
export async function sinkRate(sinkPort, run, { seconds, connections = 64 }) {
  const pool = new HttpPool(`http://127.0.0.1:${sinkPort}`, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  let i = 0;
  try {
    const post = async () => {
      const { statusCode, body } = await pool.request({
        path: `/r/${run}`, method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `k${i++}` },
        body: `{"due":${Date.now()}}`,
      });
      await body.dump();
      if (statusCode !== 200) throw new Error(`sink ${statusCode}`);
      return 1;
    };
    await timed('sink warm-up', 1, connections, post); // JIT warm-up, not counted
    const r = await timed('sink', seconds, connections, post);
    return { ...r, connections };
  } finally {
    await pool.close();
  }
}

/** All four, one after the other, with nothing else running. */
export async function measureLimits({ pgUrl, amqpUrl, sinkPort, seconds, claimRows, tag }) {
  log('limits: PostgreSQL batched claim (UPDATE … SKIP LOCKED … RETURNING, 500 a batch, 3 connections)');
  const pgClaim = await pgClaimRate(pgUrl, { seconds, rows: claimRows });
  log(`limits: pg claim ${pgClaim.rate} rows/s${pgClaim.exhausted ? ' (table exhausted early)' : ''}`);
  log('limits: PostgreSQL single-row commits');
  const pgCommit1 = await pgCommitRate(pgUrl, { seconds: Math.max(2, Math.round(seconds / 2)), conns: 1 });
  const pgCommit8 = await pgCommitRate(pgUrl, { seconds, conns: 8 });
  log(`limits: pg commits ${pgCommit1.rate}/s (1 connection), ${pgCommit8.rate}/s (8 connections)`);
  log('limits: RabbitMQ persistent publish (confirms) + consume (acks)');
  const rabbit = await rabbitRate(amqpUrl, `karya-bench-limit-${tag}`, { seconds });
  log(`limits: rabbitmq ${rabbit.rate} msgs/s consumed (${rabbit.publishRate}/s published)`);
  log('limits: sink requests/s (keep-alive, 64 connections)');
  const sink = await sinkRate(sinkPort, `limit-${tag}`, { seconds });
  log(`limits: sink ${sink.rate} req/s`);
  return { pgClaim, pgCommit1, pgCommit8, rabbit, sink };
}
