// Karya soak run: `npm run soak -- --minutes N [--rate 300] [--retention PT2M]` (defaults: 30 minutes, 300/s, PT2M).
//
// Starts the split deployment (1 server, 1 scheduler, 1 executor: real `node dist/main.js` processes on real
// PostgreSQL, Redis and RabbitMQ, a fresh database of its own) with scheduler.yml `retention` set (default
// PT2M, so that the housekeeper deletes finished history during the run) and a short executor retry backoff,
// then submits `rate` plans/s (open loop, POST /v1/plan) for N minutes, mixed per 100 plans:
//   80 plain      OneTime REST call to the sink, answered 200
//    6 retry      OneTime, the sink answers 500 to the first 1 or 2 attempts, then 200 (max_failure_retry 3)
//    5 hooked     OneTime answered 200, with an ON_COMPLETION and an ON_FAILURE REST hook to the sink
//                 (ON_COMPLETION fires once)
//    3 hookRetry  OneTime failing its first attempt then succeeding, both hooks, every hook's first try
//                 answered 500 (hook_retries): 2 hook deliveries
//    4 exhaust    OneTime answered 500 every time, max_failure_retry 1: 2 attempts, 2 ON_FAILURE hooks, a
//                 dead letter
//    2 recurring  Recurring PT5S ending 32.5 s after submission: 7 runs, so the live set stays steady
// OneTime plans are due 2 s after the server stores them (period PT2S).
//
// Every minute it prints one row: RSS of each Karya process and of the sink (mean of samples of
// /proc/<pid>/status VmRSS every 5 s), lateness p50/p99 of the tasks received that minute, the database
// size (pg_database_size), and counts (plans submitted, sink calls received, submission errors, rows in
// tasks, plans, dead_letters, hook_retries, messages in Karya's queues).
//
// PostgreSQL's autovacuum is off on the development machine (a server-wide setting, so not ours to change):
// there, tables bloat without end and the soak would measure that. `--vacuum auto` (the default) then runs
// VACUUM (ANALYZE) on Karya's tables from the harness after every minute's row, standing in for autovacuum
// (naptime 1 min); `--vacuum on|off` forces it. The output says which applied.
//
// Lateness = sink receive time of a OneTime plan's first attempt (X-Karya-Attempt: 1, every OneTime kind)
// − its due time, created_at (from the POST /v1/plan answer, epoch ms as stored) + 2 s. The first attempt
// is the cleanest measure: retries are due at a backoff the executor picks, recurring runs at a slot the
// scheduler computes.
//
// Verdict (exit 1 on FAIL, 2 when the harness itself failed):
//   - Growth rule, for N ≥ 4 minutes. Minute i (1-based) is in quarter ⌈4i/N⌉. For each Karya process
//     (server, scheduler, executor), FAIL when the mean of its per-minute RSS over the last quarter (Q4) is
//     more than 20 % above the mean over the second quarter (Q2). For lateness p50 and for p99, FAIL when the
//     Q4 mean of the per-minute values exceeds the Q2 mean by more than 20 % AND by at least 5 ms (a growth
//     under 5 ms is never a failure: a p50 of a few ms moves by that much from noise alone). Q1 is warm-up
//     and is not compared. The sink's RSS and the database size are reported, not judged (the sink is the
//     harness's instrument; the database's size is the housekeeper's business and has its own figures).
//     With N < 4 the rule is not applied (reported as such); `--minute-seconds` shortens the "minutes" to
//     try the rule quickly (e.g. --minutes 4 --minute-seconds 20).
//   - Loss: after the last submission, a drain (until everything expected arrived, or at most 32.5 s (the
//     last recurring plan's span) + --drain-seconds, default 120); then FAIL when any OneTime plan never reached the sink (lost), and also when an
//     expected delivery is missing: a retry plan never answered 200, an exhausting plan attempted fewer than
//     2 times, a hook delivery never answered 200, a recurring plan with fewer runs than expected.
//   Submission errors (non-200 answers) and duplicates are reported, not judged.
//
// Writes bench/results/<start time>-soak.json (KARYA_BENCH_RESULTS_DIR elsewhere) and prints markdown tables
// for BENCHMARKS.md. Other options: --minute-seconds (default 60), --drain-seconds, --vacuum, --keep-logs
// (process logs are kept anyway when the run fails). Same services and environment variables as bench/run.mjs;
// purges Karya's queues on the default vhost at the start: do not run it beside CI.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import pg from 'pg';
import { Pool } from 'undici';
import { createUser, housekeeperLog, KARYA_QUEUES, purgeKaryaQueues, startKarya, T, TUNING } from './lib/karya.mjs';
import { cpuDelta, cpuSnapshot } from './lib/cpu.mjs';
import { Child, childNames, sleep } from './lib/proc.mjs';
import { fmt, table } from './lib/report.mjs';
import { adminQuery, AMQP_URL, dbUrl, machine, runCleanup, SERVICES } from './lib/services.mjs';
import { log, pct, progress, round, SinkClient } from './lib/util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    rate: { type: 'string', default: '300' },
    retention: { type: 'string', default: 'PT2M' },
    'minute-seconds': { type: 'string', default: '60' }, // length of a "minute" (shorter only to try the harness)
    'drain-seconds': { type: 'string', default: '120' },
    'keep-logs': { type: 'boolean', default: false },
    // The harness runs VACUUM (ANALYZE) on Karya's tables after every minute's row: `auto` = when the server's
    // autovacuum is off (as on the development machine), standing in for it; `on`; `off`.
    vacuum: { type: 'string', default: 'auto' },
  },
});
const MINUTES = Number(args.minutes);
const RATE = Number(args.rate);
const MINUTE_MS = Number(args['minute-seconds']) * 1000;
const DRAIN_MS = Number(args['drain-seconds']) * 1000;
const RETENTION = args.retention;
if (!['auto', 'on', 'off'].includes(args.vacuum)) {
  process.stderr.write(`--vacuum must be auto, on or off, got ${args.vacuum}\n`);
  process.exit(2);
}
for (const [name, v] of [['minutes', MINUTES], ['rate', RATE], ['minute-seconds', MINUTE_MS], ['drain-seconds', DRAIN_MS]]) {
  if (!Number.isFinite(v) || v <= 0) {
    process.stderr.write(`--${name} must be a positive number\n`);
    process.exit(2);
  }
}

