import { Agent, buildConnector, request, type Dispatcher } from 'undici';
import { ConnectorType } from '../../config/karya-config';
import { findEgressDenied } from '../../egress/egress-error';
import { egressLookup, EgressPolicy } from '../../egress/egress-policy';
import { JsonObject, JsonValue } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE, BODY_TYPE, METHODS, Method } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';
import { errorText, MAX_TIMER_MS, pause, socketBackInPool, untilAborted } from '../call-utils';
import { headerSecrets, redactSecrets, urlSecrets } from '../redact';
import { ClientSpan, endClientSpan, startClientSpan, withTraceparent } from '../../tracing/spans';

/** executor.yml `connectors: [{ type: restapi, configs: {...} }]`. All optional. */
export interface RestApiPluginConfigs {
  /** ms an idle pooled connection is kept open (default 3000). 0 disables keep-alive. */
  keepAliveTime?: number;
  /** ms allowed for establishing one TCP (+TLS) connection (default 1000). 0 = bounded only by the action's timeout. */
  connectionTimeout?: number;
  /** Total tries when the connection cannot be established, >= 1 (default 3). See `isConnectionFailure`. */
  connectionAttempts?: number;
}

/** The original's sample executor.yml values. */
export const RESTAPI_DEFAULTS = { keepAliveTime: 3000, connectionTimeout: 1000, connectionAttempts: 3 } as const;

/** RestApiRequest defaults (original-karya.md §4): used when the stored action JSON leaves a field out. */
const DEFAULT_TIMEOUT_MS = 2000;
const DEFAULT_HEADERS: Readonly<Record<string, string>> = { 'content-type': 'application/json' };
/** The response-status callback of an untraced call: only a span wants the status before the result. */
const ignoreStatus = (): void => undefined;

/**
 * Sockets per origin. Bounds what one executor can open against a single target (its executor.concurrency,
 * 64 by default, is the most it runs at once anyway), so a burst of due tasks for one host cannot exhaust
 * the target's accept queue, our file descriptors or ephemeral ports. Requests beyond the cap queue inside
 * undici for a free socket; that wait counts against the action's timeout.
 */
export const MAX_CONNECTIONS_PER_ORIGIN = 64;

/** Pause between two connection attempts: long enough to ride out a listener restart, short next to `timeout`. */
export const CONNECT_RETRY_PAUSE_MS = 100;

/**
 * A non-2xx response body is quoted in the failure text, which ends up in the error log (a DB row and the
 * API's error-log listing). It is cut at this many characters, with a note saying so, and we stop reading
 * (and drop that connection) rather than download an arbitrarily large error page.
 */
export const MAX_ERROR_BODY_CHARS = 10_000;

/**
 * A 2xx body is read and discarded so its socket goes back to the pool. Past this many bytes it is cheaper to
 * close that one socket than to keep downloading; the call still counts as a success.
 */
const MAX_DISCARDED_BODY_BYTES = 1024 * 1024;

/**
 * Errors that mean "no response has started and the server did not answer this request". Only these are
 * retried, and only while `request()` has not produced response headers:
 * - nothing was sent: refused, DNS failure, unreachable, connect timeout;
 * - the server closed or reset the connection before a single response byte: an accept-and-drop listener,
 *   or (the common case) a pooled keep-alive socket the server closed while our request was being written.
 */
const CONNECTION_FAILURE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ECONNRESET',
  'EPIPE',
]);
/** undici's SocketError messages for a socket closed under a request that has no response yet. */
const CLOSED_BEFORE_RESPONSE = new Set(['other side closed', 'closed', 'destroyed']);

type Body = { kind: 'json'; text: string } | { kind: 'empty' };

interface RestCall {
  url: string;
  method: Method;
  headers: Record<string, string>;
  body: Body;
  timeout: number;
  /** What the call sends that its failure text must not show (credential headers, URL userinfo and tokens). */
  secrets: string[];
}

/** Thrown inside run() for a malformed action; becomes a failure result, never escapes. */
class InvalidActionError extends Error {}

/** The abort reason of the per-action deadline, so it is told apart from every other error. */
class DeadlineError extends Error {}

