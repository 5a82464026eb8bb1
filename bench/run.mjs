// Karya benchmark harness: `npm run bench` (quick) or `npm run bench -- --profile full`.
//
// In one run, on one machine: the hardware's limits (PostgreSQL claims and commits, RabbitMQ with confirms,
// the sink), then Karya split into roles (1 server, 1 scheduler, 1 executor) and Karya with every role in one
// process, each as real `node dist/main.js` processes on real PostgreSQL, Redis and RabbitMQ, then the peers
// with the same sink: BullMQ on the same Redis, graphile-worker and pg-boss each in a PostgreSQL database of
// its own on the same server. With a backlog (full profile, or --backlog N), the split burst is run
// again over N stored future tasks, and once more on a fresh split deployment with a retention while its
// housekeeper deletes N expired finished tasks (--skip-housekeeping leaves that out). Prints a table, writes
// bench/results/<time>-<profile>.json, and exits 1 when any task was lost. See BENCHMARKS.md.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { BULL_TUNING, BullBench } from './lib/bullmq.mjs';
import { GRAPHILE_TUNING, GraphileBench } from './lib/graphile.mjs';
import { PGBOSS_TUNING, PgBossBench } from './lib/pgboss.mjs';
import {
  createUser, deleteSubmissionPlans, housekeeperLog, insertBacklog, insertExpired, purgeKaryaQueues, startKarya, submissionBench, submitPlans,
  taskDues, TUNING,
} from './lib/karya.mjs';
import { measureLimits } from './lib/limits.mjs';
import { cpuDelta, cpuSnapshot, formatCpu } from './lib/cpu.mjs';
import { Child, childNames, sleep } from './lib/proc.mjs';
import { formatReport, goals, updateBenchmarksMd } from './lib/report.mjs';
import { adminQuery, AMQP_URL, dbUrl, machine, runCleanup, SERVICES } from './lib/services.mjs';
import { log, progress, round, SinkClient, summarise } from './lib/util.mjs';

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
    housekeepingRetention: 'PT1H',
  },
  full: {
    burst: 100_000,
    steady: { rate: 500, seconds: 60 },
    steadyAll: { rate: 500, seconds: 60 },
    submission: { connections: 64, seconds: 10 },
    limits: { seconds: 5, claimRows: 1_000_000 },
    backlog: 1_000_000,
    /**
     * scheduler.yml retention of the housekeeping run: every stored row is 30 days old, so any retention
     * expires them; it sets how soon the first pass starts (retention / 10, at most 60 s) and must outlast
     * the burst's drain (the burst's own tasks are read back after it).
     */
    housekeepingRetention: 'PT1H',
  },
  /** A minute-long check that the harness itself works (not a benchmark). */
  smoke: {
    burst: 2_000,
    steady: { rate: 200, seconds: 5 },
    steadyAll: { rate: 200, seconds: 5 },
    submission: { connections: 64, seconds: 2 },
    limits: { seconds: 1, claimRows: 50_000 },
    backlog: Number(process.env.KARYA_BENCH_SMOKE_BACKLOG ?? 0),
    housekeepingRetention: 'PT1M', // first pass 6 s after start rather than 60 s: the smoke run stays short
    /**
     * graphile-worker and pg-boss: smaller workloads and a shorter lead, so that the two add about 20 s to the
     * smoke run (CI runs it). The other profiles give them the same workloads as Karya and BullMQ.
     */
    pgPeers: { burst: 500, steady: { rate: 200, seconds: 2 }, submission: { connections: 64, seconds: 1 }, leadPadMs: 1500 },
  },
};

