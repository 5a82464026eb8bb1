import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { HttpSink, waitFor } from './support/http-sink';
import { freePort, KaryaProcess } from './support/karya-process';
import {
  assertLocalDefaults, createVhost, ensureAllRunningSync, isUp, ServiceName, startService, stopService,
} from './support/machine-services';
import { createTestDatabase, PG_ADMIN_URL, TestDatabase } from './support/postgres';
import { RABBIT, REDIS } from './support/real-services';
import { TcpProxy } from './support/tcp-proxy';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * The chaos suite: the deployed shape (1 server, 2 schedulers, 2 executors, each `node dist/main.js`) on the
 * machine's real PostgreSQL, Redis and RabbitMQ, under a steady stream of plans, while each service in turn
 * is restarted and then silently partitioned away (a TCP proxy in front of it stops forwarding, closing
 * nothing). It holds when:
 * - every plan acknowledged with a 200 runs (duplicates are counted and reported: at-least-once);
 * - no request takes 10 s or more (a 503 with Retry-After during an outage is the expected answer);
 * - no Karya process exits;
 * - every process's /health shows the outage of the service at fault, and is healthy again within 15 s;
 * - the pipeline is back on time within 15 s: plans due later than that run within 2 s of their due time.
 *
 * It restarts the services every other suite uses, so it must never run beside another suite (`npm test`
 * runs them one at a time), and it puts every service back however it ends: try/finally around each fault,
 * afterAll, and a process 'exit' guard.
 */

/** Plan submissions per second, each a OneTime REST plan due DUE_AFTER_MS later at the local sink. */
const RATE = 25;
const DUE_AFTER_MS = 3000;
/** Longest acceptable answer; the client gives up later than this, so a hang is seen as one. */
const MAX_ANSWER_MS = 10_000;
const CLIENT_TIMEOUT_MS = 12_000;
/** How long a restarted service stays stopped. */
const RESTART_DOWN_MS = 4000;
const PARTITION_MS = 20_000;
/** After the fault ends: /health healthy again, and plans due from then on run on time. */
const RECOVERY_MS = 15_000;
/** A plan that runs later than this after its due time is late. */
const ON_TIME_MS = 2000;
/** From the end of one fault to the start of the next: the recovery window plus a few on-time seconds. */
const GAP_MS = 19_000;
const HEALTH_EVERY_MS = 500;

type Connector = 'repo' | 'lock' | 'queue';
const CONNECTOR_OF: Record<ServiceName, Connector> = { postgres: 'repo', redis: 'lock', rabbitmq: 'queue' };

interface Fault {
  name: string;
  service: ServiceName;
  start: number;
  /** When the service answered again (restart) or the proxy forwarded again (partition). */
  heal: number;
}

interface RequestRecord {
  kind: 'submit' | 'read' | 'decoy' | 'cancel';
  started: number;
  ms: number;
  /** HTTP status, or how the call failed without one. */
  status: number | 'hang' | 'error';
  retryAfter: string | null;
  error?: string;
}

interface HealthSample {
  port: number;
  t: number;
  status: number | 'hang' | 'error';
  down: Connector[];
}

interface Member {
  name: string;
  process: KaryaProcess;
  port: number;
}

