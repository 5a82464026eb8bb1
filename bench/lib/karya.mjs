// Karya as a user deploys it: `node dist/main.js` per role, YAML configs, real PostgreSQL/Redis/RabbitMQ.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { Child, freePort } from './proc.mjs';
import { log, progress, round } from './util.mjs';

export const T = {
  OneTime: 'karya.core.entities.PlanType.OneTime',
  Rest: 'karya.core.entities.Action.RestApiRequest',
  Json: 'karya.core.entities.http.Body.JsonBody',
};
export const KARYA_QUEUES = ['karya-executor-queue', 'karya-executor-batch-queue', 'karya-hooks-queue', 'karya-dead-letter-queue'];

/**
 * Tuning used by the benchmark, per deployment. Everything else is Karya's default.
 * `partitions` is providers.yml's repo.partitions; pool sizes are per process.
 */
export const TUNING = {
  partitions: 6,
  pool: { server: 16, scheduler: 8, executor: 16, all: 24 },
  scheduler: { workers: 3, channelCapacity: 1000, pollFrequency: 100, executionBuffer: 1000, leaseTime: 30000 },
  executor: { concurrency: 256, restapi: { keepAliveTime: 60000, connectionTimeout: 1000, connectionAttempts: 3 } },
  note: 'restapi plugin: at most 64 keep-alive connections per origin (MAX_CONNECTIONS_PER_ORIGIN, fixed)',
};

/**
 * The original Karya's sample scheduler.yml / executor.yml values (configs/ of Saumya-Bhatt/karya), for
 * `bench/probe.mjs --tuning original`: what a user migrating with their files gets. Keys the original has
 * no notion of (leaseTime, executor concurrency) are left out, so Karya's defaults apply; repoPartitions
 * ([1..5]) is left out too, since the bench's deployment has TUNING.partitions. Providers as in TUNING.
 */
export const ORIGINAL_SAMPLE = {
  ...TUNING,
  scheduler: { threadCount: 2, workers: 3, channelCapacity: 10, pollFrequency: 300, executionBuffer: 1000 },
  executor: { restapi: { keepAliveTime: 3000, connectionTimeout: 1000, connectionAttempts: 3 } },
};

