import { appendFileSync } from 'node:fs';
import { Server } from 'node:http';
import { INestApplication, LoggerService } from '@nestjs/common';
import { Client } from 'pg';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { Expectation, FuzzCase, generateCases, pct, RunState, decoded } from './support/fuzz-cases';
import { AckLedger, canonical, LedgerVerdict, sentObject, Stored, STORED_QUERIES } from './support/fuzz-ledger';
import { BODY_LIMIT_BYTES, CRON, factsOf, FuzzContext, PLAN_KEYS, PLAN_STATE_KEYS, T, TASK_KEYS } from './support/fuzz-model';
import { seedFrom } from './support/fuzz-rng';
import { freePort, KaryaProcess } from './support/karya-process';
import { createTestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { TempDir } from './support/temp-files';

/**
 * Fuzzes the v1 API (shared/spec/api-v1.md) with ~1,000 generated requests, each a valid request with one
 * mutation: a required field deleted, a wrong JSON type, an unknown `type` discriminator at any depth, huge
 * strings, bad UUIDs (body, path, query), bad pages, duplicated query parameters, control and unicode
 * characters, deeply nested chained requests, unknown keys (ignored), odd-case enums (accepted), bad
 * period_time strings, malformed JSON, wrong content types and empty bodies, over all twelve plan and user
 * endpoints. Issue 13's: Cron plan types (field counts, bad and never-firing expressions, unknown and odd time
 * zones, end_at edges, overlap on Cron and Recurring, period_time left out, repeated or not), pause, resume,
 * run now and the schedule state on live, paused, cancelled and completed plans, and the list's status filter;
 * each answer against what the run's earlier answers imply (a paused plan's state is PAUSED while its v1 Plan
 * stays CREATED; run now on a paused, cancelled or completed plan is a 409 naming the plan and its status).
 *
 * Every answer must be what the contract says: 200 where the mutation keeps the request valid, otherwise a
 * 400 (404 for an unknown user or plan, 403 for a chained request for another user) with a non-empty
 * plain-text message naming the field at fault (and not a bare "Bad Request" or a JavaScript artefact such as
 * "got undefined"), and never a 5xx. A 200 must have the
 * exact key set (Plan, Task, PlanState, the list and the responses that nest them), defaults filled in, enums
 * upper-cased, unknown keys dropped, only the v1 statuses, and (for odd characters) store exactly what it echoed. The only other statuses allowed are body-parser's own 413 (body over Nest's default 100 KB
 * JSON limit: createApp sets no other) and 415 (an unsupported charset or Content-Encoding). Afterwards the
 * server must still serve, and the database must hold exactly what was acknowledged: every plan a 200 answered
 * stored once, as last echoed (a PATCH or cancel included), paused as pause and resume answered, with its first
 * task and one more per run now, and nothing else.
 *
 * Nothing runs a plan during the run, so what is stored follows from the answers alone: the server process has
 * only the server role, and the embedded stack's scheduler polls once an hour (its first poll, at start-up,
 * precedes every plan), so neither a run-now task nor a cron plan ever fires, and no action reaches a target.
 *
 * Two targets: the embedded stack in process (PGlite), and a real `node dist/main.js` server process on a fresh
 * PostgreSQL database (with Redis and RabbitMQ), read back with its own connection.
 *
 * Deterministic: KARYA_FUZZ_SEED (decimal or 0x-hex) picks the cases, KARYA_FUZZ_CASES their number, and
 * KARYA_FUZZ_TARGETS (`pglite,postgres`, the default, or either) the targets. `npm run fuzz` (scripts/fuzz.mjs)
 * runs this suite at scale: 10,000 cases on PostgreSQL by default. A failure report lists the seed and each
 * failing request in full.
 */

const DEFAULT_SEED = 0x6b617279; // "kary"
const SEED = seedFrom(process.env.KARYA_FUZZ_SEED, DEFAULT_SEED);
const COUNT = Number(process.env.KARYA_FUZZ_CASES ?? 1000);
const SEED_TEXT = `0x${SEED.toString(16)}`;
const TARGETS = (process.env.KARYA_FUZZ_TARGETS ?? 'pglite,postgres').split(',').map((t) => t.trim()).filter((t) => t !== '');
/** Optional: a file to append every case and its answer to (one JSON line each), for studying a run. */
const DUMP = process.env.KARYA_FUZZ_DUMP;
const rerun = (target: string) => `npm run fuzz -- --seed ${SEED_TEXT} --cases ${COUNT} --targets ${target}`;

/** Keeps what the app logs at error level (the exception filter logs every 5xx with its stack). */
class CapturingLogger implements LoggerService {
  readonly errors: string[] = [];
  log(): void {}
  warn(): void {}
  debug(): void {}
  verbose(): void {}
  error(message: unknown, ...rest: unknown[]): void {
    this.errors.push([message, ...rest].map((m) => (m instanceof Error ? (m.stack ?? m.message) : String(m))).join(' '));
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.error(message, ...rest);
  }
}

interface Answer {
  status: number;
  contentType: string;
  text: string;
  body: unknown;
}

interface Failure {
  c: FuzzCase;
  expected: Expectation;
  answer?: Answer;
  problems: string[];
  serverLog: string[];
}

const sendAsIs = (bytes: Buffer): string => bytes as unknown as string;

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}... (${s.length} chars)` : s;
}

function prop(v: unknown, key: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
}

function keysOf(v: unknown): string {
  return typeof v === 'object' && v !== null ? Object.keys(v).sort().join(',') : String(v);
}

/** Messages that do not say what was wrong: a bare reason phrase, or a JavaScript artefact instead of the input. */
function unclear(text: string): string | undefined {
  if (/^\s*(Bad Request|Not Found|Internal server error|Unsupported Media Type|Payload Too Large)\s*$/i.test(text)) {
    return `the message "${text}" does not say what was wrong`;
  }
  if (/got (undefined|NaN)(?!")|\[object Object\]/.test(text)) return `the message "${truncate(text, 120)}" shows a JavaScript artefact, not the input`;
  return undefined;
}

function describeRequest(c: FuzzCase): string {
  const lines = [`${c.method.toUpperCase()} ${c.url}`];
  lines.push(`  Content-Type: ${c.contentType ?? '(none)'}`);
  for (const [k, v] of Object.entries(c.headers ?? {})) lines.push(`  ${k}: ${v}`);
  if (c.body === undefined) lines.push('  (no body)');
  else {
    const text = c.body.toString('utf8');
    const printable = /^[\x20-\x7e]*$/.test(text) ? text : JSON.stringify(text);
    lines.push(`  body (${c.body.length} bytes): ${truncate(printable, 1500)}`);
  }
  return lines.join('\n');
}

function describeExpectation(e: Expectation): string {
  const parts = [e.statuses.join(' or ')];
  if (e.names) parts.push(`a message naming "${e.names}"`);
  if (e.text) parts.push(`a message matching ${String(e.text)}`);
  return parts.join(', ');
}

/** Where the fuzz requests go, and how to read back what the server stored. */
interface Target {
  /** supertest's target: the in-process app's server, or a server process's base URL. */
  http: Server | string;
  query<R>(sql: string): Promise<R[]>;
  /** Starts a window on the server's error output; the returned function reads it. */
  logWindow(): () => string[];
  /** How the database's driver returns a stored string (see AckLedger). */
  storedText?: (json: string) => string;
  /** Why the server cannot be checked any more (a process that exited), if so. */
  gone(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** The embedded stack in this process: PGlite in memory, every role, the app's error log captured. */
async function embeddedTarget(tmp: TempDir): Promise<Target> {
  const logger = new CapturingLogger();
  const providers = tmp.write('providers.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n');
  // Every role runs (the embedded providers need them all), but the scheduler claims nothing after start-up: run
  // now makes tasks due at once, whose actions (and hooks) must not run against the model's sample targets.
  const scheduler = tmp.write('scheduler.yml', 'application:\n  fetcher:\n    pollFrequency: 3600000\n');
  const { config } = loadConfig({ KARYA_PROVIDERS_CONFIG_PATH: providers, KARYA_SCHEDULER_CONFIG_PATH: scheduler });
  const app: INestApplication = await createApp(config, { logger });
  const ds = app.get(DataSource);
  return {
    http: app.getHttpServer() as Server,
    query: async <R>(sql: string) => (await ds.query(sql)) as R[],
    logWindow: () => {
      const mark = logger.errors.length;
      return () => logger.errors.slice(mark);
    },
    // PGlite's wire layer drops a leading U+FEFF (byte-order mark) from text it returns; PostgreSQL keeps it.
    storedText: (json) => json.replace(/"\uFEFF/g, '"'),
    gone: async () => undefined,
    close: () => app.close(),
  };
}

/**
 * A real server process (`node dist/main.js`, KARYA_ROLE=server, so nothing but the API writes) on a fresh
 * PostgreSQL database, with the machine's Redis (plan locks) and RabbitMQ; read back over its own connection.
 */
async function postgresTarget(tmp: TempDir): Promise<Target> {
  const db = await createTestDatabase();
  const port = await freePort();
  const proc = new KaryaProcess({
    KARYA_ROLE: 'server', PORT: String(port), KARYA_PROVIDERS_CONFIG_PATH: writeRealProviders(tmp, { pgUrl: db.url }),
    // The rules the request model is written for are the embedded stack's defaults, which allow targets on
    // private networks (the model's sample URLs include 127.0.0.1); egress has its own suite.
    KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', 'application:\n  egress:\n    allowPrivateNetworks: true\n'),
  }).start();
  try {
    await proc.waitForHealthy(port);
  } catch (e) {
    await proc.kill();
    await db.drop();
    throw e;
  }
  return {
    http: `http://127.0.0.1:${port}`,
    // A connection per read (a few, after the run): none sits idle through the run to be cut.
    query: async <R>(sql: string) => {
      const pg = new Client({ connectionString: db.url });
      await pg.connect();
      try {
        return (await pg.query(sql)).rows as R[];
      } finally {
        await pg.end();
      }
    },
    // Nest's console logger writes errors (the exception filter's 5xx stacks among them) to stderr.
    logWindow: () => {
      const mark = proc.stderr.length;
      return () => proc.stderr.slice(mark).split('\n').filter((l) => l.trim() !== '');
    },
    gone: () => proc.waitForExit(1).then((s) => `the server process exited (${JSON.stringify(s)})\n${truncate(proc.output(), 4000)}`, () => undefined),
    close: async () => {
      await proc.kill();
      await db.drop();
    },
  };
}

