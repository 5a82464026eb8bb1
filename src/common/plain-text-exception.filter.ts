import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';

/**
 * The wire contract: errors are a status code plus a plain-text body holding only the message, which
 * clients show to people. Unexpected errors are logged and answered with a fixed text (no internals leak).
 */
@Catch()
export class PlainTextExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const { status, message } = this.describe(exception);
    if (status >= 500) this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    res.status(status).type('text/plain; charset=utf-8').send(message);
  }

  private describe(exception: unknown): { status: number; message: string } {
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
