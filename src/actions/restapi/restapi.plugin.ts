import { Agent, buildConnector, type Dispatcher } from 'undici';
import { TextDecoder } from 'node:util';
import { ConnectorType } from '../../config/karya-config';
import { findEgressDenied } from '../../egress/egress-error';
import { egressLookup, EgressPolicy } from '../../egress/egress-policy';
import { JsonObject, JsonValue } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE, BODY_TYPE, METHODS, Method } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';
import { errorText, MAX_TIMER_MS, socketBackInPool } from '../call-utils';
import { headerSecrets, redactSecrets, urlSecrets } from '../redact';
import { ClientSpan, endClientSpan, startClientSpan, withTraceparent } from '../../tracing/spans';
import { tracingOn } from '../../tracing/tracing';

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
  /**
   * What the call sends that its failure text must not show (credential headers, URL userinfo and tokens).
   * Worked out only when needed (a failure, a traced call): a successful untraced call never reads it.
   */
  secrets: () => string[];
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
  private readonly targets = new Map<string, Target>();

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
      const client = tracingOn() ? startClientSpan(call.method, call.url, call.secrets()) : undefined;
      if (client) call.headers = withTraceparent(call.headers, client);
      // Untraced (tracing off, the usual case), the call goes straight out: no span bookkeeping frame.
      const result = client ? await this.traced(call, client) : await this.send(call, ignoreStatus);
      // Targets echo requests (a debug 500 dumping its headers) and errors quote the URL: the stored text must
      // not hand the call's credentials to whoever reads the error log.
      return result.ok ? result : { ...result, error: redactSecrets(result.error, call.secrets()) };
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
    const target = this.target(url);
    // A URL that does not parse fails as undici's request(url) failed on it.
    if (target instanceof Error) return invocationFailed(`${errorText(target)} (${what})`);
    // A literal IP host never goes through the connector's DNS lookup: judged (once per URL) before anything is queued.
    if (target.denied) return egressDenied(target.denied);
    const deadline = new Deadline(timeout);
    const timedOut = (phase: string) => invocationFailed(`timed out after ${timeout} ms ${phase} (${what})`);

    try {
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
      let response: Response;
      let lastConnectError: unknown;
      for (let attempt = 1; ; attempt++) {
        const outcome = await this.exchange(target, call, deadline);
        if (outcome.status !== undefined) {
          response = outcome;
          break;
        }
        const err = outcome.error;
        const denied = findEgressDenied(err);
        if (denied) return egressDenied(denied);
        if (!deadline.expired) {
          const triesNote = attempt > 1 ? `; ${attempt} connection attempts` : '';
          if (!isConnectionFailure(err) || attempt >= this.connectionAttempts) {
            return invocationFailed(`${errorText(err)} (${what}${triesNote})`);
          }
          lastConnectError = err;
          await deadline.pause(CONNECT_RETRY_PAUSE_MS);
        }
        if (deadline.expired) {
          return timedOut(
            lastConnectError === undefined
              ? 'before the response headers arrived'
              : `after ${attempt - (err === lastConnectError ? 0 : 1)} failed connection attempt(s), last: ${errorText(lastConnectError)}`,
          );
        }
      }

      // --- 2. A response arrived (its body read or discarded by the exchange): never retried from here on.
      const { status, bodyError } = response;
      responded(status);
      if (status >= 200 && status < 300) {
        if (bodyError !== undefined) {
          if (deadline.expired) return timedOut(`while reading the ${status} response body`);
          return invocationFailed(`${status} response body interrupted: ${errorText(bodyError)} (${what})`);
        }
        await socketBackInPool();
        return { ok: true };
      }
      const text = response.text(() => (deadline.expired ? `timed out after ${timeout} ms` : undefined));
      await socketBackInPool();
      return { ok: false, error: `REST call failed --- [${status} | ${url}] | ${text}` };
    } finally {
      deadline.clear();
    }
  }

  /**
   * One HTTP exchange on the agent, as undici's request() makes it but with a handler of our own: the body
   * is discarded or captured as it arrives, without a response stream, an async iterator, an AbortSignal and
   * the listeners they need (in a burst these were ≈ a fifth of the executor's CPU per task).
   */
  private exchange(target: Target, call: RestCall, deadline: Deadline): Promise<Response | Failure> {
    return new Promise((settle) => {
      const exchange = new Exchange(settle, deadline);
      deadline.onExpire = () => exchange.expire();
      // A dispatch that throws (invalid headers, a closed agent) is reported to exchange.onError by undici.
      this.agent.dispatch(
        { origin: target.origin, path: target.path, method: call.method, headers: call.headers, body: call.body.kind === 'json' ? call.body.text : null },
        exchange,
      );
    });
  }

  /**
   * The origin, path and literal-IP egress verdict of a URL, as undici's request(url) and the policy's
   * checkUrl work them out, kept per URL string: a plan calls the same URL at every occurrence. Exact: the
   * same string always parses the same, and the policy does not change. Host names are not judged here but
   * on the address each new connection resolves to (egressConnector), so caching cannot let DNS rebinding
   * through. Bounded: emptied when full.
   */
  private target(url: string): Target | Error {
    const known = this.targets.get(url);
    if (known) return known;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    const target: Target = {
      origin: parsed.origin,
      path: parsed.search ? `${parsed.pathname}${parsed.search}` : parsed.pathname,
      denied: this.egress.checkUrl(url),
    };
    if (this.targets.size >= MAX_CACHED_TARGETS) this.targets.clear();
    this.targets.set(url, target);
    return target;
  }
}

