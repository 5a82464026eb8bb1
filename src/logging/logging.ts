import { randomUUID } from 'node:crypto';
import { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { LoggerService } from '@nestjs/common';
import { Logger as NestPinoLogger, Params, PinoLogger } from 'nestjs-pino';
import { DestinationStream, Logger as Pino, LoggerOptions, pino } from 'pino';
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
   * Express middleware, mounted first: the request id (X-Request-Id in and out, and `req.id` for lines that
   * name the request: they pass `{ request_id: req.id }` themselves), and one line per request when it ends.
   * No logging context (AsyncLocalStorage.run) per request: that turns on promise hooks for the whole
   * process, slowing every await of the executor and scheduler, and timers set during a request keep it.
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

/** A request as this middleware leaves it: with the id it answers in X-Request-Id. */
export type IdentifiedRequest = IncomingMessage & { id?: string };

/** The id of a request the middleware has seen (undefined in a test app without it). */
export function requestIdOf(req: IncomingMessage): string | undefined {
  const id = (req as IdentifiedRequest).id;
  return typeof id === 'string' ? id : undefined;
}

function requestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
  // Set now, before any handler runs, so that every response carries it: errors, 404s, CORS preflights.
  res.setHeader(REQUEST_ID_HEADER, id);
  (req as IdentifiedRequest).id = id;
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

  // nestjs-pino: Nest's LoggerService contract (context last, stacks in error()) mapped onto pino calls. Not
  // its LoggerModule (a per-request AsyncLocalStorage context, see `http`), nor its runInContext.
  const params: Params = { pinoHttp: { logger: root } };
  const nest = new NestPinoLogger(new PinoLogger(params), params);

  // Request lines hold only what is built below, so they skip the line scrubber's passes (the bulk of a
  // line's cost); the one caller-controlled field, the path, is scrubbed on its own.
  const requests = pino(
    { ...pinoOptions, redact: undefined },
    { write: (line: string) => void out.write(prettify ? prettify(line) : line) },
  );
  const http = requestLogging(requests, scrub);
  return { root, nest, http, scrub };
}

/**
 * The request middleware. Ours rather than pino-http: its per-request child logger and serializers (headers
 * included, never written) cost more than the line itself. When the level leaves a request's line out, it
 * only sets the id.
 */
function requestLogging(logger: Pino, scrub: (text: string) => string): KaryaLogging['http'] {
  return (req, res, next) => {
    const id = requestId(req, res);
    const path = requestPath(req);
    const level = QUIET_PATHS.has(path) ? 'debug' : 'info';
    if (!logger.isLevelEnabled(level)) return next();
    const start = performance.now();
    let done = false;
    const end = (finished: boolean): void => {
      if (done) return;
      done = true;
      res.removeListener('finish', onFinish);
      res.removeListener('close', onClose);
      const method = req.method ?? '';
      const shown = scrub(path);
      const duration_ms = Math.round((performance.now() - start) * 1000) / 1000;
      // 'close' before 'finish': the client went away before the whole answer was written.
      if (!finished) {
        logger[level]({ request_id: id, method, path: shown, status: null, aborted: true, duration_ms }, `${method} ${shown} aborted`);
      } else {
        logger[level]({ request_id: id, method, path: shown, status: res.statusCode, duration_ms }, `${method} ${shown} ${res.statusCode}`);
      }
    };
    const onFinish = (): void => end(true);
    const onClose = (): void => end(false);
    res.once('finish', onFinish);
    res.once('close', onClose);
    next();
  };
}
