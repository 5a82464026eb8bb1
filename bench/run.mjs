// Karya benchmark harness: `npm run bench` (quick) or `npm run bench -- --profile full`.
//
// In one run, on one machine: the hardware's limits (PostgreSQL claims and commits, RabbitMQ with confirms,
// the sink), then Karya split into roles (1 server, 1 scheduler, 1 executor) and Karya with every role in one
// process, each as real `node dist/main.js` processes on real PostgreSQL, Redis and RabbitMQ, then BullMQ on
// the same Redis with the same sink. Prints a table, writes bench/results/<time>-<profile>.json, and exits 1
// when any task was lost. See BENCHMARKS.md.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { cpus, totalmem, tmpdir, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { BULL_TUNING, BullBench } from './lib/bullmq.mjs';
import {
  createUser, deleteSubmissionPlans, insertBacklog, purgeKaryaQueues, startKarya, submissionBench, submitPlans, taskDues, TUNING,
} from './lib/karya.mjs';
import { measureLimits } from './lib/limits.mjs';
import { cpuDelta, cpuSnapshot, formatCpu } from './lib/cpu.mjs';
import { Child, childNames, killAll, sleep } from './lib/proc.mjs';
import { formatReport, goals, updateBenchmarksMd } from './lib/report.mjs';
import { log, round, SinkClient, summarise } from './lib/util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const PROFILES = {
  quick: {
    burst: 20_000,
    steady: { rate: 500, seconds: 30 },
    /** The `all` deployment's steady window (shorter in quick, to stay under 5 minutes). */
    steadyAll: { rate: 500, seconds: 15 },
    submission: { connections: 64, seconds: 10 },
    limits: { seconds: 4, claimRows: 300_000 },
    backlog: 0,
  },
  full: {
    burst: 100_000,
    steady: { rate: 500, seconds: 60 },
    steadyAll: { rate: 500, seconds: 60 },
    submission: { connections: 64, seconds: 10 },
    limits: { seconds: 5, claimRows: 1_000_000 },
    backlog: 1_000_000,
  },
  /** A minute-long check that the harness itself works (not a benchmark). */
  smoke: {
    burst: 2_000,
    steady: { rate: 200, seconds: 5 },
    steadyAll: { rate: 200, seconds: 5 },
    submission: { connections: 64, seconds: 2 },
    limits: { seconds: 1, claimRows: 50_000 },
    backlog: Number(process.env.KARYA_BENCH_SMOKE_BACKLOG ?? 0),
  },
};

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'quick' },
    'skip-bullmq': { type: 'boolean', default: false },
    'only': { type: 'string' }, // split | all: run one Karya deployment
    'update-doc': { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    backlog: { type: 'string' }, // override the profile's backlog size (the burst is repeated with that many stored future tasks)
  },
});
const profileName = args.profile ?? 'quick';
const P = PROFILES[/** @type {'quick'|'full'} */ (profileName)];
if (!P) {
  process.stderr.write(`unknown profile ${profileName}: use quick or full\n`);
  process.exit(2);
}
if (args.backlog !== undefined) P.backlog = Number(args.backlog);
/**
 * Connections used to submit the burst and steady plans. Fewer than the submission benchmark's 64: the
 * server stamps created_at when it handles a request, so queueing in the server would spread the due
 * times of a burst that should all fall at T (the spread is reported as dueSpreadMs). 16 was too few once
 * submissions were group-committed (the server then answers in a few ms, and 16 requests in flight left
 * it half idle): 32 keeps the spread in milliseconds and the server busy.
 */
const WORKLOAD_CONNECTIONS = 32;

const SERVICES = {
  pgAdmin: process.env.KARYA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redis: { host: '127.0.0.1', port: Number(process.env.KARYA_BENCH_REDIS_PORT ?? 6379) },
  rabbit: { host: '127.0.0.1', port: Number(process.env.KARYA_BENCH_RABBIT_PORT ?? 5672), user: 'guest', password: 'guest' },
};
const AMQP_URL = `amqp://${SERVICES.rabbit.user}:${SERVICES.rabbit.password}@${SERVICES.rabbit.host}:${SERVICES.rabbit.port}`;

