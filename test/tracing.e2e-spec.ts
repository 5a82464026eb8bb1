import { INestApplication } from '@nestjs/common';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { startTracing, Tracing, tracingOn } from '../src/tracing/tracing';
import { HttpSink, SinkHit, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Issue 14 part 6: optional OpenTelemetry traces. One in-process Karya on the embedded stack: first with
 * tracing off (nothing is stored or sent), then with it started through the test seam (an in-memory
 * exporter), where one trace runs from `POST /v1/plan` to the traceparent the REST target receives.
 */

const EXECUTOR_YML = 'application:\n  egress:\n    allowPrivateNetworks: true\n';
const CALLER_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN_ID = '00f067aa0ba902b7';
const CALLER_TRACEPARENT = `00-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01`;
/** What the action sends that no span may show. */
const HEADER_SECRET = 'header-secret-7f3a9c';
const QUERY_SECRET = 'query-secret-51d2e8';
/** A query credential no name gives away (an Azure SAS signature): the recorded URL has no query at all. */
const SAS_SECRET = 'sas-sig-0c4b7e';
const BODY_TEXT = 'body-text-93be10';

type Json = Record<string, unknown>;

describe('traces (embedded stack)', () => {
  const target = stacks()[0];
  const tmp = new TempDir();
  const sink = new HttpSink();
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | undefined;
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, { executorYml: EXECUTOR_YML, userName: 'traces' }));
  }, 60_000);
  afterAll(async () => {
    await tracing?.shutdown();
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const submit = async (path: string, traceparent?: string, extra: Json = {}): Promise<Json> => {
    const req = request(http).post('/v1/plan');
    if (traceparent !== undefined) req.set('traceparent', traceparent);
    const action = {
      type: T.Rest,
      base_url: `${sink.baseUrl}${path}?token=${QUERY_SECRET}&sig=${SAS_SECRET}`,
      method: 'POST',
      headers: { 'X-Api-Key': HEADER_SECRET, traceparent: CALLER_TRACEPARENT },
      body: { type: T.JsonBody, json_string: JSON.stringify({ text: BODY_TEXT }) },
    };
    return (await req.send({ user_id: userId, description: 'traced', period_time: 'PT0.1S', plan_type: { type: T.OneTime }, action, ...extra }).expect(200)).body;
  };
  const hitOf = async (planId: unknown): Promise<SinkHit> => {
    await waitFor(() => sink.hits.some((h) => h.planId === planId), 10_000, `the call of plan ${String(planId)}`);
    return sink.hits.find((h) => h.planId === planId)!;
  };
  const storedTraceContext = async (planId: unknown): Promise<string | null> =>
    ((await ds.query(`SELECT trace_context FROM plans WHERE id = $1`, [planId])) as { trace_context: string | null }[])[0].trace_context;

  describe('with tracing off', () => {
    it('stores no trace context and sends the target no traceparent of its own, even when the caller sent one', async () => {
      expect(tracingOn()).toBe(false);
      const plan = await submit('/untraced', CALLER_TRACEPARENT);
      const hit = await hitOf(plan.id);
      expect(await storedTraceContext(plan.id)).toBeNull();
      // The action's own traceparent header goes through untouched: Karya adds none.
      expect(hit.headers.traceparent).toBe(CALLER_TRACEPARENT);
      const bare = await submitWithoutOwnTraceparent('/untraced-bare');
      expect((await hitOf(bare.id)).headers.traceparent).toBeUndefined();
    });
  });

  /** A plan whose action sends no traceparent header of its own. */
  const submitWithoutOwnTraceparent = async (path: string): Promise<Json> =>
    (
      await request(http)
        .post('/v1/plan')
        .send({
          user_id: userId, description: 'plain', period_time: 'PT0.1S', plan_type: { type: T.OneTime },
          action: { type: T.Rest, base_url: `${sink.baseUrl}${path}`, method: 'POST' },
        })
        .expect(200)
    ).body;

  describe('with tracing on', () => {
    beforeAll(() => {
      tracing = startTracing({ env: {}, spanProcessors: [new SimpleSpanProcessor(exporter)] });
      expect(tracing.enabled).toBe(true);
    });

    const spans = () => exporter.getFinishedSpans();
    const ofPlan = (planId: unknown) => spans().filter((s) => s.attributes['karya.plan.id'] === planId);
    const submitSpanOf = (traceId: string) => spans().find((s) => s.name === 'POST /v1/plan' && s.spanContext().traceId === traceId);
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    /** The trace of a plan, once its outbound call's and execution's spans have ended. */
    const traceOf = async (planId: unknown): Promise<{ hit: SinkHit; submit: ReadableSpan; claim: ReadableSpan; dispatch: ReadableSpan; execute: ReadableSpan; call: ReadableSpan }> => {
      const hit = await hitOf(planId);
      await waitFor(() => ofPlan(planId).some((s) => s.name === 'karya.execute'), 10_000, `the execution span of plan ${String(planId)}`);
      const byName = (name: string) => {
        const found = ofPlan(planId).filter((s) => s.name === name);
        expect(found).toHaveLength(1);
        return found[0];
      };
      const execute = byName('karya.execute');
      const calls = spans().filter((s) => s.kind === SpanKind.CLIENT && parentOf(s) === execute.spanContext().spanId);
      expect(calls).toHaveLength(1);
      const submit = submitSpanOf(execute.spanContext().traceId);
      expect(submit).toBeDefined();
      return { hit, submit: submit!, claim: byName('karya.claim'), dispatch: byName('karya.dispatch'), execute, call: calls[0] };
    };

    it('runs one trace from POST /v1/plan through claim, dispatch, execution and the outbound call to the traceparent the target receives', async () => {
      const plan = await submit('/traced');
      const { hit, submit: root, claim, dispatch, execute, call } = await traceOf(plan.id);
      const traceId = root.spanContext().traceId;

      expect(root.kind).toBe(SpanKind.SERVER);
      expect(root.parentSpanContext).toBeUndefined();
      expect(root.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/v1/plan', 'http.response.status_code': 200 });
      expect(await storedTraceContext(plan.id)).toBe(`00-${traceId}-${root.spanContext().spanId}-01`);

      // submit → claim → dispatch → execution → outbound call, all in the submit's trace.
      const chain = [root, claim, dispatch, execute, call];
      for (const s of chain) expect(s.spanContext().traceId).toBe(traceId);
      for (let i = 1; i < chain.length; i++) expect(parentOf(chain[i])).toBe(chain[i - 1].spanContext().spanId);
      expect([claim.kind, dispatch.kind, execute.kind, call.kind]).toEqual([SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT]);
      expect(claim.attributes).toMatchObject({ 'karya.claim.kind': 'due', 'karya.task.id': hit.taskId, 'karya.task.attempt': 1 });
      expect(execute.attributes).toMatchObject({ 'karya.plan.id': plan.id, 'karya.task.id': hit.taskId, 'karya.task.attempt': 1 });

      expect(call.name).toBe('POST');
      expect(call.attributes).toMatchObject({
        'http.request.method': 'POST',
        'http.response.status_code': 200,
        'server.address': '127.0.0.1',
        'server.port': sink.port,
      });
      expect(call.attributes['url.full']).toBe(`http://${sink.baseUrl}/traced`);

      // The target can join the trace: its traceparent names the outbound call's span as the parent, and
      // replaced the one the action set itself.
      expect(hit.headers.traceparent).toBe(`00-${traceId}-${call.spanContext().spanId}-01`);

      // No span shows what the call sent: header values, credentials in the URL, the body.
      const shown = JSON.stringify(spans().map((s) => [s.name, s.attributes, s.events]));
      for (const secret of [HEADER_SECRET, QUERY_SECRET, SAS_SECRET, BODY_TEXT]) expect(shown).not.toContain(secret);
    });

    it('joins a REST hook to the trace of the execution that fired it', async () => {
      const hook = { trigger: 'ON_COMPLETION', max_retry: 0, action: { type: T.Rest, base_url: `${sink.baseUrl}/hook`, method: 'POST' } };
      const plan = await submit('/hooked', undefined, { hooks: [hook] });
      const { execute } = await traceOf(plan.id);
      await waitFor(() => spans().some((s) => s.name === 'karya.hook' && s.attributes['karya.plan.id'] === plan.id), 10_000, 'the hook span');
      const hookSpan = spans().find((s) => s.name === 'karya.hook' && s.attributes['karya.plan.id'] === plan.id)!;
      expect(hookSpan.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(hookSpan)).toBe(execute.spanContext().spanId);
      expect(hookSpan.attributes).toMatchObject({ 'karya.hook.trigger': 'ON_COMPLETION', 'karya.hook.index': 0, 'karya.hook.attempt': 1 });
      const call = spans().find((s) => s.kind === SpanKind.CLIENT && parentOf(s) === hookSpan.spanContext().spanId);
      expect(call).toBeDefined();
      const hit = sink.hits.find((h) => h.path === '/hook' && h.planId === plan.id)!;
      expect(hit.headers.traceparent).toBe(`00-${execute.spanContext().traceId}-${call!.spanContext().spanId}-01`);
    });

    it("continues a caller's traceparent", async () => {
      const plan = await submit('/continued', CALLER_TRACEPARENT);
      const { hit, submit: root } = await traceOf(plan.id);
      expect(root.spanContext().traceId).toBe(CALLER_TRACE_ID);
      expect(root.parentSpanContext).toMatchObject({ traceId: CALLER_TRACE_ID, spanId: CALLER_SPAN_ID, isRemote: true });
      expect(await storedTraceContext(plan.id)).toBe(`00-${CALLER_TRACE_ID}-${root.spanContext().spanId}-01`);
      expect(String(hit.headers.traceparent)).toMatch(new RegExp(`^00-${CALLER_TRACE_ID}-[0-9a-f]{16}-01$`));
    });

    it.each(['garbage', `00-${'0'.repeat(32)}-${CALLER_SPAN_ID}-01`, `zz-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01`])(
      'ignores an invalid traceparent %j: 200 and a new trace',
      async (bad) => {
        const plan = await submit('/garbage', bad);
        const { hit, submit: root } = await traceOf(plan.id);
        expect(root.parentSpanContext).toBeUndefined();
        expect(root.spanContext().traceId).not.toBe(CALLER_TRACE_ID);
        expect(hit.headers.traceparent).toMatch(new RegExp(`^00-${root.spanContext().traceId}-`));
      },
    );
  });
});