const START: Record<string, (tmp: TempDir) => Promise<Target>> = { pglite: embeddedTarget, postgres: postgresTarget };
for (const t of TARGETS) {
  if (!START[t]) throw new Error(`KARYA_FUZZ_TARGETS: unknown target "${t}" (use pglite, postgres or both, comma-separated)`);
}

describe.each(TARGETS)(`API fuzz: ${COUNT} generated malformed requests (seed ${SEED_TEXT}) on %s`, (targetName) => {
  const tmp = new TempDir();
  let target: Target;
  let http: Server | string;
  const statusCounts = new Map<string, number>();
  let slowest = { ms: 0, n: 0 };
  let ctx: FuzzContext;
  const state: RunState = { createdNames: new Set(), plansByUser: new Map(), plans: new Map() };
  let ledger: AckLedger;

  async function post(url: string, body: object): Promise<request.Response> {
    return request(http).post(url).send(body);
  }

  async function setupPlan(userId: string, planType: Record<string, unknown>): Promise<string> {
    const res = await post('/v1/plan', {
      user_id: userId, description: 'fuzz target', action: { type: T.Rest, base_url: 'localhost:9' }, plan_type: planType,
      ...(planType.type === CRON ? {} : { period_time: 'P1D' }),
    });
    expect(res.status).toBe(200);
    expect(ledger.created(0, res.body)).toBeUndefined();
    state.plansByUser.set(userId, (state.plansByUser.get(userId) ?? 0) + 1);
    state.plans.set(String(prop(res.body, 'id')), factsOf(res.body as Record<string, unknown>));
    return String(prop(res.body, 'id'));
  }

  /** A OneTime plan made COMPLETED in the database (nothing runs plans here), for the 409s of a completed plan. */
  async function completedPlan(userId: string): Promise<string> {
    const id = await setupPlan(userId, { type: T.OneTime });
    await target.query(`UPDATE plans SET status = 'COMPLETED' WHERE id = '${id}'`);
    await target.query(`UPDATE tasks SET status = 'SUCCESS', executed_at = now() WHERE plan_id = '${id}'`);
    ledger.completedBehindApi(id);
    state.plans.set(id, { ...state.plans.get(id)!, status: 'COMPLETED' });
    return id;
  }

  beforeAll(async () => {
    target = await START[targetName](tmp);
    http = target.http;
    ledger = new AckLedger(target.storedText);
    const userName = `karya-fuzz-main-${SEED_TEXT}`;
    const user = await post('/v1/user', { name: userName });
    const other = await post('/v1/user', { name: `karya-fuzz-other-${SEED_TEXT}` });
    expect([user.status, other.status]).toEqual([200, 200]);
    expect([ledger.userCreated(0, user.body), ledger.userCreated(0, other.body)]).toEqual([undefined, undefined]);
    state.createdNames.add(userName).add(`karya-fuzz-other-${SEED_TEXT}`);
    const userId = String(prop(user.body, 'id'));
    const otherUserId = String(prop(other.body, 'id'));
    ctx = {
      userId, userName, otherUserId,
      oneTimePlanId: await setupPlan(userId, { type: T.OneTime }),
      recurringPlanId: await setupPlan(userId, { type: T.Recurring }),
      cronPlanId: await setupPlan(userId, { type: CRON, expression: '0 9 * * 1-5', time_zone: 'Europe/Berlin', overlap: 'SKIP' }),
      cancelPlanId: await setupPlan(userId, { type: T.OneTime }),
      completedPlanId: await completedPlan(userId),
    };
  }, 120_000);

  afterAll(async () => {
    await target?.close();
    tmp.cleanup();
  });

  async function send(c: FuzzCase): Promise<Answer> {
    let req = request(http)[c.method](c.url).timeout({ response: 15_000, deadline: 20_000 });
    if (c.contentType !== undefined) req = req.set('Content-Type', c.contentType);
    for (const [k, v] of Object.entries(c.headers ?? {})) req = req.set(k, v);
    // Raw bytes: supertest adds no Content-Type for a Buffer, but would JSON-serialize one sent with a JSON
    // Content-Type; the identity serializer sends the bytes as they are (superagent accepts a Buffer there).
    const res = await (c.body !== undefined ? req.serialize(sendAsIs).send(c.body) : req);
    return { status: res.status, contentType: String(res.headers['content-type'] ?? ''), text: res.text ?? '', body: res.body as unknown };
  }

  /** Checks of every 200 answer, per endpoint (exact top-level key sets, as the Python client needs). */
  function checkSuccess(c: FuzzCase, body: unknown): string | undefined {
    if (c.endpoint === 'GET /v1/plan/{id}/state' || c.endpoint === 'POST /v1/plan/{id}/pause' || c.endpoint === 'POST /v1/plan/{id}/resume') {
      if (keysOf(body) !== [...PLAN_STATE_KEYS].sort().join(',')) return `PlanState keys are ${keysOf(body)}`;
    }
    if (c.endpoint === 'POST /v1/plan/{id}/run' && keysOf(body) !== [...TASK_KEYS].sort().join(',')) return `Task keys are ${keysOf(body)}`;
    if (c.endpoint === 'POST /v1/plan' || c.endpoint === 'PATCH /v1/plan' || c.endpoint === 'POST /v1/plan/{id}') {
      if (keysOf(body) !== [...PLAN_KEYS].sort().join(',')) return `Plan keys are ${keysOf(body)}`;
      if (c.endpoint === 'POST /v1/plan' && prop(body, 'status') !== 'CREATED') return `status ${String(prop(body, 'status'))}`;
    }
    if (c.endpoint === 'POST /v1/user' && keysOf(body) !== 'created_at,id,name') return `User keys are ${keysOf(body)}`;
    return undefined;
  }

  /** A 200 must have stored what it echoed: read the plan (or user) back at once (the ledger checks it again at the end). */
  async function roundTrip(c: FuzzCase, body: unknown): Promise<string | undefined> {
    const storedText = target.storedText ?? ((json: string) => json);
    if (c.endpoint === 'POST /v1/user') {
      const name = String(prop(body, 'name'));
      const res = await request(http).get(`/v1/user?username=${pct(name)}`);
      if (res.status !== 200) return `the created user cannot be found by its name (${res.status} ${truncate(res.text, 200)})`;
      const got = prop(res.body, 'name');
      return storedText(JSON.stringify(got)) === storedText(JSON.stringify(name)) ? undefined : `stored name ${JSON.stringify(got)} differs from the echoed ${JSON.stringify(name)}`;
    }
    const id = String(prop(body, 'id'));
    const res = await request(http).get(`/v1/plan/${id}`);
    if (res.status !== 200) return `the plan cannot be read back (${res.status} ${truncate(res.text, 200)})`;
    const stored = storedText(JSON.stringify(canonical(prop(res.body, 'plan'))));
    const echoed = storedText(JSON.stringify(canonical(body)));
    if (stored === echoed) return undefined;
    let i = 0;
    while (i < stored.length && stored[i] === echoed[i]) i++;
    return `stored plan differs from the echoed one at char ${i}: stored …${stored.slice(Math.max(0, i - 40), i + 40)}… echoed …${echoed.slice(Math.max(0, i - 40), i + 40)}…`;
  }

  async function readStored(): Promise<Stored> {
    return {
      plans: await target.query(STORED_QUERIES.plans),
      tasks: await target.query(STORED_QUERIES.tasks),
      users: await target.query(STORED_QUERIES.users),
    };
  }

  /** Counts what a 200 created and enters it in the ledger; returns a problem the ledger saw in the answer. */
  function record(c: FuzzCase, body: unknown): string | undefined {
    switch (c.endpoint) {
      case 'POST /v1/plan': {
        const owner = String(prop(body, 'user_id')).toLowerCase();
        state.plansByUser.set(owner, (state.plansByUser.get(owner) ?? 0) + 1);
        state.plans.set(String(prop(body, 'id')), factsOf(body as Record<string, unknown>));
        return ledger.created(c.n, body);
      }
      case 'PATCH /v1/plan': return ledger.patched(c.n, body, sentObject(c));
      case 'POST /v1/plan/{id}': {
        const facts = state.plans.get(String(prop(body, 'id')));
        if (facts) facts.status = String(prop(body, 'status'));
        return ledger.cancelled(c.n, body);
      }
      case 'POST /v1/plan/{id}/pause': {
        const facts = state.plans.get(String(prop(body, 'plan_id')));
        if (facts && !facts.paused) Object.assign(facts, { paused: true, pausedAt: prop(body, 'paused_at') });
        return ledger.paused(c.n, body);
      }
      case 'POST /v1/plan/{id}/resume': {
        const facts = state.plans.get(String(prop(body, 'plan_id')));
        if (facts) Object.assign(facts, { paused: false, pausedAt: null, status: String(prop(body, 'status')) });
        return ledger.resumed(c.n, body);
      }
      case 'POST /v1/plan/{id}/run': return ledger.ran(c.n, body);
      case 'POST /v1/user':
        state.createdNames.add(decoded(String(prop(body, 'name'))));
        return ledger.userCreated(c.n, body);
      default: return undefined;
    }
  }

  async function check(c: FuzzCase): Promise<Failure | undefined> {
    const expected = typeof c.expect === 'function' ? c.expect(state) : c.expect;
    const serverLog = target.logWindow();
    let answer: Answer;
    const sent = Date.now();
    try {
      answer = await send(c);
      if (Date.now() - sent > slowest.ms) slowest = { ms: Date.now() - sent, n: c.n };
    } catch (e) {
      statusCounts.set('none', (statusCounts.get('none') ?? 0) + 1);
      return { c, expected, problems: [`no answer: ${e instanceof Error ? e.message : String(e)} (a hang or a dropped connection)`], serverLog: serverLog() };
    }
    const problems: string[] = [];
    statusCounts.set(String(answer.status), (statusCounts.get(String(answer.status)) ?? 0) + 1);
    if (DUMP) {
      const line = { n: c.n, endpoint: c.endpoint, family: c.family, mutation: c.mutation, status: answer.status, text: truncate(answer.text, 300) };
      appendFileSync(DUMP, `${JSON.stringify(line)}\n`);
    }
    const listed = expected.statuses.includes(answer.status);
    if (!listed) problems.push(`status ${answer.status}, expected ${expected.statuses.join(' or ')}`);
    if (answer.status >= 400) {
      if (!/^text\/plain/.test(answer.contentType)) problems.push(`error Content-Type is "${answer.contentType}", not text/plain`);
      if (answer.text.trim() === '') problems.push('empty error message');
      const vague = unclear(answer.text);
      if (vague) problems.push(vague);
      if (listed && answer.status === 400 && expected.names && !answer.text.includes(expected.names)) {
        problems.push(`the message does not name "${expected.names}"`);
      }
      if (listed && expected.text && !expected.text.test(answer.text)) problems.push(`the message does not match ${String(expected.text)}`);
    } else if (answer.status === 200) {
      if (!/^application\/json/.test(answer.contentType)) problems.push(`200 Content-Type is "${answer.contentType}"`);
      // Checked against the run's state before this answer, which then updates it.
      const p = checkSuccess(c, answer.body) ?? c.checkOk?.(answer.body, state);
      if (p) problems.push(p);
      const ack = record(c, answer.body);
      if (ack) problems.push(ack);
      if (!p && c.roundTrip && (c.endpoint === 'POST /v1/plan' || c.endpoint === 'PATCH /v1/plan' || c.endpoint === 'POST /v1/user')) {
        const rt = await roundTrip(c, answer.body);
        if (rt) problems.push(rt);
      }
    }
    if (problems.length === 0) return undefined;
    return { c, expected, answer, problems, serverLog: serverLog() };
  }

  function report(failures: Failure[], cases: FuzzCase[], ms: number): string {
    const groups = new Map<string, number>();
    for (const f of failures) {
      const key = `${f.c.endpoint} | ${f.c.family} -> ${f.answer ? f.answer.status : 'no answer'}: ${f.problems[0].replace(/"[^"]*"/g, '"…"')}`;
      groups.set(key, (groups.get(key) ?? 0) + 1);
    }
    const lines = [
      `${failures.length} of ${cases.length} fuzz requests were answered against the contract on ${targetName} (seed ${SEED_TEXT}, ${ms} ms).`,
      `Reproduce: ${rerun(targetName)}`,
      '',
      'By endpoint | mutation -> status: first problem',
      ...[...groups.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${String(n).padStart(4)} × ${k}`),
      '',
      `First ${Math.min(30, failures.length)} failures:`,
    ];
    for (const f of failures.slice(0, 30)) {
      lines.push('', `#${f.c.n} ${f.c.endpoint}: ${f.c.mutation}`, describeRequest(f.c));
      lines.push(`  expected: ${describeExpectation(f.expected)}`);
      if (f.answer) lines.push(`  got: ${f.answer.status} ${f.answer.contentType} ${JSON.stringify(truncate(f.answer.text, 400))}`);
      for (const p of f.problems) lines.push(`  problem: ${p}`);
      for (const l of f.serverLog.slice(0, 2)) lines.push(`  server log: ${truncate(l.split('\n').slice(0, 6).join(' | '), 900)}`);
    }
    return lines.join('\n');
  }

  it('answers every mutated request with 200 (still valid) or a plain-text 400/403/404/409 naming the problem, never a 5xx', async () => {
    const cases = generateCases(SEED, COUNT, ctx);
    const failures: Failure[] = [];
    const started = Date.now();
    for (const c of cases) {
      const f = await check(c);
      if (f) failures.push(f);
      if (c.n % 100 === 0) {
        const live = await request(http).get('/').timeout({ response: 5000 }).then((r) => r.status, () => 0);
        if (live !== 200) {
          const why = (await target.gone()) ?? 'it still runs';
          failures.push({ c, expected: { statuses: [200] }, problems: [`GET / answered ${live} after case #${c.n}: the server stopped serving (${why})`], serverLog: [] });
          break;
        }
      }
    }
    const ms = Date.now() - started;
    const gone = await target.gone();
    if (gone) failures.push({ c: cases[cases.length - 1], expected: { statuses: [200] }, problems: [gone], serverLog: [] });
    const histogram = (key: (c: FuzzCase) => string): string => {
      const counts = new Map<string, number>();
      for (const c of cases) counts.set(key(c), (counts.get(key(c)) ?? 0) + 1);
      return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    };
    // Coverage, so a run shows what was exercised.
    process.stdout.write(
      `api-fuzz on ${targetName}, seed ${SEED_TEXT}: ${cases.length} cases in ${ms} ms (${Math.round((cases.length * 1000) / Math.max(1, ms))}/s), ` +
        `${failures.length} failed; slowest answer ${slowest.ms} ms (#${slowest.n}); JSON body limit ${BODY_LIMIT_BYTES} bytes\n` +
        `  statuses: ${[...statusCounts].sort().map(([k, n]) => `${k} ${n}`).join(', ')}\n` +
        `  endpoints: ${histogram((c) => c.endpoint)}\n` +
        `  body mutations: ${histogram((c) => (c.endpoint.startsWith('GET') || c.endpoint.includes('{id}') ? 'query/path' : c.family))}\n`,
    );
    if (failures.length > 0) throw new Error(report(failures, cases, ms));
  }, Math.max(180_000, COUNT * 100));

  it('stored exactly what was acknowledged: every plan a 200 answered once, as last echoed, with its first task; nothing else', async () => {
    for (const id of [ctx.userId, ctx.otherUserId]) {
      const res = await request(http).get(`/v1/plan?user_id=${id}&page=0`).expect(200);
      expect({ user: id, total: prop(res.body, 'total') }).toEqual({ user: id, total: state.plansByUser.get(id) ?? 0 });
    }
    const verdict: LedgerVerdict = ledger.verify(await readStored());
    const f = verdict.figures;
    process.stdout.write(
      `api-fuzz on ${targetName}, seed ${SEED_TEXT}: stored vs acknowledged: ${f.plansAcknowledged} plans acknowledged (${f.patches} PATCHes, ` +
        `${f.cancels} cancels, ${f.pauses} pauses, ${f.resumes} resumes, ${f.runs} runs now), ${f.plansStored} stored; ` +
        `${f.usersAcknowledged} users acknowledged, ${f.usersStored} stored; ` +
        `${verdict.problems.length} violations\n`,
    );
    if (verdict.problems.length > 0) {
      throw new Error(`${verdict.problems.length} violations on ${targetName} (reproduce: ${rerun(targetName)}):\n` +
        verdict.problems.slice(0, 40).map((p) => `  ${p}`).join('\n'));
    }
  });

  it('the stored check can fail: it sees one plan changed behind the API', async () => {
    const id = ctx.oneTimePlanId;
    await target.query(`UPDATE plans SET description = description || '~' WHERE id = '${id}'`);
    try {
      const { problems } = ledger.verify(await readStored());
      expect(problems).toEqual([expect.stringMatching(new RegExp(`^plan ${id} .*: description stored "fuzz target~", acknowledged "fuzz target"$`))]);
    } finally {
      await target.query(`UPDATE plans SET description = 'fuzz target' WHERE id = '${id}'`);
    }
    expect(ledger.verify(await readStored()).problems).toEqual([]);
  });

  it('still serves afterwards: a valid user and plan are created and listed', async () => {
    await request(http).get('/').expect(200);
    const user = await post('/v1/user', { name: `after-fuzz-${SEED_TEXT}` });
    expect(user.status).toBe(200);
    const userId = String(prop(user.body, 'id'));
    const plan = await post('/v1/plan', {
      user_id: userId, description: 'after the fuzz', period_time: 'PT1H',
      plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: 'localhost:9' },
    });
    expect(plan.status).toBe(200);
    expect(prop(plan.body, 'status')).toBe('CREATED');
    const list = await request(http).get(`/v1/plan?user_id=${userId}&page=0`).expect(200);
    expect(prop(list.body, 'total')).toBe(1);
  });
});
