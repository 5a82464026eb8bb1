// The HTTP sink every benchmarked action calls: a separate process on 127.0.0.1 that records, per run,
// the first receive time, the call count and the due time (from the JSON body) of every Idempotency-Key.
//
//   POST /r/<run>            record a call (Idempotency-Key header; body may hold {"due": <epoch ms>}), answer 200
//   POST /f/<k>/<run>        the same, but answer 500 while X-Karya-Attempt ≤ k (the soak's failures: k = 1
//                            fails the first attempt, a k above max_failure_retry exhausts the retries)
//   GET  /count?run=<run>    {"distinct": n, "total": n}
//   GET  /records?run=<run>  {"keys": [...], "first": [...], "due": [...], "count": [...], "fails": [...],
//                            "plan": [...], "attempt": [...]} (parallel arrays; count = calls answered 200,
//                            fails = calls answered 500, plan and attempt = X-Karya-Plan-Id and
//                            X-Karya-Attempt of the key's first call)
//   GET  /records?run=<run>&take=1   the same, and forget the run (the soak collects as it goes, so the sink's
//                            memory stays flat over a long run)
//   DELETE /runs?run=<run>   forget a run
//
// Prints `SINK_PORT=<port>` on stdout once listening. Times are epoch milliseconds with sub-ms precision.
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

/** @typedef {{ first: number, due: number, count: number, fails: number, plan: string, attempt: number }} Rec */
/** @type {Map<string, { keys: Map<string, Rec>, total: number, dropped: number }>} */
const runs = new Map();
const origin = performance.timeOrigin;
const DUE = /"due"\s*:\s*(\d+(?:\.\d+)?)/;
const FAILING = /^\/f\/(\d+)\/(.*)$/;
/** Tests only: answer but do not record the first N calls of every run (a simulated lost task). */
const DROP = Number(process.env.KARYA_BENCH_SINK_DROP ?? 0);

function runOf(name) {
  let r = runs.get(name);
  if (!r) runs.set(name, (r = { keys: new Map(), total: 0, dropped: 0 }));
  return r;
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const at = origin + performance.now();
  const url = req.url ?? '/';
  const failing = req.method === 'POST' ? FAILING.exec(url) : null;
  if (req.method === 'POST' && (url.startsWith('/r/') || failing)) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const run = runOf(failing ? failing[2] : url.slice(3));
      if (run.dropped < DROP) {
        run.dropped++;
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok');
        return;
      }
      const key = String(req.headers['idempotency-key'] ?? '');
      const attempt = Number(req.headers['x-karya-attempt'] ?? 1);
      const fail = failing !== null && attempt <= Number(failing[1]);
      run.total++;
      const rec = run.keys.get(key);
      if (rec) {
        if (fail) rec.fails++;
        else rec.count++;
      } else {
        const m = DUE.exec(Buffer.concat(chunks).toString());
        run.keys.set(key, {
          first: at, due: m ? Number(m[1]) : NaN, count: fail ? 0 : 1, fails: fail ? 1 : 0,
          plan: String(req.headers['x-karya-plan-id'] ?? ''), attempt,
        });
      }
      if (fail) res.writeHead(500, { 'content-type': 'text/plain', 'content-length': '4' }).end('fail');
      else res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }).end('ok');
    });
    return;
  }
  const u = new URL(url, 'http://sink');
  const name = u.searchParams.get('run') ?? '';
  if (req.method === 'GET' && u.pathname === '/count') {
    const r = runs.get(name);
    return json(res, 200, { distinct: r?.keys.size ?? 0, total: r?.total ?? 0 });
  }
  if (req.method === 'GET' && u.pathname === '/records') {
    const r = runs.get(name);
    const keys = [], first = [], due = [], count = [], fails = [], plan = [], attempt = [];
    for (const [k, v] of r?.keys ?? []) {
      keys.push(k);
      first.push(v.first);
      due.push(Number.isNaN(v.due) ? null : v.due);
      count.push(v.count);
      fails.push(v.fails);
      plan.push(v.plan);
      attempt.push(v.attempt);
    }
    if (u.searchParams.get('take') === '1') runs.delete(name);
    return json(res, 200, { keys, first, due, count, fails, plan, attempt, total: r?.total ?? 0 });
  }
  if (req.method === 'DELETE' && u.pathname === '/runs') {
    runs.delete(name);
    return json(res, 200, {});
  }
  json(res, 404, { error: 'not found' });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.maxRequestsPerSocket = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`SINK_PORT=${server.address().port}\n`);
});
const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