/** Empties Karya's queues so that nothing left by an earlier run (or CI) is delivered to this deployment. */
export async function purgeKaryaQueues(amqpUrl) {
  const conn = await amqp.connect(amqpUrl);
  const purged = {};
  try {
    for (const q of KARYA_QUEUES) {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      try {
        const r = await ch.purgeQueue(q);
        purged[q] = r.messageCount;
        await ch.close();
      } catch {
        purged[q] = 'absent';
      }
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
  return purged;
}

function providersYml(pgUrl, poolSize, s) {
  return [
    'repo:',
    '  provider: psql',
    `  partitions: ${TUNING.partitions}`,
    '  properties:',
    `    url: "${pgUrl}"`,
    `    poolSize: ${poolSize}`,
    'lock:',
    '  provider: redis',
    '  properties:',
    '    waitTime: 1000',
    '    leaseTime: 5000',
    `    clusterNodes: ["redis://${s.redis.host}:${s.redis.port}"]`,
    'queue:',
    '  provider: rabbitmq',
    '  properties:',
    `    username: ${s.rabbit.user}`,
    `    password: ${s.rabbit.password}`,
    `    virtualHost: "${s.rabbit.vhost ?? '/'}"`,
    `    clusterNodes: ["${s.rabbit.host}:${s.rabbit.port}"]`,
    '',
  ].join('\n');
}

/**
 * YAML lines for extra `application:` keys (scalars and nested objects, no lists), indented under it.
 * @param {Record<string, unknown>} obj
 */
function extraYml(obj = {}, indent = '  ') {
  return Object.entries(obj).flatMap(([k, v]) => (v !== null && typeof v === 'object'
    ? [`${indent}${k}:`, ...extraYml(/** @type {Record<string, unknown>} */ (v), `${indent}  `)]
    : [`${indent}${k}: ${JSON.stringify(v)}`]));
}

/** @param {Record<string, unknown>} [extra] more `application:` keys (e.g. `retention`), none of the ones set here */
function schedulerYml(extra, tuning = TUNING) {
  const c = tuning.scheduler;
  return [
    'application:',
    ...(c.threadCount === undefined ? [] : [`  threadCount: ${c.threadCount}`]),
    `  workers: ${c.workers}`,
    ...(c.leaseTime === undefined ? [] : [`  leaseTime: ${c.leaseTime}`]),
    '  fetcher:',
    `    channelCapacity: ${c.channelCapacity}`,
    `    pollFrequency: ${c.pollFrequency}`,
    `    executionBuffer: ${c.executionBuffer}`,
    ...extraYml(extra),
    '',
  ].join('\n');
}

/** @param {Record<string, unknown>} [extra] more `application:` keys (e.g. `retry`), none of the ones set here */
function executorYml(extra, tuning = TUNING) {
  const c = tuning.executor;
  return [
    'application:',
    ...(c.concurrency === undefined ? [] : [`  concurrency: ${c.concurrency}`]),
    // The sink runs on 127.0.0.1, which the psql default egress policy denies.
    '  egress:',
    '    allowPrivateNetworks: true',
    '  connectors:',
    '    - type: restapi',
    '      configs:',
    `        keepAliveTime: ${c.restapi.keepAliveTime}`,
    `        connectionTimeout: ${c.restapi.connectionTimeout}`,
    `        connectionAttempts: ${c.restapi.connectionAttempts}`,
    ...extraYml(extra),
    '',
  ].join('\n');
}

/**
 * Starts a deployment: `split` = 1 server + 1 scheduler + 1 executor; `all` = one process with every role.
 * Options beyond the bench's own: `name` (files and process names, default `kind`: a second deployment of
 * one kind needs its own); `nodeArgs` (e.g. --cpu-prof); `config.scheduler` / `config.executor`, more
 * `application:` keys for scheduler.yml / executor.yml (the soak's `retention` and `retry`); `beforeRest`,
 * run once the first process (the server, which migrates) is healthy and before the others start (the
 * housekeeping run stores its expired rows there, so that no housekeeper sees them half inserted);
 * `tuning`, the scheduler.yml / executor.yml values (default TUNING; ORIGINAL_SAMPLE for the original's).
 * @param {'split' | 'all'} kind
 * @param {{ root: string, dir: string, pgUrl: string, services: any, name?: string, nodeArgs?: string[], tuning?: typeof TUNING,
 *   config?: { scheduler?: Record<string, unknown>, executor?: Record<string, unknown> },
 *   beforeRest?: (firstPort: number) => Promise<void> }} o
 */
export async function startKarya(kind, o) {
  const label = o.name ?? kind;
  const write = (name, text) => {
    const p = join(o.dir, `${label}-${name}`);
    writeFileSync(p, text);
    return p;
  };
  const main = join(o.root, 'dist/main.js');
  const sched = write('scheduler.yml', schedulerYml(o.config?.scheduler, o.tuning));
  const exec = write('executor.yml', executorYml(o.config?.executor, o.tuning));
  const server = write('server.yml', 'application:\n  metricsEnabled: true\n  egress:\n    allowPrivateNetworks: true\n');
  const roles = kind === 'split' ? ['server', 'scheduler', 'executor'] : ['all'];
  /** @type {{ role: string, child: Child, port: number }[]} */
  const procs = [];
  const startRole = async (role) => {
    const port = await freePort();
    const env = {
      KARYA_ROLE: role,
      PORT: String(port),
      KARYA_PROVIDERS_CONFIG_PATH: write(`providers-${role}.yml`, providersYml(o.pgUrl, TUNING.pool[role], o.services)),
      KARYA_SERVER_CONFIG_PATH: server,
      KARYA_SCHEDULER_CONFIG_PATH: sched,
      KARYA_EXECUTOR_CONFIG_PATH: exec,
    };
    const child = new Child(`karya-${label}-${role}`, main, env, o.dir, o.root, o.nodeArgs);
    procs.push({ role, child, port });
    return { child, port };
  };
  // The server first: it runs the migrations (every role would, under an advisory lock) in a fresh database.
  const first = await startRole(roles[0]);
  await first.child.waitForHealthy(first.port);
  if (o.beforeRest) await o.beforeRest(first.port);
  const rest = await Promise.all(roles.slice(1).map(startRole));
  await Promise.all(rest.map((r) => r.child.waitForHealthy(r.port)));
  const serverPort = procs.find((p) => p.role === 'server' || p.role === 'all').port;
  return {
    kind,
    procs,
    serverPort,
    pids: Object.fromEntries(procs.map((p) => [p.role, p.child.pid])),
    async stop() {
      const codes = await Promise.all(procs.map((p) => p.child.stop()));
      return codes;
    },
    alive() {
      return procs.every((p) => !p.child.done);
    },
    tails() {
      return procs.map((p) => p.child.tail()).join('\n');
    },
  };
}

export async function createUser(port, name) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/user`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 200) throw new Error(`POST /v1/user: ${res.status} ${await res.text()}`);
  return /** @type {{id: string}} */ (await res.json()).id;
}

/** The body of POST /v1/plan for a OneTime REST plan to the sink, due `periodMs` after the server stores it. */
export function planBody(userId, description, periodMs, sinkUrl, due) {
  return JSON.stringify({
    user_id: userId,
    description,
    period_time: `PT${(Math.max(0, periodMs) / 1000).toFixed(3)}S`,
    plan_type: { type: T.OneTime },
    max_failure_retry: 0,
    action: {
      type: T.Rest,
      base_url: sinkUrl,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: { type: T.Json, json_string: JSON.stringify({ due }) },
      timeout: 10000,
    },
  });
}

/**
 * Submits one OneTime plan per entry of `dues` (epoch ms) through POST /v1/plan, `connections` at a time;
 * each plan's period is computed when its request is sent so that it falls due at its instant.
 * @returns {Promise<{ planIds: string[], overran: number, ms: number, rate: number }>}
 */
export async function submitPlans(port, userId, run, sinkPort, dues, { connections = 64, label }) {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
  const sinkUrl = `127.0.0.1:${sinkPort}/r/${run}`;
  const planIds = new Array(dues.length);
  let next = 0;
  let overran = 0;
  let done = 0;
  const t0 = Date.now();
  let shown = 0;
  const worker = async () => {
    while (next < dues.length) {
      const i = next++;
      const periodMs = dues[i] - Date.now();
      if (periodMs < 0) overran++;
      const { statusCode, body } = await pool.request({
        path: '/v1/plan',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: planBody(userId, `bench ${run} ${i}`, periodMs, sinkUrl, dues[i]),
      });
      const text = await body.text();
      if (statusCode !== 200) throw new Error(`POST /v1/plan: ${statusCode} ${text}`);
      planIds[i] = JSON.parse(text).id;
      done++;
      if (Date.now() - shown >= 1000) {
        shown = Date.now();
        progress(`${label}: submitted ${done}/${dues.length} plans`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: connections }, worker));
  } finally {
    await pool.close();
  }
  const ms = Date.now() - t0;
  return { planIds, overran, ms, rate: round((dues.length * 1000) / ms, 0) };
}

/** Due time (epoch ms) of the task of each plan, by task id (= the Idempotency-Key the sink saw). */
export async function taskDues(pg, planIds) {
  /** @type {Map<string, number>} */
  const dues = new Map();
  const statuses = {};
  for (let i = 0; i < planIds.length; i += 20_000) {
    const { rows } = await pg.query(
      `SELECT id, status, (extract(epoch FROM next_execution_at) * 1000)::float8 AS due FROM tasks WHERE plan_id = ANY($1::uuid[])`,
      [planIds.slice(i, i + 20_000)],
    );
    for (const r of rows) {
      dues.set(r.id, Number(r.due));
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    }
  }
  return { dues, statuses };
}

/**
 * POST /v1/plan with autocannon: `connections` connections for `seconds`. The plans are due far in the
 * future (P3650D) and never run; the caller deletes them afterwards.
 */
export async function submissionBench(port, userId, sinkPort, { connections, seconds }) {
  const result = await new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: `http://127.0.0.1:${port}/v1/plan`,
        method: 'POST',
        connections,
        duration: seconds,
        headers: { 'content-type': 'application/json' },
        body: planBody(userId, 'bench submission', 3650 * 86_400_000, `127.0.0.1:${sinkPort}/r/never`, 0),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    let shownAt = Date.now();
    let n = 0;
    inst.on('response', () => {
      n++;
      if (Date.now() - shownAt >= 1000) {
        shownAt = Date.now();
        progress(`submission: ${n} requests so far`);
      }
    });
  });
  return {
    connections,
    seconds,
    requests: result.requests.total,
    ok: result['2xx'],
    rate: round(result['2xx'] / seconds, 0),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
  };
}