const startedAt = new Date();
const TAG = `${startedAt.toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${process.pid}`;
const DIR = mkdtempSync(join(tmpdir(), 'karya-bench-'));
/** Cleanup steps, run last-in first-out whatever happens. */
const cleanups = [];
const databases = [];

function dbUrl(name) {
  const u = new URL(SERVICES.pgAdmin);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: SERVICES.pgAdmin });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

async function createDatabase(suffix) {
  const name = `karya_bench_${TAG}_${suffix}`.toLowerCase();
  await adminQuery(`CREATE DATABASE ${name}`);
  databases.push(name);
  return { name, url: dbUrl(name) };
}

async function machine() {
  const cpuModel = (() => {
    try {
      return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model;
    } catch {
      return cpus()[0]?.model;
    }
  })();
  const pgv = (await adminQuery('SHOW server_version')).rows[0].server_version;
  const pgSettings = Object.fromEntries((await adminQuery(
    `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections', 'wal_level')`,
  )).rows.map((r) => [r.name, r.setting]));
  const redis = new Redis({ ...SERVICES.redis, lazyConnect: true });
  await redis.connect();
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
  redis.disconnect();
  const conn = await amqp.connect(AMQP_URL);
  const rabbitVersion = conn.connection?.serverProperties?.version;
  await conn.close();
  return {
    cpus: cpus().length,
    cpuModel,
    memGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    postgres: pgv,
    postgresSettings: pgSettings,
    redis: redisVersion,
    rabbitmq: rabbitVersion,
  };
}

/**
 * Lead time before a workload falls due: long enough to submit `n` items at half of `rate` (the harness's
 * own client, building every body, is slower than autocannon replaying one), plus 3 s. A submission that
 * still overruns the due time is reported (`overran`): its tail then competes with the drain.
 */
const leadMs = (n, rate) => Math.round((n / Math.max(100, 0.5 * rate)) * 1000 + 3000);

/** Sleeps until `at` (epoch ms), then returns a CPU snapshot. */
async function untilThenSnapshot(at, label) {
  const wait = at - Date.now();
  if (wait > 0) {
    log(`${label}: waiting ${(wait / 1000).toFixed(1)} s for the due time`);
    await sleep(wait);
  }
  return cpuSnapshot(childNames());
}
/** How long to wait for `n` tasks after they fall due before calling the rest lost. */
const drainTimeoutMs = (n, leadOrWindowMs) => leadOrWindowMs + Math.max(120_000, (n / 100) * 1000);