/** Growth rule (see the header). */
const RULE = {
  rssGrowth: 0.2,
  latenessGrowth: 0.2,
  latenessFloorMs: 5,
  text: 'Q2 = minutes in the second quarter, Q4 = the last quarter (minute i of N is in quarter ⌈4i/N⌉; needs N ≥ 4). ' +
    'FAIL when a Karya process\'s mean RSS over Q4 is > 20 % above its Q2 mean, or when the Q4 mean of the per-minute ' +
    'lateness p50 (or p99) exceeds the Q2 mean by > 20 % and by ≥ 5 ms. FAIL when any OneTime plan never reached the sink ' +
    '(lost) or an expected delivery is missing after the drain. Sink RSS, database size, errors and duplicates are reported only.',
};

/** Executor retry backoff for the soak (README, executor.yml `retry.*`): retries within a few seconds. */
const RETRY = { initialDelay: 500, multiplier: 2, maxDelay: 2000, jitter: 0.2 };
/** One-time plans are due this long after the server stores them. */
const ONE_TIME_PERIOD_MS = 2000;
const RECURRING = { periodMs: 5000, endAfterMs: 32_500 };
/** Connections the submitter uses; slots it cannot send because this many requests wait are skipped (reported). */
const SUBMIT_CONNECTIONS = 32;
const MAX_IN_FLIGHT = 5000;
const RSS_SAMPLE_MS = 5000;

/** The mix, per 100 consecutive plans (see the header). */
const MIX = [
  ['plain', 80], ['retry', 6], ['hooked', 5], ['hookRetry', 3], ['exhaust', 4], ['recurring', 2],
];
const KINDS = MIX.map(([k]) => k);
const KIND_OF = MIX.flatMap(([, w], k) => new Array(w).fill(k)); // slot % 100 → kind index
const K = Object.fromEntries(KINDS.map((k, i) => [k, i]));
/** Hook deliveries expected (answered 200, distinct Idempotency-Keys) per plan of each kind. */
const HOOKS_EXPECTED = { plain: 0, retry: 0, hooked: 1, hookRetry: 2, exhaust: 2, recurring: 0 };
const EXHAUST_ATTEMPTS = 2;

const startedAt = new Date();
const TAG = `${startedAt.toISOString().slice(0, 19).replace(/[-:T]/g, '')}_${process.pid}`;
const DIR = mkdtempSync(join(tmpdir(), 'karya-soak-'));
const RUN = { oneTime: `soak-${TAG}-ot`, hook: `soak-${TAG}-hook`, recurring: `soak-${TAG}-rec` };
const cleanups = [];
const databases = [];

// ---- what was submitted, and what reached the sink (parallel arrays indexed by plan; plain arrays of numbers
// stay compact over a 30-minute run's half a million plans)
const planIndex = new Map();
const P = { id: [], kind: [], due: [], failK: [], expectRuns: [], firstAt: [], ok: [], fails: [], hookOk: [], runs: [] };
/** hook Idempotency-Key → answered 200 yet; recurring task key → seen */
const hookKeys = new Map();
const recurringKeys = new Set();
let duplicates = 0;
/** Sink records whose plan was not registered yet (its POST answer not processed): matched again later. */
let orphans = [];

/** Counters of the current minute (reset by every row) and of the whole run. */
const minute = { submitted: 0, errors: 0, received: 0, skipped: 0, submitMs: [] };
const totals = { submitted: 0, accepted: 0, errors: 0, skipped: 0, received: 0 };
const errorSamples = [];

function registerPlan(kind, id, due, failK, expectRuns) {
  const j = P.kind.length;
  planIndex.set(id, j);
  P.id.push(id);
  P.kind.push(kind);
  P.due.push(due);
  P.failK.push(failK);
  P.expectRuns.push(expectRuns);
  P.firstAt.push(NaN);
  P.ok.push(0);
  P.fails.push(0);
  P.hookOk.push(0);
  P.runs.push(0);
}