/** Deletes the far-future plans of the submission benchmark so the workloads that follow start on an empty table. */
export async function deleteSubmissionPlans(pg) {
  // Requests still in flight when autocannon stopped are finishing: let them, then delete twice over.
  await new Promise((r) => setTimeout(r, 2000));
  let deleted = 0;
  for (let i = 0; i < 2; i++) {
    await pg.query(`DELETE FROM tasks WHERE plan_id IN (SELECT id FROM plans WHERE description = 'bench submission')`);
    const r = await pg.query(`DELETE FROM plans p WHERE description = 'bench submission' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.plan_id = p.id)`);
    deleted += r.rowCount ?? 0;
  }
  await pg.query('VACUUM ANALYZE tasks');
  await pg.query('VACUUM ANALYZE plans');
  return deleted;
}

/**
 * Stores `count` OneTime plans and their tasks directly with SQL (generate_series), due far in the future,
 * copying the action of an existing plan: the backlog that must not slow the claims down.
 */
export async function insertBacklog(pg, count) {
  // The plan type and action as the server stores them, copied from a plan submitted through the API.
  const { rows } = await pg.query(`SELECT user_id, type, action FROM plans WHERE description LIKE 'bench %' LIMIT 1`);
  if (rows.length === 0) throw new Error('backlog: no template plan');
  const chunk = 250_000;
  for (let done = 0; done < count; done += chunk) {
    const n = Math.min(chunk, count - done);
    await pg.query('BEGIN');
    await pg.query(
      `CREATE TEMP TABLE backlog_ids ON COMMIT DROP AS
         SELECT gen_random_uuid() AS plan_id, gen_random_uuid() AS task_id, g AS i FROM generate_series(1, $1::int) g`,
      [n],
    );
    await pg.query(
      `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
       SELECT plan_id, $1, 'backlog', 'P3650D', $2::jsonb, 'CREATED', 0, $3::jsonb, '[]'::jsonb, NULL, now(), now() FROM backlog_ids`,
      [rows[0].user_id, JSON.stringify(rows[0].type), JSON.stringify(rows[0].action)],
    );
    await pg.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, next_execution_at)
       SELECT task_id, 1 + (i % $1::int), plan_id, 'CREATED', 0, now(), now() + interval '3650 days' + i * interval '1 millisecond'
       FROM backlog_ids`,
      [TUNING.partitions],
    );
    await pg.query('COMMIT');
    progress(`backlog: ${done + n}/${count} future tasks stored`);
  }
  await pg.query('VACUUM ANALYZE tasks');
  await pg.query('VACUUM ANALYZE plans');
  log(`backlog: ${count} future plans + tasks stored`);
}

/**
 * Stores `count` finished tasks that expired long ago (SUCCESS, created and run 30 days ago) with SQL
 * (generate_series), for the housekeeper to delete: the housekeeping run. With `plans` = `count` (the
 * default) each task belongs to a COMPLETED OneTime plan of its own (the common case: a million finished
 * one-shot jobs, plans and tasks both expire); with fewer, the tasks are the history of `plans` COMPLETED
 * Recurring plans. The action is copied from a plan submitted through the API (`description LIKE 'bench %'`).
 * Returns the predicate that counts the rows left (`SELECT count(*) FROM tasks WHERE <it>`).
 */
export async function insertExpired(pg, count, { plans = count } = {}) {
  const { rows } = await pg.query(`SELECT user_id, type, action FROM plans WHERE description LIKE 'bench %' LIMIT 1`);
  if (rows.length === 0) throw new Error('housekeeping: no template plan');
  const [{ base }] = (await pg.query(`SELECT (now() - interval '30 days') AS base`)).rows;
  const own = plans >= count;
  /** @type {string[]} */
  let few = [];
  if (!own) {
    const ids = await pg.query(
      `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
       SELECT gen_random_uuid(), $1, 'expired history', 'PT1S', jsonb_build_object('type', 'karya.core.entities.PlanType.Recurring', 'end_at', (extract(epoch FROM $3::timestamptz) * 1000)::bigint),
              'COMPLETED', 0, $2::jsonb, '[]'::jsonb, NULL, $3::timestamptz - $5::int * interval '1 millisecond', $3::timestamptz
       FROM generate_series(1, $4::int) RETURNING id`,
      [rows[0].user_id, JSON.stringify(rows[0].action), base, plans, count + 10],
    );
    few = ids.rows.map((r) => r.id);
  }
  const chunk = 250_000;
  for (let done = 0; done < count; done += chunk) {
    const n = Math.min(chunk, count - done);
    await pg.query('BEGIN');
    await pg.query(
      `CREATE TEMP TABLE expired_ids ON COMMIT DROP AS
         SELECT ${own ? 'gen_random_uuid()' : '($4::uuid[])[1 + (g % $5::int)]'} AS plan_id, gen_random_uuid() AS task_id,
                g AS i, $2::timestamptz - g * interval '1 millisecond' AS at
         FROM generate_series($1::int + 1, $1::int + $3::int) g`,
      own ? [done, base, n] : [done, base, n, few, few.length],
    );
    if (own) {
      await pg.query(
        `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, parent_plan_id, created_at, updated_at)
         SELECT plan_id, $1, 'expired', 'PT1S', $2::jsonb, 'COMPLETED', 0, $3::jsonb, '[]'::jsonb, NULL, at, at + interval '1005 milliseconds' FROM expired_ids`,
        [rows[0].user_id, JSON.stringify(rows[0].type), JSON.stringify(rows[0].action)],
      );
    }
    await pg.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, dispatch_seq, next_created, created_at, executed_at, next_execution_at)
       SELECT task_id, 1 + (i % $1::int), plan_id, 'SUCCESS', 1, 1, ${own ? 'false' : 'true'}, at, at + interval '1005 milliseconds', at + interval '1 second'
       FROM expired_ids`,
      [TUNING.partitions],
    );
    await pg.query('COMMIT');
    progress(`housekeeping: ${done + n}/${count} expired tasks stored`);
  }
  await pg.query('VACUUM ANALYZE tasks');
  await pg.query('VACUUM ANALYZE plans');
  log(`housekeeping: ${count} expired finished tasks stored (${own ? 'each with its COMPLETED OneTime plan' : `history of ${plans} COMPLETED Recurring plans`})`);
  return `created_at < now() - interval '29 days'`;
}

/**
 * What the housekeeper said in a scheduler's log: its lines (context `[Housekeeper]`), and the sums of its
 * "deleted T task(s), E error log(s), P plan(s) and D dead letter(s) …" lines (one per pass that deleted).
 */
export function housekeeperLog(logFile) {
  let lines = [];
  try {
    // eslint-disable-next-line no-control-regex
    lines = readFileSync(logFile, 'utf8').replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => /\[Housekeeper\]/.test(l));
  } catch {
    // no log
  }
  const deleted = { passes: 0, tasks: 0, errorLogs: 0, plans: 0, deadLetters: 0 };
  for (const l of lines) {
    const m = /deleted (\d+) task\(s\), (\d+) error log\(s\), (\d+) plan\(s\) and (\d+) dead letter/.exec(l);
    if (!m) continue;
    deleted.passes++;
    deleted.tasks += Number(m[1]);
    deleted.errorLogs += Number(m[2]);
    deleted.plans += Number(m[3]);
    deleted.deadLetters += Number(m[4]);
  }
  return { logLines: lines.length, deleted, lastLine: lines.at(-1)?.slice(0, 300) ?? null };
}