/** @param {SinkClient} sink */
async function karyaBurst(sink, dep, pgc, userId, sinkPort, run, n, submitRate, label) {
  const lead = leadMs(n, submitRate);
  const T = Date.now() + lead;
  log(`${label}: submitting ${n} OneTime plans through POST /v1/plan, all due at T = now + ${(lead / 1000).toFixed(1)} s`);
  const sub = await submitPlans(dep.serverPort, userId, run, sinkPort, new Array(n).fill(T), { label, connections: WORKLOAD_CONNECTIONS });
  log(`${label}: submitted in ${(sub.ms / 1000).toFixed(1)} s (${sub.rate}/s), ${((T - Date.now()) / 1000).toFixed(1)} s before T` +
    (sub.overran ? `; ${sub.overran} submitted after T` : ''));
  const cpu0 = await untilThenSnapshot(T, label);
  let cpu1 = cpu0;
  const rec = await sink.waitFor(run, n, { label, timeoutMs: drainTimeoutMs(n, 0), notBefore: T + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
  const cpu = cpuDelta(cpu0, cpu1);
  log(`${label}: CPU cores used while draining: ${formatCpu(cpu)}`);
  const { dues, statuses } = await taskDues(pgc, sub.planIds);
  const dueValues = [...dues.values()];
  const r = summarise(rec, n, { start: T, dueOf: (key) => dues.get(key) });
  const foreign = rec.keys.filter((k) => !dues.has(k)).length;
  log(`${label}: ${r.distinct}/${n} in ${(r.spanMs / 1000).toFixed(2)} s from T → ${r.rate} tasks/s; lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
  return {
    ...r,
    T,
    dueSpreadMs: dueValues.length ? round(Math.max(...dueValues) - Math.min(...dueValues), 1) : null,
    submit: { ms: sub.ms, rate: sub.rate, overran: sub.overran },
    taskStatuses: statuses,
    unknownKeys: foreign,
    cpu,
  };
}

async function karyaSteady(sink, dep, pgc, userId, sinkPort, run, { rate, seconds }, submitRate, label) {
  const n = rate * seconds;
  const lead = leadMs(n, submitRate);
  const W0 = Date.now() + lead;
  const dues = Array.from({ length: n }, (_, i) => Math.round(W0 + (i * 1000) / rate));
  log(`${label}: submitting ${n} plans due at ${rate}/s for ${seconds} s, window starts in ${(lead / 1000).toFixed(1)} s`);
  const sub = await submitPlans(dep.serverPort, userId, run, sinkPort, dues, { label, connections: WORKLOAD_CONNECTIONS });
  const margin = W0 - Date.now();
  log(`${label}: submitted in ${(sub.ms / 1000).toFixed(1)} s, window starts in ${(margin / 1000).toFixed(1)} s` +
    (margin < 0 ? ' (submission overran the window start: the window overlapped the submission)' : ''));
  const cpu0 = await untilThenSnapshot(W0, label);
  let cpu1 = cpu0;
  const rec = await sink.waitFor(run, n, { label, timeoutMs: drainTimeoutMs(n, seconds * 1000), notBefore: W0 + seconds * 1000 + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
  const cpu = cpuDelta(cpu0, cpu1);
  log(`${label}: CPU cores used during the window: ${formatCpu(cpu)}`);
  const { dues: dbDues, statuses } = await taskDues(pgc, sub.planIds);
  const r = summarise(rec, n, { start: W0, dueOf: (key) => dbDues.get(key) });
  log(`${label}: lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
  return { ...r, rateOffered: rate, seconds, W0, submit: { ms: sub.ms, rate: sub.rate, overran: sub.overran, marginMs: margin }, taskStatuses: statuses, cpu };
}

async function runKarya(kind, sink, sinkPort) {
  const label = `karya-${kind}`;
  log(`== ${label}: ${kind === 'split' ? '1 server + 1 scheduler + 1 executor' : 'KARYA_ROLE=all, one process'}`);
  const db = await createDatabase(kind);
  const purged = await purgeKaryaQueues(AMQP_URL);
  log(`${label}: purged Karya's queues (${Object.entries(purged).map(([q, n]) => `${q}: ${n}`).join(', ')})`);
  const dep = await startKarya(kind, { root: ROOT, dir: DIR, pgUrl: db.url, services: SERVICES });
  cleanups.push(() => dep.stop());
  log(`${label}: started ${Object.entries(dep.pids).map(([r, p]) => `${r} pid ${p}`).join(', ')}`);
  const pgc = new pg.Client({ connectionString: db.url });
  await pgc.connect();
  cleanups.push(() => pgc.end().catch(() => undefined));
  const userId = await createUser(dep.serverPort, `bench-${kind}`);
  /** @type {any} */
  const out = { kind, pids: dep.pids, database: db.name };

  log(`${label}: submission — POST /v1/plan, ${P.submission.connections} connections, ${P.submission.seconds} s (autocannon)`);
  const s0 = cpuSnapshot(childNames());
  out.submission = await submissionBench(dep.serverPort, userId, sinkPort, P.submission);
  out.submission.cpu = cpuDelta(s0, cpuSnapshot(childNames()));
  log(`${label}: submission CPU cores: ${formatCpu(out.submission.cpu)}`);
  out.submission.deletedAfter = await deleteSubmissionPlans(pgc);
  log(`${label}: submission ${out.submission.rate} req/s, p99 ${out.submission.latencyMs.p99} ms, non-2xx ${out.submission.non2xx}, errors ${out.submission.errors}`);
  const submitRate = Math.max(500, out.submission.rate);

  out.burst = await karyaBurst(sink, dep, pgc, userId, sinkPort, `${TAG}-${kind}-burst`, P.burst, submitRate, `${label} burst`);
  const steadyCfg = kind === 'split' ? P.steady : P.steadyAll;
  // The burst's own submission (same connections as the steady one) is the better estimate of how fast plans go in.
  const steadySubmitRate = Math.max(100, Math.min(submitRate, out.burst.submit.rate));
  out.steady = await karyaSteady(sink, dep, pgc, userId, sinkPort, `${TAG}-${kind}-steady`, steadyCfg, steadySubmitRate, `${label} steady`);

  if (P.backlog > 0 && kind === 'split') {
    log(`${label}: backlog — storing ${P.backlog} future plans + tasks with SQL, then the burst again`);
    const t0 = Date.now();
    await insertBacklog(pgc, P.backlog);
    out.backlogInsertMs = Date.now() - t0;
    out.burstBacklog = await karyaBurst(sink, dep, pgc, userId, sinkPort, `${TAG}-${kind}-burst-backlog`, P.burst, submitRate, `${label} burst+backlog`);
    out.burstBacklog.backlog = P.backlog;
  }
  out.alive = dep.alive();
  out.exit = await dep.stop();
  if (!out.alive) log(`${label}: a process died during the run\n${dep.tails()}`);
  return out;
}

async function runBull(sink, sinkPort) {
  log('== bullmq: delayed jobs (addBulk), one worker process, same Redis, same sink');
  const bull = new BullBench({ root: ROOT, dir: DIR, redis: SERVICES.redis, sinkPort, queueName: `karya-bench-${TAG}` });
  cleanups.push(() => bull.close());
  const pid = await bull.startWorker();
  const out = { pid, queue: `karya-bench-${TAG}` };
  const addRate = 5000;

  {
    const run = `${TAG}-bullmq-burst`;
    const n = P.burst;
    const T = Date.now() + leadMs(n, addRate);
    log(`bullmq burst: adding ${n} delayed jobs, all due at T = now + ${((T - Date.now()) / 1000).toFixed(1)} s`);
    const add = await bull.addDelayed(run, new Array(n).fill(T), 'bullmq burst');
    log(`bullmq burst: added in ${(add.ms / 1000).toFixed(1)} s (${add.rate}/s)`);
    const cpu0 = await untilThenSnapshot(T, 'bullmq burst');
    let cpu1 = cpu0;
    const rec = await sink.waitFor(run, n, { label: 'bullmq burst', timeoutMs: drainTimeoutMs(n, 0), notBefore: T + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
    const cpu = cpuDelta(cpu0, cpu1);
    log(`bullmq burst: CPU cores used while draining: ${formatCpu(cpu)}`);
    const r = summarise(rec, n, { start: T });
    log(`bullmq burst: ${r.distinct}/${n} in ${(r.spanMs / 1000).toFixed(2)} s → ${r.rate} tasks/s; lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
    out.burst = { ...r, T, add, cpu };
  }
  {
    const run = `${TAG}-bullmq-steady`;
    const { rate, seconds } = P.steady;
    const n = rate * seconds;
    const W0 = Date.now() + leadMs(n, addRate);
    const dues = Array.from({ length: n }, (_, i) => Math.round(W0 + (i * 1000) / rate));
    log(`bullmq steady: adding ${n} delayed jobs due at ${rate}/s for ${seconds} s`);
    const add = await bull.addDelayed(run, dues, 'bullmq steady');
    const cpu0 = await untilThenSnapshot(W0, 'bullmq steady');
    let cpu1 = cpu0;
    const rec = await sink.waitFor(run, n, { label: 'bullmq steady', timeoutMs: drainTimeoutMs(n, seconds * 1000), notBefore: W0 + seconds * 1000 + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
    const cpu = cpuDelta(cpu0, cpu1);
    log(`bullmq steady: CPU cores used during the window: ${formatCpu(cpu)}`);
    const r = summarise(rec, n, { start: W0 });
    log(`bullmq steady: lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
    out.steady = { ...r, rateOffered: rate, seconds, W0, add, cpu };
  }
  log(`bullmq submission: queue.add one at a time, ${P.submission.connections} in flight, ${P.submission.seconds} s`);
  out.submission = await bull.addRate(P.submission);
  log(`bullmq submission: ${out.submission.rate} jobs/s, p99 ${out.submission.latencyMs.p99} ms`);
  await bull.close();
  return out;
}

async function cleanup() {
  while (cleanups.length > 0) {
    const step = cleanups.pop();
    try {
      await step();
    } catch (e) {
      log(`cleanup: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  await killAll();
  for (const name of databases.splice(0)) {
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((e) => log(`cleanup: drop ${name}: ${e.message}`));
  }
}

async function main() {
  log(`karya bench, profile ${profileName}: burst ${P.burst}, steady ${P.steady.rate}/s × ${P.steady.seconds} s, submission ${P.submission.connections} conns × ${P.submission.seconds} s${P.backlog ? `, backlog ${P.backlog}` : ''}; logs in ${DIR}`);
  if (!existsSync(join(ROOT, 'dist/main.js'))) throw new Error('dist/main.js is missing: run `npm run build` (npm run bench does)');
  const info = await machine();
  log(`machine: ${info.cpus} × ${info.cpuModel}, ${info.memGiB} GiB, Node ${info.node}, PostgreSQL ${info.postgres}, Redis ${info.redis}, RabbitMQ ${info.rabbitmq}`);

  // KARYA_BENCH_SINK_DROP (tests only): the sink forgets that many calls per run, so the harness's
  // loss detection and its exit code can be proved without breaking Karya.
  const drop = process.env.KARYA_BENCH_SINK_DROP;
  const sinkChild = new Child('sink', join(ROOT, 'bench/sink.mjs'), drop ? { KARYA_BENCH_SINK_DROP: drop } : {}, DIR, ROOT);
  cleanups.push(() => sinkChild.stop(5000));
  const sinkPort = Number((await sinkChild.waitForStdout(/SINK_PORT=(\d+)/))[1]);
  const sink = new SinkClient(sinkPort);
  log(`sink: pid ${sinkChild.pid}, 127.0.0.1:${sinkPort}`);

  /** @type {any} */
  const results = {
    profile: profileName, settings: P, startedAt: startedAt.toISOString(), machine: info,
    tuning: { karya: TUNING, bullmq: BULL_TUNING, workloadSubmitConnections: WORKLOAD_CONNECTIONS }, karya: {},
  };

  log('== hardware limits (nothing else running)');
  const limitsDb = await createDatabase('limits');
  results.limits = await measureLimits({ pgUrl: limitsDb.url, amqpUrl: AMQP_URL, sinkPort, seconds: P.limits.seconds, claimRows: P.limits.claimRows, tag: TAG });
  await sink.forget(`limit-${TAG}`);

  for (const kind of /** @type {const} */ (['split', 'all'])) {
    if (args.only && args.only !== kind) continue;
    results.karya[kind] = await runKarya(kind, sink, sinkPort);
  }
  if (!args['skip-bullmq']) results.bullmq = await runBull(sink, sinkPort);

  results.finishedAt = new Date().toISOString();
  results.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);
  results.goals = goals(results);

  const report = formatReport(results);
  process.stdout.write(`\n${report}\n`);
  const resultsDir = process.env.KARYA_BENCH_RESULTS_DIR ?? join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}-${profileName}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results: ${file}`);
  if (profileName === 'full' || args['update-doc']) {
    updateBenchmarksMd(join(ROOT, 'BENCHMARKS.md'), results, report, file.slice(ROOT.length + 1));
    log('BENCHMARKS.md: latest-run section updated');
  }
  return results;
}

let exitCode = 0;
let interrupted = false;
const onSignal = (sig) => {
  if (interrupted) return;
  interrupted = true;
  log(`${sig}: stopping and cleaning up`);
  void cleanup().finally(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  const results = await main();
  const lost = results.goals.lostTotal;
  if (lost > 0) {
    process.stderr.write(`\nFAILED: ${lost} task(s) lost (see the table)\n`);
    exitCode = 1;
  }
} catch (e) {
  process.stderr.write(`\nFAILED: ${e instanceof Error ? e.stack : String(e)}\nlogs: ${DIR}\n`);
  exitCode = 2;
} finally {
  await cleanup();
  await sleep(50);
  if (exitCode === 0 && !args['keep-logs']) rmSync(DIR, { recursive: true, force: true });
  else log(`process logs kept in ${DIR}`);
}
process.exit(exitCode);
