import { randomUUID } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerService } from '@nestjs/common';
import { Logger as NestPinoLogger, Params, PinoLogger } from 'nestjs-pino';
import { DestinationStream, Logger as Pino, LoggerOptions, pino } from 'pino';
import { pinoHttp } from 'pino-http';
import type { PrettyOptions } from 'pino-pretty';
import { CUT_MARK, redactCredentialPatterns, redactSecrets, REDACTED, secretForms } from '../actions/redact';
import { LogLevelName } from '../config/karya-config';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** An incoming id is kept when it is printable ASCII without spaces and short: anything else could forge lines. */
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** Hit every few seconds by probes and scrapers: their lines are debug, or they would drown everything else. */
const QUIET_PATHS: ReadonlySet<string> = new Set(['/health', '/metrics']);

/**
 * Credential headers where a logged object would carry them: nothing Karya logs has a `headers` field today,
 * but a request or a plan's action dumped in a future line must not leak them. The line scrubber below
 * catches them in text anyway (`"x-api-key":"…"`); this keeps the structure readable. No wildcards: pino's
 * wildcard paths cost ~17 µs per line, these nothing measurable.
 */
const REDACT_PATHS = ['authorization', 'cookie', 'set-cookie', 'x-api-key', 'proxy-authorization'].flatMap((h) => [
  `headers["${h}"]`,
  `req.headers["${h}"]`,
  `action.headers["${h}"]`,
]);

type Writable = { write(chunk: string): unknown; isTTY?: boolean };
/** pino-pretty's prettyFactory: a JSON line in, a readable line out, synchronously. */
type PrettyFactory = (options: PrettyOptions) => (line: string) => string;

export interface LoggingOptions {
  level: LogLevelName;
  /** Values that must never be written (configSecrets): masked in every form secretForms knows. */
  secrets: readonly string[];
  /** stdout unless a test says otherwise. */
  out?: Writable;
  /** pino-pretty, or undefined where it is not installed (the production image has no devDependencies). */
  loadPretty?: () => PrettyFactory | undefined;
}

export interface KaryaLogging {
  /** The process's pino logger; everything below writes through it. */
  root: Pino;
  /** Nest's LoggerService over `root` (nestjs-pino): Nest's own lines and every `new Logger(context)`. */
  nest: LoggerService;
  /**
   * Express middleware, mounted first: the request id (X-Request-Id in and out), one line per request when
   * it ends, and a logging context so lines logged while serving it carry its request_id.
   */
  http: (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
  /** What every line goes through; main.ts uses it for the few things written to stderr directly. */
  scrub(text: string): string;
}

function defaultPretty(): PrettyFactory | undefined {
  try {
    // A devDependency: required only when stdout is a terminal, and its absence is not an error.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('pino-pretty') as { prettyFactory: PrettyFactory }).prettyFactory;
  } catch {
    return undefined;
  }
}

/** The URL path alone: query strings can carry tokens, and they say little about the request. */
export function requestPath(req: IncomingMessage): string {
  const url = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function requestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
  // Set now, before any handler runs, so that every response carries it: errors, 404s, CORS preflights.
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}

/**
 * Builds the process's logger (once per process: nestjs-pino keeps its root logger in a module variable).
 * JSON lines when stdout is not a terminal, pino-pretty's readable lines when it is (plain JSON again if
 * pino-pretty cannot be loaded). Every line is scrubbed before it is written: the configuration's secrets
 * in every form they could take (JSON-escaped included) and credentials recognisable by their shape
 * (`Bearer …`, URL userinfo, `"x-api-key":"…"`).
 */
export function createLogging(options: LoggingOptions): KaryaLogging {
  const out: Writable = options.out ?? process.stdout;
  const secrets = [...options.secrets];
  // A cheap look first: almost no line holds a secret, and redactSecrets builds every form of each on each call.
  const forms = secretForms(secrets);
  const scrub = (text: string): string =>
    redactCredentialPatterns(forms.some((f) => text.includes(f)) || text.includes(CUT_MARK) ? redactSecrets(text, secrets) : text);

  const factory = out.isTTY ? (options.loadPretty ?? defaultPretty)() : undefined;
  const prettify = factory?.({
    colorize: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,context',
    messageFormat: '{if context}[{context}] {end}{msg}',
  });
  // Synchronous writes: stdout to a pipe or file is synchronous in Node on Linux, and a line cannot be lost
  // at process.exit(). Lines are few (nothing per task at info), so the scrubbing costs nothing that shows.
  // Scrubbed as JSON, before pino-pretty: the secrets' JSON-escaped forms are what a JSON line holds.
  const destination: DestinationStream = {
    write: (line: string) => void out.write(prettify ? prettify(scrub(line)) : scrub(line)),
  };

  const pinoOptions: LoggerOptions = {
    level: options.level,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACT_PATHS, censor: REDACTED },
  };
  const root = pino(pinoOptions, destination);

  const httpLogger = pinoHttp({
    logger: root,
    genReqId: requestId,
    // Only the id is bound to the lines of a request, not the whole req/res objects (headers included).
    quietReqLogger: true,
    quietResLogger: true,
    customAttributeKeys: { reqId: 'request_id', responseTime: 'duration_ms' },
    customLogLevel: (req) => (QUIET_PATHS.has(requestPath(req)) ? 'debug' : 'info'),
    customSuccessMessage: (req, res) => `${req.method ?? ''} ${requestPath(req)} ${res.statusCode}`,
    customErrorMessage: (req, res) => `${req.method ?? ''} ${requestPath(req)} ${res.statusCode}`,
    customSuccessObject: (req, res, value) => requestFields(req, res, value),
    // Nest's exception filter logs a 5xx's cause with its stack; pino-http's stand-in Error says nothing.
    customErrorObject: (req, res, _err, value) => requestFields(req, res, value),
  });

  // nestjs-pino: Nest's LoggerService contract (context last, stacks in error()) mapped onto pino calls, and
  // a per-request context its PinoLogger reads. Not its LoggerModule: that mounts the HTTP middleware through
  // Nest, after app.use() middleware (CORS answers preflights there), so some requests would go unlogged.
  const params: Params = { pinoHttp: { logger: root } };
  const pinoLogger = new PinoLogger(params);
  const nest = new NestPinoLogger(pinoLogger, params);

  const http = (req: IncomingMessage, res: ServerResponse, next: () => void): void => {
    httpLogger(req, res, () => pinoLogger.runInContext(next, { bindings: { request_id: req.id } }));
  };
  return { root, nest, http, scrub };
}

function requestFields(req: IncomingMessage, res: ServerResponse, value: object): object {
  return {
    method: req.method,
    path: requestPath(req),
    status: res.statusCode,
    duration_ms: (value as { duration_ms?: number }).duration_ms,
  };
}