const { values: args } = parseArgs({
  options: {
    profile: { type: 'string', default: 'quick' },
    'skip-bullmq': { type: 'boolean', default: false },
    'skip-graphile': { type: 'boolean', default: false },
    'skip-pgboss': { type: 'boolean', default: false },
    'skip-peers': { type: 'boolean', default: false }, // BullMQ, graphile-worker and pg-boss
    'only': { type: 'string' }, // split | all: run one Karya deployment; peers: no Karya deployment, only the limits and the peers
    'update-doc': { type: 'boolean', default: false },
    'keep-logs': { type: 'boolean', default: false },
    backlog: { type: 'string' }, // override the profile's backlog size (the burst is repeated with that many stored future tasks)
    // The housekeeping run (with the backlog run: the same number of expired finished tasks, deleted during a burst).
    'skip-housekeeping': { type: 'boolean', default: false },
    'housekeeping-retention': { type: 'string' }, // default: the profile's (PT1H; smoke PT1M)
    'housekeeping-plans': { type: 'string' }, // expired tasks spread over this many plans (default: one COMPLETED OneTime plan each)
  },
});
const profileName = args.profile ?? 'quick';
const P = PROFILES[/** @type {'quick'|'full'} */ (profileName)];
if (!P) {
  process.stderr.write(`unknown profile ${profileName}: use quick, full or smoke\n`);
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

const startedAt = new Date();
const TAG = `${startedAt.toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${process.pid}`;
const DIR = mkdtempSync(join(tmpdir(), 'karya-bench-'));
/** Cleanup steps, run last-in first-out whatever happens. */
const cleanups = [];
const databases = [];

async function createDatabase(suffix) {
  const name = `karya_bench_${TAG}_${suffix}`.toLowerCase();
  await adminQuery(`CREATE DATABASE ${name}`);
  databases.push(name);
  return { name, url: dbUrl(name) };
}

/**
 * Lead time before a workload falls due: long enough to submit `n` items at half of `rate` (the harness's
 * own client, building every body, is slower than autocannon replaying one), plus 3 s. A submission that
 * still overruns the due time is reported (`overran`): its tail then competes with the drain.
 */
const leadMs = (n, rate, padMs = 3000) => Math.round((n / Math.max(100, 0.5 * rate)) * 1000 + padMs);

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

/**
 * @param {SinkClient} sink
 * @param {() => void} [onDrained] called as the drain ends (the last task arrived, or it gave up)
 */
async function karyaBurst(sink, dep, pgc, userId, sinkPort, run, n, submitRate, label, onDrained) {
  const lead = leadMs(n, submitRate);
  const T = Date.now() + lead;
  log(`${label}: submitting ${n} OneTime plans through POST /v1/plan, all due at T = now + ${(lead / 1000).toFixed(1)} s`);
  const sub = await submitPlans(dep.serverPort, userId, run, sinkPort, new Array(n).fill(T), { label, connections: WORKLOAD_CONNECTIONS });
  log(`${label}: submitted in ${(sub.ms / 1000).toFixed(1)} s (${sub.rate}/s), ${((T - Date.now()) / 1000).toFixed(1)} s before T` +
    (sub.overran ? `; ${sub.overran} submitted after T` : ''));
  const cpu0 = await untilThenSnapshot(T, label);
  let cpu1 = cpu0;
  const rec = await sink.waitFor(run, n, {
    label, timeoutMs: drainTimeoutMs(n, 0), notBefore: T + 5000,
    onEnd: () => {
      cpu1 = cpuSnapshot(childNames());
      onDrained?.();
    },
  });
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

/**
 * Counts, every `interval` ms on a connection of its own, the rows of `tasks` matching `predicate` (the
 * expired ones the housekeeper must delete). A plain count(*) (a sequential scan: no index serves it),
 * so it costs PostgreSQL a little; the burst is measured with a 5 s interval.
 */
class RowsLeft {
  constructor(url, predicate) {
    this.client = new pg.Client({ connectionString: url });
    this.predicate = predicate;
    /** @type {{ at: number, left: number }[]} */
    this.samples = [];
    this.interval = 2000;
    this.stopped = false;
  }

  async start() {
    await this.client.connect();
    await this.sampleNow();
    this.loop = (async () => {
      while (!this.stopped) {
        await sleep(this.interval);
        if (!this.stopped) await this.sampleNow().catch((e) => log(`housekeeping: count failed: ${e.message}`));
      }
    })();
  }

  async sampleNow() {
    const { rows } = await this.client.query(`SELECT count(*)::int AS n FROM tasks WHERE ${this.predicate}`);
    const s = { at: Date.now(), left: rows[0].n };
    this.samples.push(s);
    return s;
  }

  get first() {
    return this.samples[0];
  }

  get last() {
    return this.samples[this.samples.length - 1];
  }

  /** The first sample below the initial count (the housekeeper had begun), or null. */
  firstDecrease() {
    return this.samples.find((x) => x.left < this.first.left) ?? null;
  }

  /** When the count last went down (or the first sample). */
  lastProgressAt() {
    for (let i = this.samples.length - 1; i > 0; i--) if (this.samples[i].left < this.samples[i - 1].left) return this.samples[i].at;
    return this.first.at;
  }

  async stop() {
    this.stopped = true;
    await this.loop;
    await this.client.end().catch(() => undefined);
  }
}

/** Longest wait for the housekeeper to begin, and to finish, and how long without progress means it stopped. */
const HOUSEKEEPING_WAITS = { startMs: 90_000, finishMs: 900_000, stallMs: 90_000 };

/**
 * The housekeeping run: a fresh split deployment whose scheduler.yml has a retention; `rows` expired finished
 * tasks are stored before the scheduler starts (insertExpired); once the housekeeper has begun deleting
 * them, the burst again. Reports the burst, how many of the rows were gone when the burst had drained, and
 * how long deleting them all took (from the first count that went down to the first that read 0).
 */
async function karyaHousekeeping(sink, sinkPort, submitRate, rows) {
  const label = 'karya-split burst+housekeeping';
  const retention = args['housekeeping-retention'] ?? P.housekeepingRetention;
  const plans = args['housekeeping-plans'] === undefined ? rows : Number(args['housekeeping-plans']);
  log(`== ${label}: a fresh split deployment with retention ${retention}; ${rows} expired finished tasks stored before its scheduler starts, then the burst while the housekeeper deletes them`);
  const db = await createDatabase('housekeeping');
  await purgeKaryaQueues(AMQP_URL);
  const pgc = new pg.Client({ connectionString: db.url });
  await pgc.connect();
  cleanups.push(() => pgc.end().catch(() => undefined));
  let userId = '';
  let insertMs = 0;
  let predicate = '';
  const dep = await startKarya('split', {
    root: ROOT, dir: DIR, pgUrl: db.url, services: SERVICES, name: 'split-hk',
    config: { scheduler: { retention } },
    beforeRest: async (port) => {
      userId = await createUser(port, 'bench-housekeeping');
      // The template whose action insertExpired copies; due in ten years, it never runs.
      await submitPlans(port, userId, `${TAG}-hk-template`, sinkPort, [Date.now() + 3650 * 86_400_000], { label, connections: 1 });
      const t0 = Date.now();
      predicate = await insertExpired(pgc, rows, { plans });
      insertMs = Date.now() - t0;
    },
  });
  const upAt = Date.now();
  cleanups.push(() => dep.stop());
  const left = new RowsLeft(db.url, predicate);
  await left.start();
  cleanups.push(() => left.stop());
  log(`${label}: ${left.first.left} expired tasks stored in ${(insertMs / 1000).toFixed(1)} s; waiting for the housekeeper's first deletions (its passes start every retention / 10, at most 60 s)`);
  while (left.firstDecrease() === null && Date.now() - upAt < HOUSEKEEPING_WAITS.startMs && dep.alive()) await sleep(500);
  const began = left.firstDecrease();
  log(began
    ? `${label}: deleting began ${((began.at - upAt) / 1000).toFixed(1)} s after the scheduler was up (${left.first.left - began.left} gone at the first count that went down)`
    : `${label}: nothing deleted ${HOUSEKEEPING_WAITS.startMs / 1000} s after the scheduler was up (is the housekeeper built? its log lines are reported); measuring the burst anyway`);

  left.interval = 5000;
  /** @type {Promise<{at: number, left: number}> | undefined} */
  let atDrained;
  const burst = await karyaBurst(sink, dep, pgc, userId, sinkPort, `${TAG}-split-burst-housekeeping`, P.burst, submitRate, label, () => {
    atDrained = left.sampleNow();
  });
  const drained = await atDrained;
  left.interval = 1000;
  log(`${label}: ${left.first.left - drained.left} of ${left.first.left} expired tasks deleted when the burst had drained; waiting for the rest`);
  while (left.last.left > 0 && Date.now() - upAt < HOUSEKEEPING_WAITS.finishMs && Date.now() - left.lastProgressAt() < HOUSEKEEPING_WAITS.stallMs && dep.alive()) {
    await sleep(1000);
    progress(`${label}: ${left.last.left} expired tasks left`);
  }
  await left.stop();
  const startedAt = left.firstDecrease();
  const zero = left.samples.find((x) => x.left === 0) ?? null;
  const plansLeft = (await pgc.query(`SELECT count(*)::int AS n FROM plans WHERE description IN ('expired', 'expired history')`)).rows[0].n;
  const hk = housekeeperLog(dep.procs.find((p) => p.role === 'scheduler').child.logFile);
  const out = {
    ...burst,
    expired: {
      rows: left.first.left,
      plans,
      plansLeftAtEnd: plansLeft,
      retention,
      insertMs,
      deletingBeganAfterMs: startedAt ? startedAt.at - upAt : null,
      deletedBeforeT: left.first.left - (left.samples.filter((x) => x.at <= burst.T).at(-1)?.left ?? left.first.left),
      deletedByBurstEnd: left.first.left - drained.left,
      leftAtEnd: left.last.left,
      // From the first count that went down to the first that read 0 (counts every 1-5 s).
      fullDeletionMs: startedAt && zero ? zero.at - startedAt.at : null,
      finished: zero !== null,
      housekeeper: hk,
    },
    alive: dep.alive(),
  };
  log(`${label}: ${zero ? `all ${left.first.left} expired tasks deleted in ${(out.expired.fullDeletionMs / 1000).toFixed(1)} s` : `${left.last.left} expired tasks still there (gave up)`}; ` +
    `housekeeper log: ${hk.deleted.passes} passes deleted ${hk.deleted.tasks} tasks, ${hk.deleted.plans} plans`);
  out.exit = await dep.stop();
  return out;
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
  if (P.backlog > 0 && kind === 'split' && !args['skip-housekeeping']) {
    out.burstHousekeeping = await karyaHousekeeping(sink, sinkPort, submitRate, P.backlog);
    if (!out.burstHousekeeping.alive) log(`${label}: a process of the housekeeping run died`);
  }
  return out;
}

/**
 * The workloads of one peer queue (BullMQ, graphile-worker, pg-boss), through its own producer and worker
 * process: the burst and the steady window as jobs scheduled ahead (added in chunks with the peer's bulk
 * call), then its submission figure (its own add call, one job at a time). `bench` is a BullBench,
 * GraphileBench or PgBossBench: startWorker(), addDelayed(run, dues, label), addRate(o), close().
 * @param {{ key: string, label: string, bench: any, sizes: { burst: number, steady: { rate: number, seconds: number }, submission: { connections: number, seconds: number }, leadPadMs?: number } }} peer
 */
async function runPeer(sink, { key, label, bench, sizes }) {
  cleanups.push(() => bench.close());
  const pid = await bench.startWorker();
  /** @type {any} */
  const out = { pid };
  /** A lower bound of the bulk add's rate, for the lead (it is measured and reported as `add`). */
  const addRate = 5000;

  {
    const run = `${TAG}-${key}-burst`;
    const n = sizes.burst;
    const T = Date.now() + leadMs(n, addRate, sizes.leadPadMs);
    log(`${label} burst: adding ${n} jobs scheduled ahead, all due at T = now + ${((T - Date.now()) / 1000).toFixed(1)} s`);
    const add = await bench.addDelayed(run, new Array(n).fill(T), `${label} burst`);
    log(`${label} burst: added in ${(add.ms / 1000).toFixed(1)} s (${add.rate}/s)${add.overran ? `; ${add.overran} added after T` : ''}`);
    const cpu0 = await untilThenSnapshot(T, `${label} burst`);
    let cpu1 = cpu0;
    const rec = await sink.waitFor(run, n, { label: `${label} burst`, timeoutMs: drainTimeoutMs(n, 0), notBefore: T + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
    const cpu = cpuDelta(cpu0, cpu1);
    log(`${label} burst: CPU cores used while draining: ${formatCpu(cpu)}`);
    const r = summarise(rec, n, { start: T });
    log(`${label} burst: ${r.distinct}/${n} in ${(r.spanMs / 1000).toFixed(2)} s → ${r.rate} tasks/s; lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
    out.burst = { ...r, T, add, cpu };
  }
  {
    const run = `${TAG}-${key}-steady`;
    const { rate, seconds } = sizes.steady;
    const n = rate * seconds;
    const W0 = Date.now() + leadMs(n, addRate, sizes.leadPadMs);
    const dues = Array.from({ length: n }, (_, i) => Math.round(W0 + (i * 1000) / rate));
    log(`${label} steady: adding ${n} jobs due at ${rate}/s for ${seconds} s`);
    const add = await bench.addDelayed(run, dues, `${label} steady`);
    const cpu0 = await untilThenSnapshot(W0, `${label} steady`);
    let cpu1 = cpu0;
    const rec = await sink.waitFor(run, n, { label: `${label} steady`, timeoutMs: drainTimeoutMs(n, seconds * 1000), notBefore: W0 + seconds * 1000 + 5000, onEnd: () => (cpu1 = cpuSnapshot(childNames())) });
    const cpu = cpuDelta(cpu0, cpu1);
    log(`${label} steady: CPU cores used during the window: ${formatCpu(cpu)}`);
    const r = summarise(rec, n, { start: W0 });
    log(`${label} steady: lateness p50 ${r.lateness.p50} p99 ${r.lateness.p99} max ${r.lateness.max} ms; lost ${r.lost}, duplicates ${r.duplicates}`);
    out.steady = { ...r, rateOffered: rate, seconds, W0, add, cpu };
  }
  log(`${label} submission: its add call one job at a time, ${sizes.submission.connections} in flight, ${sizes.submission.seconds} s`);
  out.submission = await bench.addRate(sizes.submission);
  log(`${label} submission: ${out.submission.rate} jobs/s, p99 ${out.submission.latencyMs.p99} ms`);
  await bench.close();
  return out;
}

async function runBull(sink, sinkPort) {
  log('== bullmq: delayed jobs (addBulk), one worker process, same Redis, same sink');
  const queue = `karya-bench-${TAG}`;
  const bench = new BullBench({ root: ROOT, dir: DIR, redis: SERVICES.redis, sinkPort, queueName: queue });
  return { queue, ...(await runPeer(sink, { key: 'bullmq', label: 'bullmq', bench, sizes: P })) };
}

async function runGraphile(sink, sinkPort) {
  log(`== graphile-worker ${GRAPHILE_TUNING.version}: jobs with run_at (addJobs), one worker process, a database of its own, same sink`);
  const db = await createDatabase('graphile');
  const bench = new GraphileBench({ root: ROOT, dir: DIR, pgUrl: db.url, sinkPort });
  return { database: db.name, ...(await runPeer(sink, { key: 'graphile', label: 'graphile-worker', bench, sizes: P.pgPeers ?? P })) };
}

async function runPgBoss(sink, sinkPort) {
  log(`== pg-boss ${PGBOSS_TUNING.version}: jobs with startAfter (insert), one worker process, a database of its own, same sink`);
  const db = await createDatabase('pgboss');
  const bench = new PgBossBench({ root: ROOT, dir: DIR, pgUrl: db.url, sinkPort, queueName: 'karya-bench' });
  return { database: db.name, ...(await runPeer(sink, { key: 'pgboss', label: 'pg-boss', bench, sizes: P.pgPeers ?? P })) };
}

function cleanup() {
  return runCleanup(cleanups, databases);
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
    tuning: { karya: TUNING, bullmq: BULL_TUNING, graphile: GRAPHILE_TUNING, pgboss: PGBOSS_TUNING, workloadSubmitConnections: WORKLOAD_CONNECTIONS }, karya: {},
  };

  log('== hardware limits (nothing else running)');
  const limitsDb = await createDatabase('limits');
  results.limits = await measureLimits({ pgUrl: limitsDb.url, amqpUrl: AMQP_URL, sinkPort, seconds: P.limits.seconds, claimRows: P.limits.claimRows, tag: TAG });
  await sink.forget(`limit-${TAG}`);

  for (const kind of /** @type {const} */ (['split', 'all'])) {
    if (args.only && args.only !== kind) continue;
    results.karya[kind] = await runKarya(kind, sink, sinkPort);
  }
  const peers = !args['skip-peers'];
  if (peers && !args['skip-bullmq']) results.bullmq = await runBull(sink, sinkPort);
  if (peers && !args['skip-graphile']) results.graphile = await runGraphile(sink, sinkPort);
  if (peers && !args['skip-pgboss']) results.pgboss = await runPgBoss(sink, sinkPort);

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
