import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { constructWithPythonClient, PythonClientItem, PythonClientKind, PythonClientResult } from './support/python-client';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Issue 13, the published Python client (karya-client 1.1.3) against a real server: what an embedded Karya
 * really answers for cron and paused plans goes through the client's own classes, as KaryaRestClient builds
 * them (`Cls(**response.json())`, see test/support/python-client.ts). test/python-client.spec.ts shows the
 * harness fails on a wrong key set; this suite feeds it live responses. Nested plans and tasks, which the
 * client leaves as dicts, are also built as Plan and Task: stricter than the client, and what a user doing
 * `Plan(**p)` on them needs. The key sets are checked here too, so a failure names the key.
 */

const CRON = 'karya.core.entities.PlanType.Cron';
const PLAN_KEYS = [
  'action',
  'created_at',
  'description',
  'hook',
  'id',
  'max_failure_retry',
  'parent_plan_id',
  'period_time',
  'status',
  'type',
  'updated_at',
  'user_id',
];
const TASK_KEYS = ['created_at', 'executed_at', 'id', 'next_execution_at', 'partition_key', 'plan_id', 'status'];
/** The top-level key set of each response the client builds. */
const KEYS: Record<'Plan' | 'GetPlanResponse' | 'GetSummaryResponse' | 'ListPlanResponse', string[]> = {
  Plan: PLAN_KEYS,
  GetPlanResponse: ['latest_task', 'plan'],
  GetSummaryResponse: ['error_logs', 'plan', 'tasks'],
  ListPlanResponse: ['offset', 'plans', 'total'],
};

type Json = Record<string, unknown>;
type Kind = keyof typeof KEYS;
interface Labelled extends PythonClientItem {
  label: string;
}

const keysOf = (value: unknown): string[] => Object.keys(value as object).sort();

/**
 * The responses to hand the client, each labelled by the call that produced it. `add` checks the v1 key
 * sets (top level, and of every nested plan and task) and queues the nested ones as Plan and Task too.
 */
class Responses {
  readonly items: Labelled[] = [];

  add(label: string, kind: Kind, json: Json): void {
    expect({ label, keys: keysOf(json) }).toEqual({ label, keys: KEYS[kind] });
    this.items.push({ label, kind, json });
    const plans: unknown[] = kind === 'ListPlanResponse' ? (json.plans as unknown[]) : kind === 'Plan' ? [] : [json.plan];
    const tasks: unknown[] = kind === 'GetPlanResponse' ? [json.latest_task] : kind === 'GetSummaryResponse' ? (json.tasks as unknown[]) : [];
    plans.forEach((p, i) => this.addNested(`${label} plans[${i}]`, 'Plan', PLAN_KEYS, p));
    tasks.forEach((t, i) => this.addNested(`${label} tasks[${i}]`, 'Task', TASK_KEYS, t));
  }

  /** A plan or task the client never builds on its own (nested, or a Karya-only answer such as run now's Task). */
  addNested(label: string, kind: PythonClientKind, keys: string[], json: unknown): void {
    expect({ label, keys: keysOf(json) }).toEqual({ label, keys });
    this.items.push({ label, kind, json });
  }

  /** Builds every queued response with the client's classes (one python3 run); every verdict must be ok. */
  async construct(): Promise<Map<string, PythonClientResult>> {
    const results = await constructWithPythonClient(this.items.map(({ kind, json }) => ({ kind, json })));
    const labelled = this.items.map((item, i) => ({ label: item.label, kind: item.kind, ...results[i] }));
    expect(labelled.filter((r) => !r.ok)).toEqual([]);
    return new Map(labelled.map((r) => [r.label, r]));
  }
}