function restAction(sinkPort, path) {
  return {
    type: T.Rest,
    base_url: `127.0.0.1:${sinkPort}${path}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: { type: T.Json, json_string: '{"soak":1}' },
    timeout: 5000,
  };
}

/** The POST /v1/plan body of slot `i`, and what the harness must remember about it. */
function planFor(i, userId, sinkPort) {
  const kind = KIND_OF[i % 100];
  const name = KINDS[kind];
  const ot = (path) => restAction(sinkPort, `${path}/${RUN.oneTime}`);
  const hooks = (path) => [
    { trigger: 'ON_COMPLETION', action: restAction(sinkPort, `${path}/${RUN.hook}`), max_retry: 2 },
    { trigger: 'ON_FAILURE', action: restAction(sinkPort, `${path}/${RUN.hook}`), max_retry: 2 },
  ];
  const oneTime = { type: T.OneTime };
  const period = `PT${ONE_TIME_PERIOD_MS / 1000}S`;
  // Slots of one kind alternate between failing 1 and 2 attempts.
  const failK = name === 'retry' ? 1 + (Math.floor(i / 100) % 2) : name === 'hookRetry' ? 1 : name === 'exhaust' ? 1000 : 0;
  let body;
  switch (name) {
    case 'plain':
      body = { period_time: period, plan_type: oneTime, max_failure_retry: 0, action: ot('/r') };
      break;
    case 'retry':
      body = { period_time: period, plan_type: oneTime, max_failure_retry: 3, action: ot(`/f/${failK}`) };
      break;
    case 'hooked':
      body = { period_time: period, plan_type: oneTime, max_failure_retry: 0, action: ot('/r'), hooks: hooks('/r') };
      break;
    case 'hookRetry':
      body = { period_time: period, plan_type: oneTime, max_failure_retry: 2, action: ot('/f/1'), hooks: hooks('/f/1') };
      break;
    case 'exhaust':
      body = {
        period_time: period, plan_type: oneTime, max_failure_retry: EXHAUST_ATTEMPTS - 1, action: ot('/f/1000'),
        hooks: [{ trigger: 'ON_FAILURE', action: restAction(sinkPort, `/r/${RUN.hook}`), max_retry: 2 }],
      };
      break;
    default: // recurring
      body = {
        period_time: `PT${RECURRING.periodMs / 1000}S`,
        plan_type: { type: 'karya.core.entities.PlanType.Recurring', end_at: Date.now() + RECURRING.endAfterMs },
        max_failure_retry: 0,
        action: restAction(sinkPort, `/r/${RUN.recurring}`),
      };
  }
  return { kind, failK, body: JSON.stringify({ user_id: userId, description: `soak ${name} ${i}`, ...body }) };
}

/**
 * Runs of a bounded recurring plan (README "How a task runs" 4): every slot created_at + k × period (k ≥ 1)
 * before end_at, plus the first slot at or after it.
 */
function recurringRuns(createdAt, endAt) {
  let n = 0;
  for (let due = createdAt + RECURRING.periodMs; ; due += RECURRING.periodMs) {
    n++;
    if (due >= endAt) return n;
  }
}

/** Open-loop submission of `RATE` plans/s from `t0` until `endAt`. */
async function submitter(port, userId, sinkPort, t0, endAt) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: SUBMIT_CONNECTIONS, pipelining: 1, keepAliveTimeout: 60_000 });
  let next = 0;
  let inFlight = 0;
  const pending = new Set();
  const send = async (i) => {
    const { kind, failK, body } = planFor(i, userId, sinkPort);
    const sentAt = performance.now();
    try {
      const { statusCode, body: res } = await pool.request({ path: '/v1/plan', method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      minute.submitMs.push(performance.now() - sentAt);
      if (statusCode !== 200) throw new Error(`POST /v1/plan: ${statusCode} ${text.slice(0, 200)}`);
      const plan = JSON.parse(text);
      const isRecurring = KINDS[kind] === 'recurring';
      const due = plan.created_at + (isRecurring ? RECURRING.periodMs : ONE_TIME_PERIOD_MS);
      registerPlan(kind, plan.id, due, failK, isRecurring ? recurringRuns(plan.created_at, plan.type.end_at) : 0);
      totals.accepted++;
    } catch (e) {
      minute.errors++;
      totals.errors++;
      if (errorSamples.length < 20) errorSamples.push(e instanceof Error ? e.message : String(e));
    }
  };
  while (Date.now() < endAt) {
    const due = Math.floor(((Date.now() - t0) * RATE) / 1000);
    while (next < due) {
      const i = next++;
      if (inFlight >= MAX_IN_FLIGHT) {
        minute.skipped++;
        totals.skipped++;
        continue;
      }
      inFlight++;
      minute.submitted++;
      totals.submitted++;
      const p = send(i).finally(() => {
        inFlight--;
        pending.delete(p);
      });
      pending.add(p);
    }
    await sleep(5);
  }
  await Promise.all([...pending]);
  await pool.close();
}

/** Takes what the sink recorded since the last take and books it; returns the lateness samples (ms) in it. */
async function collect(sink) {
  const late = [];
  const [ot, hook, rec] = await Promise.all([sink.take(RUN.oneTime), sink.take(RUN.hook), sink.take(RUN.recurring)]);
  const records = [];
  for (const [run, r] of [['ot', ot], ['hook', hook], ['rec', rec]]) {
    for (let i = 0; i < r.keys.length; i++) {
      minute.received += r.count[i] + r.fails[i];
      totals.received += r.count[i] + r.fails[i];
      records.push({ run, key: r.keys[i], first: r.first[i], count: r.count[i], fails: r.fails[i], plan: r.plan[i], attempt: r.attempt[i] });
    }
  }
  const unmatched = [];
  for (const x of [...orphans, ...records]) {
    const j = planIndex.get(x.plan);
    if (j === undefined) {
      unmatched.push(x);
      continue;
    }
    if (x.run === 'ot') {
      // The same task's calls may span several takes (a failed attempt, then the retry): one record per take.
      if (Number.isNaN(P.firstAt[j]) || x.first < P.firstAt[j]) P.firstAt[j] = x.first;
      if (x.attempt === 1 && P.fails[j] + P.ok[j] === 0) late.push(x.first - P.due[j]);
      if (P.ok[j] + x.count > 1) duplicates += Math.min(x.count, P.ok[j] + x.count - 1);
      P.ok[j] += x.count;
      P.fails[j] += x.fails;
    } else if (x.run === 'hook') {
      const done = hookKeys.get(x.key) ?? false;
      if (done) duplicates += x.count;
      else if (x.count > 0) {
        duplicates += x.count - 1;
        P.hookOk[j]++;
      }
      hookKeys.set(x.key, done || x.count > 0);
    } else {
      if (recurringKeys.has(x.key)) duplicates += x.count + x.fails;
      else {
        recurringKeys.add(x.key);
        P.runs[j]++;
        duplicates += x.count + x.fails - 1;
      }
    }
  }
  orphans = unmatched;
  return late;
}

/**
 * Up to 20 plans still missing something, with what the database says of them (if the rows still exist):
 * what a FAIL needs looked at first.
 */
async function missingSample(pgc) {
  const out = [];
  for (let j = 0; j < P.kind.length && out.length < 20; j++) {
    const name = KINDS[P.kind[j]];
    const short = name === 'recurring' ? P.runs[j] < P.expectRuns[j]
      : Number.isNaN(P.firstAt[j]) || P.hookOk[j] < HOOKS_EXPECTED[name]
        || (name === 'exhaust' ? P.fails[j] + P.ok[j] < EXHAUST_ATTEMPTS : P.ok[j] === 0);
    if (!short) continue;
    const { rows: plan } = await pgc.query(`SELECT status, updated_at FROM plans WHERE id = $1`, [P.id[j]]);
    const { rows: tasks } = await pgc.query(
      `SELECT status, attempt, dispatch_seq, retry_at, next_execution_at, executed_at, lease_until FROM tasks WHERE plan_id = $1 ORDER BY created_at`, [P.id[j]]);
    out.push({
      plan: P.id[j], kind: name, due: new Date(P.due[j]).toISOString(), sink: { firstAt: Number.isNaN(P.firstAt[j]) ? null : new Date(P.firstAt[j]).toISOString(), ok: P.ok[j], fails: P.fails[j], hooks: P.hookOk[j], runs: P.runs[j] },
      db: { plan: plan[0] ?? null, tasks },
    });
  }
  return out;
}

/** What is still expected, per category. */
function outstanding() {
  const o = { lost: 0, retryUnfinished: 0, exhaustUnfinished: 0, hooksMissing: 0, recurringRunsMissing: 0, oneTime: 0, recurring: 0 };
  for (let j = 0; j < P.kind.length; j++) {
    const name = KINDS[P.kind[j]];
    o.hooksMissing += Math.max(0, HOOKS_EXPECTED[name] - P.hookOk[j]);
    if (name === 'recurring') {
      o.recurring++;
      o.recurringRunsMissing += Math.max(0, P.expectRuns[j] - P.runs[j]);
      continue;
    }
    o.oneTime++;
    if (Number.isNaN(P.firstAt[j])) o.lost++;
    else if (name === 'exhaust') o.exhaustUnfinished += P.fails[j] + P.ok[j] < EXHAUST_ATTEMPTS ? 1 : 0;
    else if (P.ok[j] === 0) o.retryUnfinished++;
  }
  o.missing = o.lost + o.retryUnfinished + o.exhaustUnfinished + o.hooksMissing + o.recurringRunsMissing;
  return o;
}

function rssKb(pid) {
  try {
    return Number(/VmRSS:\s*(\d+)\s*kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

const mean = (xs) => {
  const v = xs.filter((x) => x !== null && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
};

async function dbFigures(pgc) {
  const { rows: [t] } = await pgc.query(`SELECT to_regclass('dead_letters') IS NOT NULL AS dl, to_regclass('hook_retries') IS NOT NULL AS hr`);
  const { rows: [r] } = await pgc.query(`
    SELECT pg_database_size(current_database())::float8 AS size,
      (SELECT count(*) FROM tasks)::int AS tasks, (SELECT count(*) FROM plans)::int AS plans,
      (SELECT count(*) FROM error_logs)::int AS error_logs
      ${t.dl ? ', (SELECT count(*) FROM dead_letters)::int AS dead_letters' : ''}
      ${t.hr ? ', (SELECT count(*) FROM hook_retries)::int AS hook_retries' : ''}`);
  // Where the size is (tables with their indexes and TOAST; tasks = the sum of its partitions).
  const { rows: rel } = await pgc.query(`
    SELECT c.relname AS name,
      CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = c.oid)
           ELSE pg_total_relation_size(c.oid) END::float8 AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname IN ('tasks', 'plans', 'error_logs', 'dead_letters', 'hook_retries')`);
  return {
    sizeMiB: round(r.size / 2 ** 20, 1), tasks: r.tasks, plans: r.plans, errorLogs: r.error_logs,
    deadLetters: r.dead_letters ?? null, hookRetries: r.hook_retries ?? null,
    relMiB: Object.fromEntries(rel.map((x) => [x.name, round(x.bytes / 2 ** 20, 1)])),
  };
}

/** VACUUM (ANALYZE) of Karya's tables (tasks recurses into its partitions); returns the ms it took. */
async function vacuum(pgc) {
  const t0 = Date.now();
  const { rows } = await pgc.query(`SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = 'public'::regnamespace
    AND relname IN ('tasks', 'plans', 'error_logs', 'dead_letters', 'hook_retries')`);
  await pgc.query(`VACUUM (ANALYZE) ${rows.map((r) => r.relname).join(', ')}`);
  return Date.now() - t0;
}

/** The largest relations at the end, with dead tuples and how often (auto)vacuum ran: where a growing size comes from. */
async function relationDetail(pgc) {
  const { rows } = await pgc.query(`
    SELECT c.relname AS name, c.relkind AS kind, round(pg_relation_size(c.oid) / 1048576.0, 1)::float8 AS mib,
      s.n_live_tup AS live, s.n_dead_tup AS dead, s.autovacuum_count AS autovacuums, s.vacuum_count AS vacuums,
      s.last_autovacuum AS last_autovacuum
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 't')
    ORDER BY pg_relation_size(c.oid) DESC LIMIT 15`);
  return rows;
}

async function queueDepths(conn) {
  const out = {};
  for (const q of KARYA_QUEUES) {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    try {
      out[q] = (await ch.checkQueue(q)).messageCount;
      await ch.close();
    } catch {
      out[q] = null;
    }
  }
  return out;
}

/** Q2 and Q4 of per-minute values (quarter of minute i = ⌈4i/N⌉), or null when N < 4. */
function quarters(rows, get) {
  if (rows.length < 4) return null;
  const q = (n) => rows.filter((r) => Math.ceil((4 * r.minute) / rows.length) === n).map(get);
  const q2 = mean(q(2));
  const q4 = mean(q(4));
  return { q2: round(q2, 1), q4: round(q4, 1), growth: q2 ? round((q4 - q2) / q2, 3) : null, delta: q2 !== null && q4 !== null ? round(q4 - q2, 1) : null };
}

function verdict(rows, roles, final) {
  const checks = [];
  const applied = rows.length >= 4;
  for (const role of [...roles, 'sink']) {
    const q = quarters(rows, (r) => r.rssMiB[role]);
    const judged = role !== 'sink';
    checks.push({ figure: `RSS ${role}, MiB`, ...q, judged, fail: applied && judged && q?.growth !== null && q.growth > RULE.rssGrowth });
  }
  for (const p of ['p50', 'p99']) {
    const q = quarters(rows, (r) => r.lateness[p]);
    checks.push({ figure: `lateness ${p}, ms`, ...q, judged: true, fail: applied && q?.growth !== null && q.growth > RULE.latenessGrowth && q.delta >= RULE.latenessFloorMs });
  }
  checks.push({ figure: 'database size, MiB', ...quarters(rows, (r) => r.db.sizeMiB), judged: false, fail: false });
  checks.push({ figure: 'tasks rows', ...quarters(rows, (r) => r.db.tasks), judged: false, fail: false });
  const reasons = checks.filter((c) => c.fail).map((c) => `${c.figure}: Q2 ${c.q2} → Q4 ${c.q4} (${(100 * c.growth).toFixed(0)} %)`);
  if (final.lost > 0) reasons.push(`${final.lost} OneTime plan(s) lost (never reached the sink)`);
  const missing = final.missing - final.lost;
  if (missing > 0) reasons.push(`${missing} expected deliveries missing (retry ${final.retryUnfinished}, exhaust ${final.exhaustUnfinished}, hooks ${final.hooksMissing}, recurring runs ${final.recurringRunsMissing})`);
  return { growthRuleApplied: applied, checks, reasons, failed: reasons.length > 0 };
}

function housekeeperInfo(schedulerLog) {
  const dist = join(ROOT, 'dist/housekeeping');
  const built = existsSync(dist) && readdirSync(dist).some((f) => /^housekeeper.*\.js$/.test(f));
  return { built, ...housekeeperLog(schedulerLog) };
}

function formatMinutes(rows, roles) {
  const head = ['min', ...roles.map((r) => `${r} RSS MiB`), 'sink RSS MiB', 'late p50 ms', 'late p99 ms', 'late n', 'DB MiB', 'tasks MiB', 'plans MiB',
    'submitted', 'received', 'errors', 'tasks', 'plans', 'dead_letters', 'DLQ msgs', 'hk deleted', 'CPU cores', 'other CPU', 'submit p99 ms'];
  return table([head, ...rows.map((r) => [
    String(r.minute), ...roles.map((x) => fmt(r.rssMiB[x], 1)), fmt(r.rssMiB.sink, 1), fmt(r.lateness.p50, 1), fmt(r.lateness.p99, 1), fmt(r.lateness.n),
    fmt(r.db.sizeMiB, 1), fmt(r.db.relMiB.tasks, 1), fmt(r.db.relMiB.plans, 1), fmt(r.submitted), fmt(r.received), fmt(r.errors), fmt(r.db.tasks), fmt(r.db.plans), fmt(r.db.deadLetters),
    fmt(r.queues['karya-dead-letter-queue']), fmt(r.housekeeperDeleted), fmt(r.cpuBusy, 2), fmt(r.cpu.other ?? 0, 2), fmt(r.submitP99Ms, 1),
  ])]);
}

function formatSummary(res) {
  const v = res.verdict;
  const rows = [['figure (mean of per-minute values)', 'Q2', 'Q4', 'growth', 'judged', 'result']];
  for (const c of v.checks) {
    rows.push([c.figure, fmt(c.q2, 1), fmt(c.q4, 1), c.growth === null || c.growth === undefined ? '–' : `${c.growth >= 0 ? '+' : ''}${(100 * c.growth).toFixed(1)} %`,
      c.judged ? 'yes' : 'no', !v.growthRuleApplied ? 'n/a (N < 4)' : !c.judged ? '' : c.fail ? 'FAIL' : 'ok']);
  }
  const f = res.final;
  const t = res.totals;
  const counts = [['count', 'value'],
    ['plans submitted / accepted (200)', `${fmt(t.submitted)} / ${fmt(t.accepted)}`],
    ['submission errors / skipped slots', `${fmt(t.errors)} / ${fmt(t.skipped)}`],
    ['sink calls received', fmt(t.received)],
    ['OneTime plans / recurring plans', `${fmt(f.oneTime)} / ${fmt(f.recurring)}`],
    ['lost OneTime plans (never reached the sink)', fmt(f.lost)],
    ['missing: retry never 200 / exhaust < 2 attempts / hooks / recurring runs', `${f.retryUnfinished} / ${f.exhaustUnfinished} / ${f.hooksMissing} / ${f.recurringRunsMissing}`],
    ['duplicates (calls answered 200 beyond the first per key)', fmt(res.duplicates)],
    ['lateness over the run (first attempts), p50 / p99 / max ms', `${fmt(res.latenessAll.p50, 1)} / ${fmt(res.latenessAll.p99, 1)} / ${fmt(res.latenessAll.max, 1)}`],
    ['database at the end, MiB / tasks / plans rows', `${fmt(res.end.db.sizeMiB, 1)} / ${fmt(res.end.db.tasks)} / ${fmt(res.end.db.plans)}`],
    ['dead_letters rows at the end (exhausting plans submitted)', `${fmt(res.end.db.deadLetters)} (${fmt(res.exhaustPlans)})`],
    ['housekeeper: built / passes that deleted / rows deleted (tasks, error logs, plans, dead letters)',
      `${res.housekeeper.built ? 'yes' : 'no'} / ${res.housekeeper.deleted.passes} / ${fmt(res.housekeeper.deleted.tasks)}, ${fmt(res.housekeeper.deleted.errorLogs)}, ${fmt(res.housekeeper.deleted.plans)}, ${fmt(res.housekeeper.deleted.deadLetters)}`],
  ];
  return [table(rows), '', table(counts)].join('\n');
}

function cleanup() {
  return runCleanup(cleanups, databases);
}

async function main() {
  log(`karya soak: ${MINUTES} × ${MINUTE_MS / 1000} s at ${RATE} plans/s, retention ${RETENTION}; logs in ${DIR}`);
  if (!existsSync(join(ROOT, 'dist/main.js'))) throw new Error('dist/main.js is missing: run `npm run build` (npm run soak does)');
  const info = await machine();
  log(`machine: ${info.cpus} × ${info.cpuModel}, ${info.memGiB} GiB, Node ${info.node}, PostgreSQL ${info.postgres}, Redis ${info.redis}, RabbitMQ ${info.rabbitmq}`);

  const sinkChild = new Child('sink', join(ROOT, 'bench/sink.mjs'), {}, DIR, ROOT);
  cleanups.push(() => sinkChild.stop(5000));
  const sinkPort = Number((await sinkChild.waitForStdout(/SINK_PORT=(\d+)/))[1]);
  const sink = new SinkClient(sinkPort);

  const dbName = `karya_soak_${TAG}`.toLowerCase();
  await adminQuery(`CREATE DATABASE ${dbName}`);
  databases.push(dbName);
  const purged = await purgeKaryaQueues(AMQP_URL);
  log(`purged Karya's queues (${Object.entries(purged).map(([q, n]) => `${q}: ${n}`).join(', ')})`);
  const config = { scheduler: { retention: RETENTION }, executor: { retry: RETRY } };
  const dep = await startKarya('split', { root: ROOT, dir: DIR, pgUrl: dbUrl(dbName), services: SERVICES, config });
  cleanups.push(() => dep.stop());
  const roles = dep.procs.map((p) => p.role);
  log(`started ${Object.entries(dep.pids).map(([r, p]) => `${r} pid ${p}`).join(', ')}; sink pid ${sinkChild.pid}`);
  const pids = { ...dep.pids, sink: sinkChild.pid };
  const pgc = new pg.Client({ connectionString: dbUrl(dbName) });
  await pgc.connect();
  cleanups.push(() => pgc.end().catch(() => undefined));
  const amqpConn = await amqp.connect(AMQP_URL);
  cleanups.push(() => amqpConn.close().catch(() => undefined));
  const userId = await createUser(dep.serverPort, `soak-${TAG}`);
  const vacuuming = args.vacuum === 'on' || (args.vacuum === 'auto' && info.postgresSettings.autovacuum === 'off');
  log(`PostgreSQL autovacuum is ${info.postgresSettings.autovacuum}: ${vacuuming ? 'the harness runs VACUUM (ANALYZE) on Karya\'s tables after every minute\'s row' : 'no VACUUM from the harness'}`);

  /** RSS samples (MiB) of the current minute, per process. */
  let rss = Object.fromEntries(Object.keys(pids).map((r) => [r, []]));
  const sample = () => {
    for (const [r, pid] of Object.entries(pids)) rss[r].push(rssKb(pid) / 1024);
  };
  sample();
  const sampler = setInterval(sample, RSS_SAMPLE_MS);
  cleanups.push(() => clearInterval(sampler));

  const schedulerLog = dep.procs.find((p) => p.role === 'scheduler')?.child.logFile;
  let hkBefore = housekeeperLog(schedulerLog).deleted;
  let cpuBefore = cpuSnapshot(childNames());
  const t0 = Date.now();
  const endAt = t0 + MINUTES * MINUTE_MS;
  const submitting = submitter(dep.serverPort, userId, sinkPort, t0, endAt);
  const rows = [];
  const allLate = [];
  for (let m = 1; m <= MINUTES; m++) {
    while (Date.now() < t0 + m * MINUTE_MS) {
      await sleep(Math.min(10_000, t0 + m * MINUTE_MS - Date.now()));
      progress(`minute ${m}: ${minute.submitted} submitted, ${totals.errors} errors so far`);
    }
    sample();
    const late = (await collect(sink)).sort((a, b) => a - b);
    allLate.push(...late);
    const submitMs = minute.submitMs.sort((a, b) => a - b);
    const cpuNow = cpuSnapshot(childNames());
    const cpu = cpuDelta(cpuBefore, cpuNow);
    cpuBefore = cpuNow;
    const hkNow = housekeeperLog(schedulerLog).deleted;
    const row = {
      minute: m,
      at: new Date().toISOString(),
      rssMiB: Object.fromEntries(Object.entries(rss).map(([r, xs]) => [r, round(mean(xs), 1)])),
      rssMaxMiB: Object.fromEntries(Object.entries(rss).map(([r, xs]) => [r, round(Math.max(...xs), 1)])),
      lateness: { n: late.length, p50: round(pct(late, 50), 1), p99: round(pct(late, 99), 1), max: round(late.at(-1) ?? null, 1) },
      db: await dbFigures(pgc),
      queues: await queueDepths(amqpConn),
      submitted: minute.submitted,
      received: minute.received,
      errors: minute.errors,
      skipped: minute.skipped,
      submitP99Ms: round(pct(submitMs, 99), 1),
      // Cores used, by component (other = processes this run did not start: anything else on the machine).
      cpu: Object.fromEntries(Object.entries(cpu.groups).map(([g, v]) => [g, v.cores])),
      cpuBusy: round(Object.values(cpu.groups).reduce((n, v) => n + v.cores, 0), 2),
      // Rows the housekeeper reported deleted in passes that ended this minute (tasks, error logs, plans, dead letters).
      housekeeperDeleted: hkNow.tasks + hkNow.errorLogs + hkNow.plans + hkNow.deadLetters - (hkBefore.tasks + hkBefore.errorLogs + hkBefore.plans + hkBefore.deadLetters),
      alive: dep.alive(),
    };
    hkBefore = hkNow;
    if (vacuuming) row.vacuumMs = await vacuum(pgc);
    rows.push(row);
    rss = Object.fromEntries(Object.keys(pids).map((r) => [r, [rss[r].at(-1)]]));
    Object.assign(minute, { submitted: 0, errors: 0, received: 0, skipped: 0, submitMs: [] });
    log(`minute ${m}: RSS ${Object.entries(row.rssMiB).map(([r, v]) => `${r} ${v}`).join(', ')} MiB; lateness p50 ${row.lateness.p50} p99 ${row.lateness.p99} ms (n ${row.lateness.n}); ` +
      `CPU ${row.cpuBusy} cores (other ${row.cpu.other ?? 0}); housekeeper deleted ${row.housekeeperDeleted}; ` +
      `DB ${row.db.sizeMiB} MiB; submitted ${row.submitted}, received ${row.received}, errors ${row.errors}${row.skipped ? `, skipped ${row.skipped}` : ''}; ` +
      `rows: tasks ${row.db.tasks}, plans ${row.db.plans}, dead_letters ${row.db.deadLetters ?? '–'}, hook_retries ${row.db.hookRetries ?? '–'}; DLQ ${row.queues['karya-dead-letter-queue'] ?? '–'}`);
    if (!row.alive) throw new Error(`a Karya process died\n${dep.tails()}`);
  }
  await submitting;

  // Drain: the last plans are due 2 s (OneTime) and up to 32.5 s (recurring) after the last submission, then
  // retries and hook retries follow within seconds.
  const drainUntil = Date.now() + RECURRING.endAfterMs + DRAIN_MS;
  log(`drain: waiting for the last deliveries (at most ${((drainUntil - Date.now()) / 1000).toFixed(0)} s)`);
  let final = outstanding();
  while (Date.now() < drainUntil) {
    allLate.push(...(await collect(sink)));
    final = outstanding();
    progress(`drain: lost-so-far ${final.lost}, retry ${final.retryUnfinished}, exhaust ${final.exhaustUnfinished}, hooks ${final.hooksMissing}, recurring runs ${final.recurringRunsMissing} outstanding`);
    if (final.missing === 0) break;
    await sleep(2000);
  }
  await sleep(2000); // late duplicates
  allLate.push(...(await collect(sink)));
  final = outstanding();
  clearInterval(sampler);
  allLate.sort((a, b) => a - b);
  const end = { db: await dbFigures(pgc), relations: await relationDetail(pgc), queues: await queueDepths(amqpConn), alive: dep.alive() };
  const res = {
    kind: 'soak',
    settings: { minutes: MINUTES, minuteSeconds: MINUTE_MS / 1000, rate: RATE, retention: RETENTION, drainSeconds: DRAIN_MS / 1000, vacuumByHarness: vacuuming, mix: Object.fromEntries(MIX), retry: RETRY, oneTimePeriodMs: ONE_TIME_PERIOD_MS, recurring: RECURRING },
    rule: RULE.text,
    startedAt: startedAt.toISOString(),
    machine: info,
    tuning: TUNING,
    pids,
    database: dbName,
    minutes: rows,
    totals,
    final,
    orphans: orphans.length,
    duplicates,
    exhaustPlans: P.kind.filter((k) => k === K.exhaust).length,
    latenessAll: { n: allLate.length, p50: round(pct(allLate, 50), 1), p99: round(pct(allLate, 99), 1), max: round(allLate.at(-1) ?? null, 1) },
    end,
    errorSamples,
    missingSample: final.missing > 0 ? await missingSample(pgc) : [],
    housekeeper: housekeeperInfo(schedulerLog),
  };
  res.verdict = verdict(rows, roles, final);
  res.finishedAt = new Date().toISOString();
  res.durationS = round((Date.now() - startedAt.getTime()) / 1000, 1);

  const report = [
    `Karya soak — ${MINUTES} × ${MINUTE_MS / 1000} s at ${RATE} plans/s, retention ${RETENTION} — ${res.startedAt} — ${res.durationS} s`,
    `machine: ${info.cpus} × ${info.cpuModel}, ${info.memGiB} GiB RAM; Node ${info.node}; PostgreSQL ${info.postgres}; Redis ${info.redis}; RabbitMQ ${info.rabbitmq}`,
    `mix per 100 plans: ${MIX.map(([k, w]) => `${k} ${w}`).join(', ')}; executor retry ${JSON.stringify(RETRY)}`,
    `PostgreSQL autovacuum ${info.postgresSettings.autovacuum}; ${res.settings.vacuumByHarness ? 'VACUUM (ANALYZE) of Karya\'s tables by the harness after every minute\'s row (--vacuum)' : 'no VACUUM by the harness'}`,
    '',
    formatMinutes(rows, roles),
    '',
    'RSS = mean of VmRSS samples every 5 s during the minute. Lateness = sink receive time of a OneTime plan\'s first attempt − (created_at + 2 s), tasks received that minute. ' +
      `hk deleted = rows the housekeeper logged deleting in passes that ended that minute. CPU cores = all processes (of ${info.cpus}); other CPU = processes this run did not start.`,
    `Rule: ${RULE.text}`,
    res.verdict.growthRuleApplied ? '' : `Growth rule not applied: ${MINUTES} minute(s) < 4.`,
    formatSummary(res),
    '',
    `Largest relations at the end (MiB; dead tuples, autovacuums): ${res.end.relations.slice(0, 8).map((x) => `${x.name} ${x.mib}${x.dead == null ? '' : ` (${x.dead}, ${x.autovacuums})`}`).join('; ')}`,
    '',
    res.verdict.failed ? `FAIL: ${res.verdict.reasons.join('; ')}` : 'PASS',
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
  const resultsDir = process.env.KARYA_BENCH_RESULTS_DIR ?? join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}-soak.json`);
  writeFileSync(file, `${JSON.stringify(res, null, 2)}\n`);
  log(`results: ${file}`);
  if (!end.alive) throw new Error(`a Karya process died during the drain\n${dep.tails()}`);
  return res;
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
  const res = await main();
  if (res.verdict.failed) {
    process.stderr.write(`\nFAILED: ${res.verdict.reasons.join('; ')}\n`);
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