/** URLs whose Target is kept (RestApiPlugin.target); a few hundred bytes each. */
const MAX_CACHED_TARGETS = 1000;

interface Target {
  origin: string;
  path: string;
  /** The egress refusal of a literal IP host, else undefined (names are judged at connect time). */
  denied: Error | undefined;
}

/** An exchange that got no (final) response: nothing is known to have reached the server's application. */
interface Failure {
  status: undefined;
  error: unknown;
}

/** An exchange that got a response, its body read to the end or cut short. */
interface Response {
  status: number;
  /** Why the body ended early (reset, the deadline), else undefined. A truncation we chose is no error. */
  bodyError: unknown;
  /** The captured body of a non-2xx response with its notes (see Exchange); `abortNote` names a deadline. */
  text(abortNote: () => string | undefined): string;
}

/**
 * The per-call deadline: one timer for the whole call (queueing for a socket, connecting, sending, the
 * headers and the whole body). Whatever waits when it fires, an exchange or the pause between connection
 * attempts, is told through `onExpire`: one at a time, since a call does one thing at a time.
 */
class Deadline {
  expired = false;
  onExpire: (() => void) | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly timeout: number) {
    this.timer = setTimeout(() => {
      this.expired = true;
      const tell = this.onExpire;
      this.onExpire = undefined;
      tell?.();
    }, Math.min(timeout, MAX_TIMER_MS));
  }

  /** The abort reason of an exchange cut by the deadline (made only then: an Error captures a stack). */
  error(): DeadlineError {
    return new DeadlineError(`timed out after ${this.timeout} ms`);
  }

  /** Resolves after `ms`, or as soon as the deadline passes. */
  pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.expired) return resolve();
      const timer = setTimeout(() => {
        this.onExpire = undefined;
        resolve();
      }, ms);
      this.onExpire = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  clear(): void {
    clearTimeout(this.timer);
    this.onExpire = undefined;
  }
}

