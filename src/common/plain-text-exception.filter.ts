import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';

/** body-parser's errors carry these fields; they reach Nest before any route does. */
interface BodyParserError {
  status?: number;
  statusCode?: number;
  type?: string;
  message?: string;
}

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
    if (exception instanceof HttpException) {
      const body = exception.getResponse();
      if (typeof body === 'string') return { status: exception.getStatus(), message: body };
      const m = (body as { message?: unknown }).message;
      const message = Array.isArray(m) ? m.join('; ') : typeof m === 'string' ? m : exception.message;
      return { status: exception.getStatus(), message };
    }
    const bp = exception as BodyParserError;
    const bpStatus = bp?.status ?? bp?.statusCode;
    if (typeof bp?.type === 'string' && typeof bpStatus === 'number' && bpStatus >= 400 && bpStatus < 500) {
      const message = bp.type === 'entity.parse.failed' ? `Malformed JSON body: ${bp.message ?? ''}` : (bp.message ?? 'Bad request');
      return { status: bpStatus, message };
    }
    return { status: HttpStatus.INTERNAL_SERVER_ERROR, message: 'Internal server error' };
  }
}