/**
 * Runs `karya.core.entities.Action.RestApiRequest` actions with undici.
 *
 * Results (semantics.md "Actions"):
 * - any 2xx → `{ ok: true }`;
 * - another status → `REST call failed --- [<status> | <url>] | <response body>`;
 * - no response (network error, timeout, invalid request) → `REST INVOCATION FAILED --- error : <message>`;
 * - a target the egress policy refuses → `Egress denied --- <host> resolved to <ip> (<range>)`, permanent
 *   (never retried: the same policy refuses every retry).
 *
 * Every call carries `Idempotency-Key: <taskId>`, `X-Karya-Plan-Id`, `X-Karya-Task-Id` and `X-Karya-Attempt`
 * (semantics.md "Delivery guarantees"); these win over same-named headers in the action. When the task is
 * traced (README "Traces") the call is a CLIENT span and carries its `traceparent`, which wins over the
 * action's own.
 */
export class RestApiPlugin extends ActionPlugin {
  readonly actionType = ACTION_TYPE.RestApi;
  readonly connector: ConnectorType = 'restapi';

  private readonly agent: Agent;
  private readonly connectionAttempts: number;
  private closing: Promise<void> | undefined;

  /**
   * `egress` is checked on the address each connection actually opens (see src/egress). ActionRegistry
   * passes executor.yml's; the default is the embedded one (private networks open, link-local etc. not).
   */
  constructor(
    configs: RestApiPluginConfigs = {},
    private readonly egress: EgressPolicy = new EgressPolicy({ allowPrivateNetworks: true, allow: [] }),
  ) {
    super();
    const keepAliveTime = configValue(configs.keepAliveTime, 'keepAliveTime', RESTAPI_DEFAULTS.keepAliveTime, 0);
    const connectionTimeout = configValue(configs.connectionTimeout, 'connectionTimeout', RESTAPI_DEFAULTS.connectionTimeout, 0);
    this.connectionAttempts = configValue(configs.connectionAttempts, 'connectionAttempts', RESTAPI_DEFAULTS.connectionAttempts, 1);

    const keepAlive = keepAliveTime > 0;
    // One Agent for the whole plugin: it keeps a separate pool (undici Pool) per origin
    // (scheme://host:port), so targets never share or starve each other's sockets.
    this.agent = new Agent({
      connections: MAX_CONNECTIONS_PER_ORIGIN,
      // pipelining 0 is undici's way to say "no keep-alive" (each request sends `connection: close`).
      pipelining: keepAlive ? 1 : 0,
      ...(keepAlive
        ? {
            // Idle time when the server sends no `Keep-Alive: timeout=N` hint …
            keepAliveTimeout: keepAliveTime,
            // … and the most a hint may stretch it to, so keepAliveTime is a true upper bound.
            keepAliveMaxTimeout: keepAliveTime,
            // undici trusts a server hint minus this margin (default 2 s, which disables reuse altogether for
            // servers that advertise timeout=2). 1 s suffices: losing the close race costs one retried try.
            keepAliveTimeoutThreshold: 1000,
          }
        : {}),
      connect: egressConnector(egress, connectionTimeout),
      // Per-phase timeouts off (their 300 s defaults would cut long actions short): one deadline of `timeout`
      // ms covers queueing for a socket, connecting, sending, the headers and the whole body (run()).
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  async run(action: JsonObject, context: ActionContext): Promise<ActionResult> {
    try {
      if (this.closing) return invocationFailed('the restapi connector is closed (executor shutting down)');
      let call: RestCall;
      try {
        call = parseAction(action, context);
      } catch (err) {
        return invocationFailed(`invalid RestApiRequest: ${errorText(err)}`);
      }
      const client = startClientSpan(call.method, call.url, call.secrets);
      if (client) call.headers = withTraceparent(call.headers, client);
      // Untraced (tracing off, the usual case), the call goes straight out: no span bookkeeping frame.
      const result = client ? await this.traced(call, client) : await this.send(call, ignoreStatus);
      // Targets echo requests (a debug 500 dumping its headers) and errors quote the URL: the stored text must
      // not hand the call's credentials to whoever reads the error log.
      return result.ok ? result : { ...result, error: redactSecrets(result.error, call.secrets) };
    } catch (err) {
      // Unreachable by design; the contract is that run() never throws.
      return invocationFailed(errorText(err));
    }
  }

  /** Closes every pooled socket once in-flight requests finish (each bounded by its own timeout). */
  override close(): Promise<void> {
    // Memoized: undici 7 rejects a second Agent.close() with ClientDestroyedError.
    this.closing ??= this.agent.close();
    return this.closing;
  }

  /** Runs the call inside `client`, its span, ended here with the response's status. */
  private async traced(call: RestCall, client: ClientSpan): Promise<ActionResult> {
    let status: number | undefined;
    let result: ActionResult | undefined;
    try {
      result = await this.send(call, (code) => (status = code));
      return result;
    } finally {
      endClientSpan(client, status, clientErrorType(result, status));
    }
  }

  private async send(call: RestCall, responded: (status: number) => void): Promise<ActionResult> {
    const { url, method, timeout } = call;
    const what = `${method} ${url}`;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DeadlineError(`timed out after ${timeout} ms`)),
      Math.min(timeout, MAX_TIMER_MS),
    );
    const { signal } = deadline;
    const timedOut = (phase: string) => invocationFailed(`timed out after ${timeout} ms ${phase} (${what})`);

    try {
      // A literal IP host never goes through the connector's DNS lookup: judge it before anything is queued.
      const literalDenied = this.egress.checkUrl(url);
      if (literalDenied) return egressDenied(literalDenied);

      // --- 1. Get response headers, retrying only failures that prove the server did not get the request.
      //
      // Why no retry once a request may have reached the server: the scheduler already gives at-least-once
      // delivery (a failed attempt is retried by it with backoff, X-Karya-Attempt incremented, and recorded in
      // the error log). Re-sending here a request the server may have processed would add a duplicate the
      // error log never shows. So a response of any status, or a failure while reading a response body,
      // ends the attempt. What is retried is "the connection could not be established or was dropped before
      // any response" (see CONNECTION_FAILURE_CODES): nothing was sent, or the server dropped it unanswered.
      // Caveat: a server that reads the whole request and then closes without a single response byte looks
      // exactly like one that dropped it unread, so that case is retried too (same Idempotency-Key and
      // X-Karya-Attempt on every try, so the receiver can deduplicate).
      let response: Dispatcher.ResponseData;
      let lastConnectError: unknown;
      for (let attempt = 1; ; attempt++) {
        try {
          response = await untilAborted(
            request(url, {
              dispatcher: this.agent,
              method,
              headers: call.headers,
              body: call.body.kind === 'json' ? call.body.text : null,
              signal,
            }),
            signal,
          );
          break;
        } catch (err) {
          const denied = findEgressDenied(err);
          if (denied) return egressDenied(denied);
          if (!signal.aborted) {
            const triesNote = attempt > 1 ? `; ${attempt} connection attempts` : '';
            if (!isConnectionFailure(err) || attempt >= this.connectionAttempts) {
              return invocationFailed(`${errorText(err)} (${what}${triesNote})`);
            }
            lastConnectError = err;
            await pause(CONNECT_RETRY_PAUSE_MS, signal);
          }
          if (signal.aborted) {
            return timedOut(
              lastConnectError === undefined
                ? 'before the response headers arrived'
                : `after ${attempt - (err === lastConnectError ? 0 : 1)} failed connection attempt(s), last: ${errorText(lastConnectError)}`,
            );
          }
        }
      }

      // --- 2. A response arrived: never retried from here on.
      const { statusCode, body } = response;
      responded(statusCode);
      if (statusCode >= 200 && statusCode < 300) {
        try {
          await discard(body);
        } catch (err) {
          if (signal.aborted) return timedOut(`while reading the ${statusCode} response body`);
          return invocationFailed(`${statusCode} response body interrupted: ${errorText(err)} (${what})`);
        }
        await socketBackInPool();
        return { ok: true };
      }

      const text = await readCapped(body, MAX_ERROR_BODY_CHARS, () =>
        signal.aborted ? `timed out after ${timeout} ms` : undefined,
      );
      await socketBackInPool();
      return { ok: false, error: `REST call failed --- [${statusCode} | ${url}] | ${text}` };
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * undici's connector with the egress policy's DNS lookup. The lookup is told the port (host:port allow
 * entries need it, and net's lookup only gets the host name), so there is one connector per destination
 * port: a handful in practice, each keeping its own TLS session cache as the single default one would.
 * Literal IP hosts skip the lookup inside net.connect, so they are judged here too, before any socket.
 */
function egressConnector(egress: EgressPolicy, connectionTimeout: number): buildConnector.connector {
  const byPort = new Map<number, buildConnector.connector>();
  return (options, callback) => {
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    const denied = egress.checkHost(options.hostname, port);
    if (denied) return callback(denied, null);
    let connect = byPort.get(port);
    if (!connect) {
      // timeout: undici's connect timeout, 0 = none of its own; the per-action deadline still applies.
      connect = buildConnector({ timeout: connectionTimeout, lookup: egressLookup(egress, port) });
      byPort.set(port, connect);
    }
    connect(options, callback);
  };
}

// ---------------------------------------------------------------- action JSON

function parseAction(action: JsonObject, context: ActionContext): RestCall {
  if (typeof action !== 'object' || action === null || Array.isArray(action)) {
    throw new InvalidActionError('the action is not a JSON object');
  }
  const baseUrl = action['base_url'];
  if (typeof baseUrl !== 'string' || baseUrl.length === 0) throw new InvalidActionError('base_url is required');

  const protocol = optionalString(action['protocol'], 'protocol', 'HTTP').toUpperCase();
  if (protocol !== 'HTTP' && protocol !== 'HTTPS') {
    throw new InvalidActionError(`protocol must be HTTP or HTTPS, got ${JSON.stringify(action['protocol'])}`);
  }
  const methodText = optionalString(action['method'], 'method', 'GET').toUpperCase();
  const method = METHODS.find((m) => m === methodText);
  if (!method) throw new InvalidActionError(`method must be one of ${METHODS.join(', ')}, got ${JSON.stringify(action['method'])}`);

  const body = parseBody(action['body']);
  const headers = buildHeaders(action['headers'], body, context);

  const rawTimeout = action['timeout'];
  const timeout = rawTimeout === undefined || rawTimeout === null ? DEFAULT_TIMEOUT_MS : rawTimeout;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0) {
    throw new InvalidActionError(`timeout must be a positive number of ms, got ${JSON.stringify(rawTimeout)}`);
  }

  const url = `${protocol.toLowerCase()}://${baseUrl}`;
  return { url, method, headers, body, timeout, secrets: [...headerSecrets(headers), ...urlSecrets(url)] };
}

function parseBody(raw: JsonValue | undefined): Body {
  if (raw === undefined || raw === null) return { kind: 'empty' };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidActionError('body must be a JsonBody or EmptyBody object');
  if (raw['type'] === BODY_TYPE.Empty) return { kind: 'empty' };
  if (raw['type'] === BODY_TYPE.Json) {
    const text = raw['json_string'];
    if (typeof text !== 'string') throw new InvalidActionError('body.json_string must be a string');
    return { kind: 'json', text };
  }
  throw new InvalidActionError(`body.type must be ${BODY_TYPE.Json} or ${BODY_TYPE.Empty}, got ${JSON.stringify(raw['type'])}`);
}

/** Header names we set from the context; an action's own header of the same name (any case) is dropped. */
const KARYA_HEADERS = ['Idempotency-Key', 'X-Karya-Plan-Id', 'X-Karya-Task-Id', 'X-Karya-Attempt', 'X-Karya-Trigger', 'X-Karya-Task-Status'];
const KARYA_HEADERS_LOWER = new Set(KARYA_HEADERS.map((h) => h.toLowerCase()));

function buildHeaders(raw: JsonValue | undefined, body: Body, context: ActionContext): Record<string, string> {
  const given = raw === undefined || raw === null ? DEFAULT_HEADERS : raw;
  if (typeof given !== 'object' || Array.isArray(given)) throw new InvalidActionError('headers must be an object of strings');

  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(given)) {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new InvalidActionError(`header ${JSON.stringify(name)} must be a string`);
    }
    if (!KARYA_HEADERS_LOWER.has(name.toLowerCase())) headers[name] = String(value);
  }
  if (body.kind === 'json' && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  headers['Idempotency-Key'] = context.hook?.key ?? context.taskId;
  headers['X-Karya-Plan-Id'] = context.planId;
  headers['X-Karya-Task-Id'] = context.taskId;
  headers['X-Karya-Attempt'] = String(context.attempt);
  // A hook target is told what happened (the original sent it nothing).
  if (context.hook) {
    headers['X-Karya-Trigger'] = context.hook.trigger;
    headers['X-Karya-Task-Status'] = context.hook.taskStatus;
  }
  return headers;
}

function optionalString(value: JsonValue | undefined, field: string, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') throw new InvalidActionError(`${field} must be a string`);
  return value;
}

function configValue(value: unknown, key: string, fallback: number, min: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`restapi connector: configs.${key} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

// ---------------------------------------------------------------- responses and errors

/** Reads a 2xx body to the end so the socket is reused; past MAX_DISCARDED_BODY_BYTES closes the socket instead. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  let bytes = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MAX_DISCARDED_BODY_BYTES) break; // leaving the loop destroys the body and its socket
  }
}

/**
 * The body as UTF-8 text, at most `maxChars` characters plus a truncation note. A body that fails part-way
 * (reset, or the deadline via `abortNote`) keeps what arrived, with a note: the status alone already makes
 * the call a failure, so the partial text is still the most useful record.
 */
async function readCapped(
  body: Dispatcher.ResponseData['body'],
  maxChars: number,
  abortNote: () => string | undefined,
): Promise<string> {
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let note = '';
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      text += decoder.decode(chunk, { stream: true });
      if (text.length > maxChars) {
        note = ` … [truncated: first ${maxChars} characters shown]`;
        break; // destroys the body: no point downloading the rest of a huge error page
      }
    }
    if (!note) text += decoder.decode();
  } catch (err) {
    note = ` … [response body incomplete: ${abortNote() ?? errorText(err)}]`;
  }
  if (text.length > maxChars) {
    text = text.slice(0, maxChars);
    // Do not end on half a surrogate pair.
    if (/[\uD800-\uDBFF]$/.test(text)) text = text.slice(0, -1);
  }
  return text + note;
}

/** The span's low-cardinality `error.type` of a failed call (its text may quote the body: never recorded). */
function clientErrorType(result: ActionResult | undefined, status: number | undefined): string | undefined {
  if (result === undefined) return 'exception';
  if (result.ok) return undefined;
  if (result.permanent) return 'egress_denied';
  return status === undefined ? 'no_response' : 'response_incomplete';
}

/** The policy's text as is (the error log and the dead-letter reason), marked permanent: no retry can pass. */
function egressDenied(error: Error): ActionResult {
  return { ok: false, error: error.message, permanent: true };
}

function invocationFailed(message: string): ActionResult {
  return { ok: false, error: `REST INVOCATION FAILED --- error : ${message}` };
}

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  errors?: unknown;
}

function asErrorLike(err: unknown): ErrorLike {
  return typeof err === 'object' && err !== null ? (err as ErrorLike) : {};
}

/** True when the error proves no response started (see CONNECTION_FAILURE_CODES); checks AggregateError parts. */
function isConnectionFailure(err: unknown): boolean {
  const e = asErrorLike(err);
  if (typeof e.code === 'string') {
    if (CONNECTION_FAILURE_CODES.has(e.code)) return true;
    if (e.code === 'UND_ERR_SOCKET') return typeof e.message === 'string' && CLOSED_BEFORE_RESPONSE.has(e.message);
  }
  // Happy-eyeballs connects (several addresses) fail with an AggregateError of per-address errors.
  return Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((inner) => isConnectionFailure(inner));
}