/** Interrupted (Ctrl-C, a CI timeout): put the services back, then die of the signal as Node would have. */
function restoreAndRaise(signal: NodeJS.Signals): void {
  ensureAllRunningSync();
  process.kill(process.pid, signal);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

describe('chaos: restarts and silent partitions of PostgreSQL, Redis and RabbitMQ under a steady stream of plans', () => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let db: TestDatabase;
  let vhost: { name: string; delete(): Promise<void> } | undefined;
  const proxies = {} as Record<ServiceName, TcpProxy>;
  const members: Member[] = [];
  let serverPort = 0;
  let userId = '';

  const faults: Fault[] = [];
  const requests: RequestRecord[] = [];
  const health: HealthSample[] = [];
  /** Plans acknowledged with a 200 (id → acknowledgement time). */
  const acked = new Map<string, number>();
  const decoys: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let loadRunning = false;
  let healthRunning = false;
  const loops: Promise<void>[] = [];
  const startedAt = Date.now();

  beforeAll(async () => {
    assertLocalDefaults(PG_ADMIN_URL);
    process.on('exit', ensureAllRunningSync);
    process.once('SIGINT', restoreAndRaise);
    process.once('SIGTERM', restoreAndRaise);
    for (const service of ['postgres', 'redis', 'rabbitmq'] as const) {
      if (!(await isUp(service))) throw new Error(`${service} is not running: the chaos suite needs the machine's services up`);
    }
    await sink.start();
    db = await createTestDatabase();
    const pgUrl = new URL(db.url);
    proxies.postgres = await new TcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432)).start();
    proxies.redis = await new TcpProxy(REDIS.host, REDIS.port).start();
    proxies.rabbitmq = await new TcpProxy(RABBIT.host, RABBIT.port).start();
    pgUrl.port = String(proxies.postgres.port);
    vhost = await createVhost(`karya-chaos-${randomBytes(4).toString('hex')}`);
    // Every process reaches every service through its proxy. No timeout keys: the defaults are under test.
    const providers = tmp.write('providers.yml', [
      'repo:',
      '  provider: psql',
      '  partitions: 5',
      '  properties:',
      `    url: "${pgUrl.toString()}"`,
      '    poolSize: 4',
      'lock:',
      '  provider: redis',
      '  properties:',
      `    clusterNodes: ["redis://${REDIS.host}:${proxies.redis.port}"]`,
      'queue:',
      '  provider: rabbitmq',
      '  properties:',
      `    virtualHost: "${vhost.name}"`,
      `    clusterNodes: ["${RABBIT.host}:${proxies.rabbitmq.port}"]`,
      '',
    ].join('\n'));
    const egress = '  egress:\n    allowPrivateNetworks: true\n';
    // Rate limits on (far above the load) so that every API call also counts in Redis.
    const serverYml = tmp.write('server.yml', `application:\n${egress}  rateLimit:\n    requestsPerMinute: 1000000\n    submissionsPerMinute: 1000000\n`);
    const scheduler = (extra: string) =>
      tmp.write(`scheduler-${extra.length}.yml`, `application:\n  leaseTime: 5000\n  workers: 2\n  fetcher:\n    pollFrequency: 200\n    channelCapacity: 200\n${extra}`);
    const executorYml = tmp.write('executor.yml', `application:\n  concurrency: 64\n${egress}  connectors:\n    - type: restapi\n      configs: {}\n`);

    const start = async (name: string, env: Record<string, string>): Promise<Member> => {
      const port = await freePort();
      const member = { name, port, process: new KaryaProcess({ KARYA_PROVIDERS_CONFIG_PATH: providers, PORT: String(port), ...env }).start() };
      members.push(member);
      return member;
    };
    const server = await start('server', { KARYA_ROLE: 'server', KARYA_SERVER_CONFIG_PATH: serverYml });
    await server.process.waitForHealthy(server.port);
    serverPort = server.port;
    const rest = await Promise.all([
      start('scheduler-1', { KARYA_ROLE: 'scheduler', KARYA_SCHEDULER_CONFIG_PATH: scheduler('') }),
      start('scheduler-2', { KARYA_ROLE: 'scheduler', KARYA_SCHEDULER_CONFIG_PATH: scheduler('    repoPartitions: [2, 3, 4]\n') }),
      start('executor-1', { KARYA_ROLE: 'executor', KARYA_EXECUTOR_CONFIG_PATH: executorYml }),
      start('executor-2', { KARYA_ROLE: 'executor', KARYA_EXECUTOR_CONFIG_PATH: executorYml }),
    ]);
    await Promise.all(rest.map((m) => m.process.waitForHealthy(m.port)));

    const res = await fetch(`http://127.0.0.1:${serverPort}/v1/user`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'chaos' }),
    });
    userId = ((await res.json()) as { id: string }).id;
    loadRunning = true;
    healthRunning = true;
    loops.push(generateLoad(), ...members.map((m) => pollHealth(m.port)));
  }, 180_000);

  afterAll(async () => {
    loadRunning = false;
    healthRunning = false;
    for (const proxy of Object.values(proxies)) proxy.thaw();
    try {
      for (const service of ['postgres', 'redis', 'rabbitmq'] as const) {
        if (!(await isUp(service))) await startService(service);
      }
    } finally {
      await Promise.allSettled([...loops, ...inFlight]);
      await Promise.all(members.map((m) => m.process.kill()));
      // For a look at what each process said through the faults: KARYA_CHAOS_LOG_DIR=/some/dir npm test.
      const logDir = process.env.KARYA_CHAOS_LOG_DIR;
      if (logDir) for (const m of members) writeFileSync(join(logDir, `${m.name}.log`), m.process.output());
      await Promise.all(Object.values(proxies).map((p) => p.stop()));
      await db?.drop();
      await vhost?.delete();
      await sink.stop();
      tmp.cleanup();
      process.removeListener('exit', ensureAllRunningSync);
      process.removeListener('SIGINT', restoreAndRaise);
      process.removeListener('SIGTERM', restoreAndRaise);
    }
  }, 180_000);

  // ------------------------------------------------------------------------------------------ the load

  /** Open loop: requests go out on a fixed clock whether or not earlier ones were answered, as clients do. */
  async function generateLoad(): Promise<void> {
    const begin = Date.now();
    for (let i = 0; loadRunning; i++) {
      await sleep(begin + (i * 1000) / RATE - Date.now());
      if (!loadRunning) break;
      track(submit());
      // A tenth more traffic on the other paths: a read, and (through Redis's per-plan lock) cancels of
      // plans that are far from due.
      if (i % 10 === 3 && acked.size > 0) track(read());
      if (i % 20 === 7) track(decoy());
      if (i % 20 === 17 && decoys.length > 0) track(cancel());
    }
  }

  function track(p: Promise<void>): void {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }

  async function call(kind: RequestRecord['kind'], path: string, init: RequestInit = {}): Promise<string | undefined> {
    const started = Date.now();
    const record: RequestRecord = { kind, started, ms: 0, status: 'error', retryAfter: null };
    requests.push(record);
    try {
      const res = await fetch(`http://127.0.0.1:${serverPort}${path}`, { ...init, signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) });
      const body = await res.text();
      record.status = res.status;
      record.retryAfter = res.headers.get('retry-after');
      if (res.status !== 200) record.error = body.slice(0, 200);
      return res.status === 200 ? body : undefined;
    } catch (e) {
      record.status = e instanceof Error && e.name === 'TimeoutError' ? 'hang' : 'error';
      record.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return undefined;
    } finally {
      record.ms = Date.now() - started;
    }
  }

  const json = { 'content-type': 'application/json' };

  function planRequest(description: string, period: string, path: string): string {
    return JSON.stringify({
      user_id: userId, description, period_time: period, plan_type: { type: T.OneTime }, max_failure_retry: 2,
      action: { type: T.Rest, base_url: `${sink.baseUrl}/${path}`, method: 'POST' },
    });
  }

  async function submit(): Promise<void> {
    const body = await call('submit', '/v1/plan', { method: 'POST', headers: json, body: planRequest('chaos', `PT${DUE_AFTER_MS / 1000}S`, 'chaos') });
    if (body !== undefined) acked.set((JSON.parse(body) as { id: string }).id, Date.now());
  }

  async function read(): Promise<void> {
    const ids = [...acked.keys()];
    await call('read', `/v1/plan/${ids[Math.floor(Math.random() * ids.length)]}`);
  }

  /** Plans due in an hour: they never run during the suite, and are there to be cancelled. */
  async function decoy(): Promise<void> {
    const body = await call('decoy', '/v1/plan', { method: 'POST', headers: json, body: planRequest('decoy', 'PT1H', 'decoy') });
    if (body !== undefined) decoys.push((JSON.parse(body) as { id: string }).id);
  }

  async function cancel(): Promise<void> {
    const id = decoys.shift();
    if (id) await call('cancel', `/v1/plan/${id}`, { method: 'POST' });
  }

  async function pollHealth(port: number): Promise<void> {
    while (healthRunning) {
      const t = Date.now();
      const sample: HealthSample = { port, t, status: 'error', down: [] };
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) });
        const body = (await res.json()) as { details?: Record<string, { status: string }> };
        sample.status = res.status;
        sample.down = (['repo', 'lock', 'queue'] as const).filter((c) => body.details?.[c]?.status !== 'up');
      } catch (e) {
        sample.status = e instanceof Error && e.name === 'TimeoutError' ? 'hang' : 'error';
      }
      health.push(sample);
      await sleep(t + HEALTH_EVERY_MS - Date.now());
    }
  }

  // ------------------------------------------------------------------------------------------ the faults

  async function restart(service: ServiceName): Promise<Fault> {
    const fault: Fault = { name: `${service} restart`, service, start: Date.now(), heal: 0 };
    faults.push(fault);
    try {
      await stopService(service);
      // The outage itself: its length is the experiment's parameter, not a wait for a condition.
      await sleep(RESTART_DOWN_MS);
    } finally {
      await startService(service);
      fault.heal = Date.now();
    }
    return fault;
  }

  async function partition(service: ServiceName): Promise<Fault> {
    const fault: Fault = { name: `${service} silent partition`, service, start: Date.now(), heal: 0 };
    faults.push(fault);
    proxies[service].freeze();
    try {
      await sleep(PARTITION_MS);
    } finally {
      proxies[service].thaw();
      fault.heal = Date.now();
    }
    return fault;
  }

  /** Per process: ms from the heal to its first healthy /health (every connector up). */
  function recoveries(fault: Fault): Map<string, number | undefined> {
    return new Map(
      members.map((m) => {
        const first = health.find((s) => s.port === m.port && s.t >= fault.heal && s.status === 200);
        return [m.name, first ? first.t - fault.heal : undefined];
      }),
    );
  }

  /** Checks what a fault's own window must show, then holds the load steady until the next fault may start. */
  async function expectOutageSeenAndRecovered(fault: Fault): Promise<void> {
    try {
      await checkFault(fault);
    } finally {
      // Hold the load steady for the window in which the pipeline must be back on time, whatever the checks said.
      await sleep(fault.heal + GAP_MS - Date.now());
    }
  }

  async function checkFault(fault: Fault): Promise<void> {
    const connector = CONNECTOR_OF[fault.service];
    await waitFor(() => [...recoveries(fault).values()].every((ms) => ms !== undefined), RECOVERY_MS + 5000, `every process healthy after the ${fault.name}`)
      .catch(() => undefined); // asserted below, with the numbers
    for (const m of members) {
      const sawIt = health.some((s) => s.port === m.port && s.t >= fault.start && s.t <= fault.heal && s.down.includes(connector));
      expect({ process: m.name, fault: fault.name, reportedDown: sawIt }).toEqual({ process: m.name, fault: fault.name, reportedDown: true });
    }
    const recovered = recoveries(fault);
    for (const [name, ms] of recovered) {
      expect({ process: name, fault: fault.name, healthyWithin15s: ms !== undefined && ms <= RECOVERY_MS }).toEqual({
        process: name, fault: fault.name, healthyWithin15s: true,
      });
    }
    // Requests sent during the fault have all been answered by now (the client gives up at 12 s).
    await waitFor(() => requests.every((r) => r.started > fault.heal || r.ms > 0), CLIENT_TIMEOUT_MS + 2000, 'answers to requests sent during the fault');
    const during = requests.filter((r) => r.started >= fault.start && r.started <= fault.heal);
    expect(badAnswers(during)).toEqual([]);
  }

  /** Answers the suite does not accept: anything but 200 and 503 (with Retry-After), and slow answers. */
  function badAnswers(records: RequestRecord[]): string[] {
    return records
      .filter((r) => r.ms >= MAX_ANSWER_MS || !(r.status === 200 || (r.status === 503 && r.retryAfter !== null)))
      .map((r) => `${r.kind} at +${((r.started - startedAt) / 1000).toFixed(1)} s: ${r.status} after ${r.ms} ms${r.error ? ` (${r.error})` : ''}`)
      .slice(0, 20);
  }

  // ------------------------------------------------------------------------------------------ the tests

  it('PostgreSQL restart', async () => expectOutageSeenAndRecovered(await restart('postgres')), 120_000);
  it('Redis restart', async () => expectOutageSeenAndRecovered(await restart('redis')), 120_000);
  it('RabbitMQ restart', async () => expectOutageSeenAndRecovered(await restart('rabbitmq')), 120_000);
  it('PostgreSQL silent partition (20 s)', async () => expectOutageSeenAndRecovered(await partition('postgres')), 120_000);
  it('Redis silent partition (20 s)', async () => expectOutageSeenAndRecovered(await partition('redis')), 120_000);
  it('RabbitMQ silent partition (20 s)', async () => expectOutageSeenAndRecovered(await partition('rabbitmq')), 120_000);

  it('ran every acknowledged plan, answered every request within 10 s, lost no process, and was back on time within 15 s of each fault', async () => {
    loadRunning = false;
    await loops[0];
    await Promise.allSettled([...inFlight]);
    const loadEnded = Date.now();
    const ids = [...acked.keys()];
    const ranPlans = () => new Set(sink.hits.filter((h) => h.path === '/chaos').map((h) => h.planId));
    // A dispatch lost in an outage comes back when its lease lapses (leaseTime 5 s + the action's 2 s + 10 s).
    await waitFor(() => {
      const ran = ranPlans();
      return ids.every((id) => ran.has(id));
    }, 90_000, 'every acknowledged plan to run').catch(() => undefined);
    healthRunning = false;

    const hits = sink.hits.filter((h) => h.path === '/chaos');
    const perPlan = new Map<string, number[]>();
    for (const h of hits) perPlan.set(h.planId, [...(perPlan.get(h.planId) ?? []), h.receivedAt]);
    const lost = ids.filter((id) => !perPlan.has(id));
    const duplicated = [...perPlan.entries()].filter(([, at]) => at.length > 1);
    const unacknowledgedRan = [...perPlan.keys()].filter((id) => !acked.has(id));

    // Due times as stored, and the first run of each acknowledged plan: how late each ran.
    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    let lateness: { due: number; late: number }[];
    let statuses: Record<string, number>;
    let lostDetails: unknown[] = [];
    try {
      if (lost.length > 0) {
        // What became of them, to tell which part of the pipeline dropped them.
        const rows = (await pg.query(
          `SELECT t.plan_id, t.status, t.attempt, t.dispatch_seq, t.next_execution_at, t.executed_at,
                  (SELECT string_agg(DISTINCT e.error, ' / ') FROM error_logs e WHERE e.plan_id = t.plan_id) AS errors
             FROM tasks t WHERE t.plan_id = ANY($1::uuid[]) ORDER BY t.next_execution_at`,
          [lost],
        )).rows as { plan_id: string; status: string; attempt: number; dispatch_seq: number; next_execution_at: Date; executed_at: Date | null; errors: string | null }[];
        lostDetails = rows.slice(0, 10).map((r) => ({
          status: r.status, attempt: r.attempt, dispatchSeq: r.dispatch_seq,
          dueAtS: +((r.next_execution_at.getTime() - startedAt) / 1000).toFixed(1),
          executedAtS: r.executed_at ? +((r.executed_at.getTime() - startedAt) / 1000).toFixed(1) : null,
          errors: r.errors?.slice(0, 300),
        }));
      }
      const rows = (await pg.query(`SELECT plan_id, next_execution_at, status FROM tasks WHERE plan_id = ANY($1::uuid[])`, [ids])).rows as {
        plan_id: string; next_execution_at: Date; status: string;
      }[];
      lateness = rows
        .filter((r) => perPlan.has(r.plan_id))
        .map((r) => ({ due: r.next_execution_at.getTime(), late: Math.min(...perPlan.get(r.plan_id)!) - r.next_execution_at.getTime() }));
      statuses = {};
      for (const r of rows) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    } finally {
      await pg.end();
    }

    // Back on time: the last late plan due after the heal (and before the next fault could touch it).
    const backOnTime = faults.map((f, i) => {
      const until = (faults[i + 1]?.start ?? loadEnded) - DUE_AFTER_MS;
      const late = lateness.filter((l) => l.due >= f.heal && l.due < until && l.late > ON_TIME_MS);
      return { fault: f.name, ms: late.length === 0 ? 0 : Math.max(...late.map((l) => l.due)) - f.heal };
    });

    const byStatus = (kind?: RequestRecord['kind']) => {
      const counts: Record<string, number> = {};
      for (const r of requests.filter((x) => kind === undefined || x.kind === kind)) counts[String(r.status)] = (counts[String(r.status)] ?? 0) + 1;
      return counts;
    };
    // Per 5 s of due time: acknowledged plans due, and how they ran (on time, late, not at all).
    const firstRun = (id: string) => Math.min(...(perPlan.get(id) ?? [Number.POSITIVE_INFINITY]));
    const timeline: Record<string, string> = {};
    for (const [id, at] of acked) {
      const due = at + DUE_AFTER_MS;
      const bucket = `${Math.floor((due - startedAt) / 5000) * 5}s`;
      const ran = firstRun(id);
      const kind = ran === Number.POSITIVE_INFINITY ? 'lost' : ran - due > ON_TIME_MS ? 'late' : 'ok';
      const [ok, late, gone] = (timeline[bucket] ?? '0/0/0').split('/').map(Number);
      timeline[bucket] = [ok + (kind === 'ok' ? 1 : 0), late + (kind === 'late' ? 1 : 0), gone + (kind === 'lost' ? 1 : 0)].join('/');
    }
    const queues = lost.length > 0
      ? await promisify(execFile)('rabbitmqctl', ['-q', 'list_queues', '-p', vhost!.name, 'name', 'messages', 'messages_unacknowledged', 'consumers']).then((r) => r.stdout, (e: unknown) => String(e))
      : undefined;
    const report = {
      durationS: Math.round((loadEnded - startedAt) / 1000),
      submissions: requests.filter((r) => r.kind === 'submit').length,
      acknowledged: ids.length,
      submitAnswers: byStatus('submit'),
      allAnswers: byStatus(),
      slowestAnswerMs: Math.max(...requests.map((r) => r.ms)),
      slowest: [...requests].sort((a, b) => b.ms - a.ms).slice(0, 5)
        .map((r) => `${r.kind} at +${((r.started - startedAt) / 1000).toFixed(1)} s: ${r.status} after ${r.ms} ms ${r.error?.slice(0, 80) ?? ''}`),
      healthProbes: health.length,
      healthUnanswered: health.filter((h) => typeof h.status !== 'number').length,
      ran: ids.length - lost.length,
      lost: lost.length,
      duplicates: duplicated.length,
      unacknowledgedThatRan: unacknowledgedRan.length,
      taskStatuses: statuses,
      lostDetails,
      queues,
      timelineOkLateLost: timeline,
      faults: faults.map((f, i) => ({
        fault: f.name,
        fromS: +((f.start - startedAt) / 1000).toFixed(1),
        outageS: +((f.heal - f.start) / 1000).toFixed(1),
        answers503: requests.filter((r) => r.started >= f.start && r.started <= f.heal + RECOVERY_MS && r.status === 503).length,
        healthyAgainMs: Object.fromEntries(recoveries(f)),
        backOnTimeMs: backOnTime[i].ms,
      })),
    };
    process.stdout.write(`chaos report: ${JSON.stringify(report, null, 2)}\n`);

    expect(lost).toEqual([]);
    expect(badAnswers(requests)).toEqual([]);
    expect(sink.hits.filter((h) => h.path === '/decoy')).toEqual([]);
    expect(health.filter((h) => typeof h.status !== 'number')).toEqual([]);
    for (const m of members) {
      await expect(m.process.waitForExit(10)).rejects.toThrow(/still running/);
    }
    expect(backOnTime.filter((b) => b.ms > RECOVERY_MS)).toEqual([]);
    // At-least-once: a duplicate needs a dispatch whose outcome an outage hid. Reported above; bounded here
    // so that a regression to wholesale re-runs fails.
    expect(duplicated.length).toBeLessThanOrEqual(Math.ceil(ids.length * 0.01));
  }, 180_000);
});
