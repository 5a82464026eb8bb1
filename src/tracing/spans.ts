import { HttpException } from '@nestjs/common';
import { Attributes, context, Context, isSpanContextValid, ROOT_CONTEXT, Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import { recordableUrl } from '../actions/redact';
import { isDatabaseUnavailable } from '../connectors/repo/transient';
import type { ExecutorMessage } from '../pipeline/executor-message';
import { contextOfHeaders, contextOfTraceparent, karyaTracer, traceparentOf, tracingOn } from './tracing';

/**
 * The spans Karya makes, one trace per submitted plan:
 *
 *   POST /v1/plan (SERVER) → karya.claim → karya.dispatch (PRODUCER) → karya.execute (CONSUMER) → POST (CLIENT)
 *                                                                      ↳ karya.hook (CONSUMER) → POST (CLIENT)
 *
 * The submit stores its traceparent in plans.trace_context; every claim of the plan's tasks continues it,
 * the dispatch's traceparent travels in the queue message, and the outbound REST call sends its own as a
 * `traceparent` header. Each function is a no-op (no span, no string) while tracing is off, and so are they
 * for work whose plan has no trace context (submitted while tracing was off).
 *
 * Attributes never hold header values, bodies or error texts (they quote response bodies); a URL is
 * recorded without its query string (tokens such as an Azure SAS `sig` have no recognisable name) and with
 * the call's credentials redacted.
 */

const PLAN_ID = 'karya.plan.id';
const TASK_ID = 'karya.task.id';
const ATTEMPT = 'karya.task.attempt';

/** The task a span is about; fields of an untrusted message are taken only when of the right type. */
function taskAttributes(t: { planId?: unknown; taskId?: unknown; attempt?: unknown }): Attributes {
  const a: Attributes = {};
  if (typeof t.planId === 'string') a[PLAN_ID] = t.planId;
  if (typeof t.taskId === 'string') a[TASK_ID] = t.taskId;
  if (typeof t.attempt === 'number') a[ATTEMPT] = t.attempt;
  return a;
}

/** Marks `span` failed with the error's class only: messages quote response bodies and failure texts. */
function failed(span: Span, error: unknown): void {
  span.setAttribute(ATTR_ERROR_TYPE, error instanceof Error ? error.name : typeof error);
  span.setStatus({ code: SpanStatusCode.ERROR });
}

/** The HTTP status the plain-text exception filter answers `error` with. */
function statusOf(error: unknown): number {
  if (isDatabaseUnavailable(error)) return 503;
  return error instanceof HttpException ? error.getStatus() : 500;
}

// ---------------------------------------------------------------- submit (server)

/** What traceSubmit reads of the response: whether another answer (the request deadline's 503) went out first. */
export interface AnsweredResponse {
  headersSent: boolean;
  statusCode: number;
}

/**
 * Runs the submission `fn` inside the `POST /v1/plan` span, continuing the caller's `traceparent` (and
 * `tracestate`) when it sent a valid one; an invalid one is ignored and the span starts a new trace. While
 * `fn` runs the span is active, so activeTraceparent() gives what the plan stores. The span's status is the
 * one `res` was answered with when an answer went out before `fn` ended (RequestDeadlineInterceptor's 503),
 * else the one `fn`'s outcome gets.
 */
export async function traceSubmit<T>(headers: Record<string, string | string[] | undefined>, fn: () => Promise<T>, res?: AnsweredResponse): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = contextOfHeaders(headers);
  const span = karyaTracer().startSpan(
    'POST /v1/plan',
    { kind: SpanKind.SERVER, attributes: { [ATTR_HTTP_REQUEST_METHOD]: 'POST', [ATTR_HTTP_ROUTE]: '/v1/plan', [ATTR_URL_PATH]: '/v1/plan' } },
    parent,
  );
  const answered = (status: number): void => {
    const sent = res?.headersSent ? res.statusCode : status;
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, sent);
    // A 4xx is the caller's mistake, not the server's (HTTP semantic conventions): only a 5xx marks the span.
    if (sent >= 500) {
      span.setAttribute(ATTR_ERROR_TYPE, String(sent));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  };
  try {
    const result = await context.with(trace.setSpan(parent, span), fn);
    answered(200);
    return result;
  } catch (e) {
    answered(statusOf(e));
    throw e;
  } finally {
    span.end();
  }
}

// ---------------------------------------------------------------- claim and dispatch (scheduler)

/** What the scheduler's claims carry for tracing (ClaimedTask). */
export interface TracedClaim {
  kind: string;
  planId: string;
  taskId: string;
  attempt: number;
  dueAt: number;
  /** The plan's stored traceparent (plans.trace_context). */
  traceContext?: string | null;
}

/** The claim span of each claimed task, while the scheduler holds it, for its dispatch spans. */
const claimContexts = new WeakMap<TracedClaim, Context>();

/**
 * One `karya.claim` span per claimed task whose plan has a trace context, from `startedAt` (the claim
 * statement's start) to now, as a child of the submit span. Every occurrence of a recurring or cron plan
 * joins the plan's trace this way (the plan stores one traceparent), so such a trace grows for as long as
 * the plan runs; a backend that closes traces after a while shows later occurrences as orphans of it.
 */
export function traceClaims(tasks: readonly TracedClaim[], startedAt: number): void {
  if (!tracingOn() || tasks.length === 0) return;
  for (const t of tasks) {
    const parent = contextOfTraceparent(t.traceContext);
    if (!parent) continue;
    const span = karyaTracer().startSpan(
      'karya.claim',
      {
        kind: SpanKind.INTERNAL,
        startTime: startedAt,
        attributes: { ...taskAttributes(t), 'karya.claim.kind': t.kind, 'karya.task.due_at': new Date(t.dueAt).toISOString() },
      },
      parent,
    );
    span.end();
    claimContexts.set(t, trace.setSpan(ROOT_CONTEXT, span));
  }
}