describe('published Python client (karya-client 1.1.3) builds the real responses of an embedded Karya', () => {
  // Only the embedded stack: the wire shapes do not depend on the providers, and one stack keeps this quick.
  const [embedded] = stacks();
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userId: string;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, userId } = await startInProcessKarya(embedded, tmp, {
      executorYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n',
      userName: 'python-client',
    }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, embedded, tmp);
  });

  const post = async (path: string, body?: Json): Promise<Json> => (await request(http).post(path).send(body).expect(200)).body;
  const get = async (path: string): Promise<Json> => (await request(http).get(path).expect(200)).body;
  const submit = (body: Json) => post('/v1/plan', { user_id: userId, max_failure_retry: 1, ...body });
  const rest = (path: string) => ({ type: T.Rest, base_url: `${sink.baseUrl}/${path}` });

  it('cron, paused and plain plans: submit, get, summary, list and cancel answers all construct', async () => {
    const responses = new Responses();
    // Nothing here fires while the test runs: PT1H plans, and a cron plan for 09:00 on weekdays in Berlin.
    const cron = await submit({
      description: 'weekday mornings',
      plan_type: { type: CRON, expression: '0 9 * * 1-5', time_zone: 'Europe/Berlin', overlap: 'SKIP' },
      action: rest('cron'),
      hooks: [{ trigger: 'ON_FAILURE', action: rest('cron-failed'), max_retry: 2 }],
    });
    const paused = await submit({
      description: 'hourly, paused',
      period_time: 'PT1H',
      plan_type: { type: T.Recurring, end_at: Date.now() + 24 * 3_600_000, overlap: 'BUFFER_ONE' },
      action: rest('paused'),
    });
    const plain = await submit({ description: 'plain one-time', period_time: 'PT1H', plan_type: { type: T.OneTime }, action: rest('plain') });
    responses.add('POST cron', 'Plan', cron);
    responses.add('POST paused', 'Plan', paused);
    responses.add('POST plain', 'Plan', plain);
    expect(cron.period_time).toBe('0 9 * * 1-5');
    expect(cron.type).toEqual({ type: CRON, expression: '0 9 * * 1-5', time_zone: 'Europe/Berlin', end_at: null, overlap: 'SKIP' });

    expect(await post(`/v1/plan/${paused.id}/pause`)).toMatchObject({ plan_id: paused.id, status: 'PAUSED' });

    for (const [name, plan] of [['cron', cron], ['paused', paused], ['plain', plain]] as const) {
      const got = await get(`/v1/plan/${plan.id}`);
      expect((got.plan as Json).id).toBe(plan.id);
      // A paused plan keeps its v1 status, and its pending task reads CREATED (the client's enums are fixed).
      expect([(got.plan as Json).status, (got.latest_task as Json).status]).toEqual(['CREATED', 'CREATED']);
      responses.add(`GET ${name}`, 'GetPlanResponse', got);
      responses.add(`GET ${name} summary`, 'GetSummaryResponse', await get(`/v1/plan/${plan.id}/summary`));
    }

    const list = await get(`/v1/plan?user_id=${userId}&page=0`);
    expect((list.plans as Json[]).map((p) => p.id)).toEqual(expect.arrayContaining([cron.id, paused.id, plain.id]));
    responses.add('GET list', 'ListPlanResponse', list);
    // The status filter is Karya's own (the Python client never sends it); its answer is still a v1 list.
    const pausedOnly = await get(`/v1/plan?user_id=${userId}&page=0&status=PAUSED`);
    expect(pausedOnly).toMatchObject({ total: 1, offset: 0, plans: [{ id: paused.id, status: 'CREATED' }] });
    responses.add('GET list status=PAUSED', 'ListPlanResponse', pausedOnly);

    // Cancel (the paused plan, the cron plan), and read them back cancelled.
    for (const [name, plan] of [['paused', paused], ['cron', cron]] as const) {
      const cancelled = await post(`/v1/plan/${plan.id}`);
      expect(cancelled.status).toBe('CANCELLED');
      responses.add(`POST cancel ${name}`, 'Plan', cancelled);
      const summary = await get(`/v1/plan/${plan.id}/summary`);
      expect((summary.tasks as Json[]).map((t) => t.status)).toEqual(['CANCELLED']);
      responses.add(`GET cancelled ${name} summary`, 'GetSummaryResponse', summary);
      responses.add(`GET cancelled ${name}`, 'GetPlanResponse', await get(`/v1/plan/${plan.id}`));
    }
    responses.add('GET list after cancels', 'ListPlanResponse', await get(`/v1/plan?user_id=${userId}&page=0`));

    const built = await responses.construct();
    // What the client's objects hold: the cron expression as period_time, the Cron type as a plain dict, the
    // status as a plain str (not coerced to PlanStatus, see python-client.spec.ts).
    expect(built.get('POST cron')?.repr).toMatch(/^Plan\(.*period_time='0 9 \* \* 1-5'.*'type': 'karya\.core\.entities\.PlanType\.Cron'/);
    expect(built.get('POST cancel paused')?.repr).toContain("status='CANCELLED'");
    expect(built.get('GET paused')?.repr).toMatch(/^GetPlanResponse\(plan=\{/);
    expect(built.get('GET list')?.repr).toMatch(/^ListPlanResponse\(plans=\[/);
  });

  it('a cron plan that has run (run now): RUNNING, a SUCCESS task with executed_at, constructs too', async () => {
    const responses = new Responses();
    const cron = await submit({
      description: 'run now',
      plan_type: { type: CRON, expression: '0 9 * * 1-5', time_zone: 'Europe/Berlin' },
      action: rest('run-now'),
    });
    const extra = await post(`/v1/plan/${cron.id}/run`);
    // Run now answers a v1 Task (a call the Python client does not have): built as the client's Task.
    responses.addNested('POST run', 'Task', TASK_KEYS, extra);
    await waitFor(() => sink.hitsFor(extra.id as string).length === 1, 5_000, 'the run-now call');
    await waitFor(
      async () => ((await get(`/v1/plan/${cron.id}/summary`)).tasks as Json[]).some((t) => t.id === extra.id && t.status === 'SUCCESS'),
      5_000,
      'the run-now task to be recorded SUCCESS',
    );
    const summary = await get(`/v1/plan/${cron.id}/summary`);
    expect((summary.plan as Json).status).toBe('RUNNING');
    // The extra task ran; the regular occurrence is still pending on the grid.
    expect((summary.tasks as Json[]).map((t) => t.status).sort()).toEqual(['CREATED', 'SUCCESS']);
    expect((summary.tasks as Json[]).find((t) => t.id === extra.id)?.executed_at).toEqual(expect.any(Number));
    responses.add('GET ran summary', 'GetSummaryResponse', summary);
    responses.add('GET ran', 'GetPlanResponse', await get(`/v1/plan/${cron.id}`));
    responses.add('POST cancel ran', 'Plan', await post(`/v1/plan/${cron.id}`));
    const built = await responses.construct();
    expect(built.get('GET ran summary')?.repr).toContain("'status': 'RUNNING'");
  });
});
