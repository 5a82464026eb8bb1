// Drain probe (a developer's tool, not the benchmark): starts a Karya deployment, stores N OneTime plans
// due at one instant directly with SQL (no API submission, so it starts in seconds), and reports the drain
// rate, the lateness and what PostgreSQL's connections were doing while it drained.
//
//   node bench/probe.mjs [--kind split|all] [--n 20000] [--lead ms] [--cpu-prof] [--keep-db] [--tuning bench|original]
//
// --tuning original runs the deployment with the original Karya's sample scheduler.yml / executor.yml
// values (ORIGINAL_SAMPLE in lib/karya.mjs) instead of the bench's TUNING.
// --cpu-prof writes V8 CPU profiles of every Karya process into the printed directory. PostgreSQL's work per
// task (rows, HOT updates, WAL) is printed too: see bench/lib/pg-work.mjs.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cpuDelta, cpuSnapshot, formatCpu } from './lib/cpu.mjs';
import { ORIGINAL_SAMPLE, planBody, TUNING } from './lib/karya.mjs';
import { ROOT, withProbeDeployment } from './lib/probe-deployment.mjs';
import { Child, childNames, sleep } from './lib/proc.mjs';
import { log, SinkClient, summarise } from './lib/util.mjs';
import { enablePgStatements, formatPgWork, pgWorkDelta, pgWorkSnapshot } from './lib/pg-work.mjs';

const { values: args } = parseArgs({
  options: {
    kind: { type: 'string', default: 'split' },
    n: { type: 'string', default: '20000' },
    'cpu-prof': { type: 'boolean', default: false },
    lead: { type: 'string', default: '5000' },
    'keep-db': { type: 'boolean', default: false },
    tuning: { type: 'string', default: 'bench' },
  },
});
if (!['bench', 'original'].includes(args.tuning)) throw new Error(`--tuning: expected bench or original, got ${args.tuning}`);
const tuning = args.tuning === 'original' ? ORIGINAL_SAMPLE : TUNING;
const N = Number(args.n);
await withProbeDeployment({ kind: args.kind, cpuProf: args['cpu-prof'], keepDb: args['keep-db'], tuning }, async ({ dir, dbName, dbUrl, userId }) => {
  const sinkChild = new Child('sink', join(ROOT, 'bench/sink.mjs'), {}, dir, ROOT);
  const sinkPort = Number((await sinkChild.waitForStdout(/SINK_PORT=(\d+)/))[1]);
  const sink = new SinkClient(sinkPort);
  const run = `probe-${process.pid}`;
  const T = Date.now() + Number(args.lead);
  const body = JSON.parse(planBody(userId, 'probe', 0, `127.0.0.1:${sinkPort}/r/${run}`, T));
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  const statements = await enablePgStatements(db);
  const w00 = await pgWorkSnapshot(db, statements);
  await db.query(
    `WITH ids AS (SELECT gen_random_uuid() AS plan_id, gen_random_uuid() AS task_id, g FROM generate_series(1, $1::int) g),
     p AS (INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
           SELECT plan_id, $2, 'probe', 'PT1S', $3::jsonb, 'CREATED', 0, $4::jsonb, '[]'::jsonb, NULL, now(), now() FROM ids)
     INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, next_execution_at)
     SELECT task_id, 1 + (g % $5::int), plan_id, 'CREATED', 0, now(), to_timestamp($6::float8 / 1000) FROM ids`,
    [N, userId, JSON.stringify(body.plan_type), JSON.stringify(body.action), TUNING.partitions, T],
  );
  await db.query('ANALYZE tasks');
  const w0 = await pgWorkSnapshot(db, statements);
  log(`stored ${N} plans due at T; waiting`);
  while (Date.now() < T) await sleep(20);
  const cpu0 = cpuSnapshot(childNames());
  let cpu1 = cpu0;
  const states = {};
  const sampler = setInterval(() => {
    void db.query(
      `SELECT application_name, state, wait_event_type, wait_event, left(query, 60) AS q FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
      [dbName],
    ).then(({ rows }) => {
      for (const r of rows) {
        const k = `${r.state}|${r.wait_event_type ?? ''}:${r.wait_event ?? ''}|${r.q.replace(/\s+/g, ' ')}`;
        states[k] = (states[k] ?? 0) + 1;
      }
    }, () => undefined);
  }, 250);
  const rec = await sink.waitFor(run, N, { label: 'probe', timeoutMs: 600_000, notBefore: T + 3000, idleMs: 10_000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
  clearInterval(sampler);
  const w1 = await pgWorkSnapshot(db, statements);
  const r = summarise(rec, N, { start: T });
  log(`${r.distinct}/${N} in ${(r.spanMs / 1000).toFixed(2)} s → ${r.rate} tasks/s; lateness p50 ${r.lateness.p50} p90 ${r.lateness.p90} p99 ${r.lateness.p99} max ${r.lateness.max}; lost ${r.lost} dup ${r.duplicates}`);
  log(`CPU: ${formatCpu(cpuDelta(cpu0, cpu1))}`);
  log(`PostgreSQL, storing (SQL, not the API): ${formatPgWork(pgWorkDelta(w00, w0, N))}`);
  log(`PostgreSQL, draining: ${formatPgWork(pgWorkDelta(w0, w1, N))}`);
  log('pg_stat_activity samples (state | wait | query):');
  for (const [k, v] of Object.entries(states).sort((a, b) => b[1] - a[1]).slice(0, 25)) log(`  ${v}\t${k}`);
  await db.end();
});
