import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { isDatabaseUnavailable } from '../connectors/repo/transient';
import { requestIdOf } from '../logging/logging';

/**
 * Seconds a client is asked to wait after a 503 (Retry-After). Short: the outages behind it (a database
 * restarting or failing over, a lock service blip) last seconds, and the operations are safe to repeat.
 */
export const UNAVAILABLE_RETRY_AFTER_S = 2;
const DATABASE_UNAVAILABLE = 'Service unavailable --- the database is not answering | Try again later';

/**
 * The wire contract: errors are a status code plus a plain-text body holding only the message, which
 * clients show to people. Unexpected errors are logged and answered with a fixed text (no internals leak).
 * A database that is down, unreachable or too slow (after the repositories' own retries) is a 503 with
 * Retry-After, as is every 503: a client can act on that, not on a 500.
 */
@Catch()
export class PlainTextExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    const { status, message } = this.describe(exception);
    if (status >= 500) {
      // The request's id, passed explicitly: there is no per-request logging context (logging.ts `http`).
      const fields = { request_id: host.getType() === 'http' ? (requestIdOf(http.getRequest<Request>()) ?? null) : null };
      if (status === HttpStatus.SERVICE_UNAVAILABLE) {
        // Expected during an outage, and one per request: a line without the stack is enough.
        this.logger.warn(fields, `503: ${exception instanceof Error ? exception.message : String(exception)}`);
        if (!res.getHeader('Retry-After')) res.setHeader('Retry-After', String(UNAVAILABLE_RETRY_AFTER_S));
      } else {
        this.logger.error(fields, exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
      }
    }
    res.status(status).type('text/plain; charset=utf-8').send(message);
  }

  private describe(exception: unknown): { status: number; message: string } {
    if (isDatabaseUnavailable(exception)) return { status: HttpStatus.SERVICE_UNAVAILABLE, message: DATABASE_UNAVAILABLE };
    if (!(exception instanceof HttpException)) {
      return { status: HttpStatus.INTERNAL_SERVER_ERROR, message: 'Internal server error' };
    }
    const status = exception.getStatus();
    // Nest's Express adapter wraps body-parser's SyntaxError (bad JSON) and Express' URIError (bad
    // percent-encoding) in a BadRequestException: say which input was malformed.
    if (exception.cause instanceof SyntaxError) return { status, message: `Malformed JSON body: ${exception.message}` };
    if (exception.cause instanceof URIError) return { status, message: `Malformed URL: ${exception.message}` };
    // Other body-parser failures (bad Content-Encoding, unsupported charset, too large, aborted) carry a type.
    const cause = exception.cause as { type?: unknown; message?: unknown; statusCode?: unknown } | undefined;
    if (typeof cause?.message === 'string' && (typeof cause.type === 'string' || typeof cause.statusCode === 'number')) {
      const kind = typeof cause.type === 'string' ? ` (${cause.type})` : '';
      return { status, message: `Request body not accepted${kind}: ${cause.message}` };
    }
    const body = exception.getResponse();
    if (typeof body === 'string') return { status, message: body };
    const m = (body as { message?: unknown }).message;
    const message = Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : exception.message;
    return { status, message };
  }
}