/**
 * undici's handler of one request (the dispatch handler its own request() uses in 7.x, minus the response
 * stream). Settles once: with the error when no final response came, else when the body ended, failed or
 * was cut short. A 2xx body is counted and dropped (past MAX_DISCARDED_BODY_BYTES the socket is closed
 * instead: cheaper than downloading); another status's body is decoded up to MAX_ERROR_BODY_CHARS (then the
 * socket is closed: no point downloading the rest of a huge error page). A queued request the deadline cut
 * is aborted when it reaches a socket, so it is never sent late.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private abort: ((err?: Error) => void) | undefined;
  private reason: Error | undefined;
  private settled = false;
  private status: number | undefined;
  private bytes = 0;
  private decoder: TextDecoder | undefined;
  private captured = '';
  private note = '';

  constructor(
    private readonly settle: (outcome: Response | Failure) => void,
    private readonly deadline: Deadline,
  ) {}

  /** The deadline passed: abort what runs (or will, once it has a socket) and settle now. */
  expire(): void {
    if (this.settled) return;
    this.reason = this.deadline.error();
    const reason = this.reason;
    if (this.status === undefined) this.finish({ status: undefined, error: reason });
    else this.end(reason);
    this.abort?.(reason);
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.reason) return abort(this.reason);
    this.abort = abort;
  }

  onHeaders(statusCode: number): boolean {
    // 1xx informational: the final response follows on the same request.
    if (statusCode < 200 || this.settled) return true;
    this.status = statusCode;
    if (statusCode >= 300) this.decoder = new TextDecoder('utf-8');
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.settled) return true;
    if (this.decoder === undefined) {
      this.bytes += chunk.length;
      if (this.bytes > MAX_DISCARDED_BODY_BYTES) return this.cut(); // the call still counts as a success
      return true;
    }
    this.captured += this.decoder.decode(chunk, { stream: true });
    if (this.captured.length > MAX_ERROR_BODY_CHARS) {
      this.note = ` … [truncated: first ${MAX_ERROR_BODY_CHARS} characters shown]`;
      return this.cut();
    }
    return true;
  }

  onComplete(): void {
    if (this.settled) return;
    if (this.decoder) this.captured += this.decoder.decode();
    this.end(undefined);
  }

  onError(err: Error): void {
    if (this.settled) return;
    if (this.status === undefined) this.finish({ status: undefined, error: err });
    else this.end(err);
  }

  /**
   * Ends the exchange here by our choice (body long enough): settled first, so the abort's onError is ignored.
   * Called from onData, i.e. inside undici's response parser: aborting there, when the same chunk also ends
   * the response, trips undici's own assertion in onComplete (caught by undici, but relied upon). So the
   * parser is paused (false) and the socket aborted on the next microtask, outside it.
   */
  private cut(): false {
    this.end(undefined);
    const abort = this.abort;
    queueMicrotask(() => abort?.(new Error('response body not read further')));
    return false;
  }

  private end(bodyError: unknown): void {
    const status = this.status as number;
    let text = this.captured;
    let note = this.note;
    this.finish({
      status,
      bodyError,
      text: (abortNote) => {
        if (bodyError !== undefined && !note) note = ` … [response body incomplete: ${abortNote() ?? errorText(bodyError)}]`;
        if (text.length > MAX_ERROR_BODY_CHARS) {
          text = text.slice(0, MAX_ERROR_BODY_CHARS);
          // Do not end on half a surrogate pair.
          if (/[\uD800-\uDBFF]$/.test(text)) text = text.slice(0, -1);
        }
        return text + note;
      },
    });
  }

  private finish(outcome: Response | Failure): void {
    this.settled = true;
    this.deadline.onExpire = undefined;
    this.settle(outcome);
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
  // Of the headers as the action gives them: a traceparent added later is no secret.
  return { url, method, headers, body, timeout, secrets: () => [...headerSecrets(headers), ...urlSecrets(url)] };
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
  let contentType = false;
  // One pass, no [name, value] pairs: this runs for every call.
  for (const name of Object.keys(given)) {
    const value = given[name];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new InvalidActionError(`header ${JSON.stringify(name)} must be a string`);
    }
    const lower = name.toLowerCase();
    if (KARYA_HEADERS_LOWER.has(lower)) continue;
    headers[name] = String(value);
    if (lower === 'content-type') contentType = true;
  }
  if (body.kind === 'json' && !contentType) {
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