/**
 * Starts a `karya.dispatch` span for each of `tasks` that has a claim span, and puts its traceparent into the
 * task's message (`messages[i]` is the message of `tasks[i]`). Undefined when there is none to trace.
 */
export function startDispatchSpans(tasks: readonly TracedClaim[], messages: ExecutorMessage[]): Span[] | undefined {
  if (!tracingOn()) return undefined;
  let spans: Span[] | undefined;
  tasks.forEach((t, i) => {
    const parent = claimContexts.get(t);
    if (!parent) return;
    const span = karyaTracer().startSpan(
      'karya.dispatch',
      { kind: SpanKind.PRODUCER, attributes: { ...taskAttributes(t), 'messaging.operation.type': 'send' } },
      parent,
    );
    const traceparent = traceparentOf(span);
    if (traceparent) messages[i].traceparent = traceparent;
    (spans ??= []).push(span);
  });
  return spans;
}

/** Ends dispatch spans once the publish is confirmed, or failed with `error` (the scheduler tries again later). */
export function endDispatchSpans(spans: Span[] | undefined, error?: unknown): void {
  if (!spans) return;
  for (const span of spans) {
    if (error !== undefined) failed(span, error);
    span.end();
  }
}

// ---------------------------------------------------------------- execution (executor)

/**
 * Runs the handling of one task message inside a `karya.execute` span continuing the message's
 * `traceparent`; without a valid one (tracing off at the scheduler, an older scheduler, garbage) `fn` just
 * runs. While `fn` runs the span is active, so the action's outbound call is its child.
 */
export async function traceExecution<T>(raw: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = contextOfTraceparent(raw.traceparent);
  if (!parent) return fn();
  return consume('karya.execute', parent, taskAttributes(raw), fn);
}

/** Runs `fn` inside a CONSUMER span, active while it runs; an error marks the span and is thrown on. */
async function consume<T>(name: string, parent: Context, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  const span = karyaTracer().startSpan(name, { kind: SpanKind.CONSUMER, attributes: { ...attributes, 'messaging.operation.type': 'process' } }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), fn);
  } catch (e) {
    failed(span, e);
    throw e;
  } finally {
    span.end();
  }
}

/**
 * Runs one hook message inside a `karya.hook` span continuing its `traceparent` (the execution that fired
 * it), so a REST hook's call, and its receiver, join the plan's trace too; without a valid one `fn` just runs.
 */
export async function traceHook<T>(raw: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  if (!tracingOn()) return fn();
  const parent = contextOfTraceparent(raw.traceparent);
  if (!parent) return fn();
  const attributes = taskAttributes({ planId: raw.planId, taskId: raw.taskId, attempt: raw.taskAttempt });
  if (typeof raw.trigger === 'string') attributes['karya.hook.trigger'] = raw.trigger;
  if (typeof raw.hookIndex === 'number') attributes['karya.hook.index'] = raw.hookIndex;
  if (typeof raw.attempt === 'number') attributes['karya.hook.attempt'] = raw.attempt;
  return consume('karya.hook', parent, attributes, fn);
}

// ---------------------------------------------------------------- outbound REST call (client)

/** The outbound call's span and the traceparent header that names it as the receiver's parent. */
export interface ClientSpan {
  span: Span;
  traceparent: string;
}

/**
 * A CLIENT span for an outbound HTTP call, when tracing is on and a traced span is active (a task execution).
 * `url` is recorded as scheme, host, port and path (recordableUrl: no userinfo, query or fragment, a
 * webhook's secret path segment elided) with `secrets` redacted; headers and bodies are never recorded.
 */
export function startClientSpan(method: string, url: string, secrets: readonly string[]): ClientSpan | undefined {
  if (!tracingOn()) return undefined;
  const parent = context.active();
  const active = trace.getSpanContext(parent);
  if (!active || !isSpanContextValid(active)) return undefined;
  const attributes: Attributes = { [ATTR_HTTP_REQUEST_METHOD]: method, [ATTR_URL_FULL]: recordableUrl(url, secrets) };
  try {
    const u = new URL(url);
    attributes[ATTR_SERVER_ADDRESS] = u.hostname;
    attributes[ATTR_SERVER_PORT] = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
  } catch {
    // An unparsable URL fails the call itself; the span still says what was attempted.
  }
  const span = karyaTracer().startSpan(method, { kind: SpanKind.CLIENT, attributes }, parent);
  const traceparent = traceparentOf(span);
  if (!traceparent) {
    span.end();
    return undefined;
  }
  return { span, traceparent };
}

/**
 * Ends an outbound call's span: `status` is the response's status code (undefined when none arrived),
 * `errorType` a short reason when the call failed without one. Only a failure marks the span, never with
 * its text.
 */
export function endClientSpan(client: ClientSpan | undefined, status: number | undefined, errorType?: string): void {
  if (!client) return;
  const { span } = client;
  if (status !== undefined) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  const error = status !== undefined && status >= 400 ? String(status) : errorType;
  if (error !== undefined) {
    span.setAttribute(ATTR_ERROR_TYPE, error);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/** `headers` with `traceparent` (the receiver's parent) instead of any the action set itself, and no stale tracestate. */
export function withTraceparent(headers: Record<string, string>, client: ClientSpan): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower !== 'traceparent' && lower !== 'tracestate') out[name] = value;
  }
  out.traceparent = client.traceparent;
  return out;
}
