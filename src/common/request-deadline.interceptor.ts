import { CallHandler, ExecutionContext, NestInterceptor, ServiceUnavailableException } from '@nestjs/common';
import { Observable, throwError, timeout } from 'rxjs';

/**
 * Answers an HTTP call that is still running after `ms` with a 503 (the exception filter adds Retry-After).
 *
 * Every connector bounds its own waits (connect, pool acquire, statement, Redis command, publish confirm),
 * but a call can chain several of them, and group commit can queue it behind a batch that is itself waiting:
 * when a dependency goes silent, the sum could pass what a client will wait. This is the one bound on the
 * whole. The work the call started is not cancelled and may still complete (a plan may be stored after its
 * submission was answered 503), which is what a 503 allows: the outcome is unknown, try again.
 */
export class RequestDeadlineInterceptor implements NestInterceptor {
  constructor(private readonly ms: number) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    return next.handle().pipe(
      timeout({
        first: this.ms,
        with: () => throwError(() => new ServiceUnavailableException(`Service unavailable --- no answer within ${this.ms} ms | Try again later`)),
      }),
    );
  }
}
