import pg from 'pg';

/** How much longer than statement_timeout the client waits before deciding the server cannot answer. */
const READ_DEADLINE_MARGIN_MS = 1000;
/** node-postgres's message for a query whose reply did not come within query_timeout. */
const READ_TIMEOUT_MESSAGE = 'Query read timeout';

export interface PgTimeouts {
  /** ms to open a connection. */
  connectTimeout: number;
  /** ms a statement may run; 0 = no limit. */
  statementTimeout: number;
}

type QueryCallback = (err: Error | null, result?: unknown) => void;

/**
 * A node-postgres Client class (for pg-pool's `Client` option) whose every wait is bounded:
 * - opening a connection gives up after `connectTimeout` (the pool's own timeout, the acquire timeout,
 *   also bounds a caller waiting for a free connection);
 * - a statement runs at most `statementTimeout` on the server (statement_timeout, a clean 57014 error);
 * - and when the server cannot even say so, because the network went silent, the client stops waiting a
 *   little later (query_timeout) and destroys the connection. Keeping it would be wrong, not just slow: the
 *   timed-out statement still occupies it, every later query queues behind it, and a ROLLBACK that timed out
 *   in the queue is never sent, so the next borrower could run inside a transaction nobody commits.
 *   Destroying it rolls back on the server whatever was left open.
 */
export function boundedPgClient(timeouts: PgTimeouts): typeof pg.Client {
  const readDeadline = timeouts.statementTimeout > 0 ? timeouts.statementTimeout + READ_DEADLINE_MARGIN_MS : 0;

  class BoundedPgClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      const base = typeof config === 'string' ? { connectionString: config } : (config ?? {});
      super({
        ...base,
        connectionTimeoutMillis: timeouts.connectTimeout,
        // 0 leaves both unset (node-postgres sends statement_timeout only when truthy).
        statement_timeout: timeouts.statementTimeout,
        query_timeout: readDeadline,
      });
      // A connection error emitted while neither the pool nor a query runner listens (a hand-over between
      // them) would otherwise be thrown out of the event loop and end the process; they handle their own.
      this.on('error', () => undefined);
    }
  }

  if (readDeadline > 0) {
    // pg's query() has a dozen overloads; this forwards whatever it is given and only watches the outcome.
    const baseQuery = pg.Client.prototype.query as (this: pg.Client, ...args: unknown[]) => unknown;
    Object.defineProperty(BoundedPgClient.prototype, 'query', {
      configurable: true,
      writable: true,
      value: function boundedQuery(this: pg.Client, ...args: unknown[]): unknown {
        const abandonOnTimeout = (err: unknown): void => {
          if (err instanceof Error && err.message === READ_TIMEOUT_MESSAGE) this.connection.stream.destroy();
        };
        const last = args.length - 1;
        const callback = args[last];
        if (last > 0 && typeof callback === 'function') {
          args[last] = (err: Error | null, result?: unknown) => {
            abandonOnTimeout(err);
            (callback as QueryCallback)(err, result);
          };
          return baseQuery.apply(this, args);
        }
        const result = baseQuery.apply(this, args);
        // A side branch: the caller still gets (and handles) the original rejection.
        if (result instanceof Promise) result.catch(abandonOnTimeout);
        return result;
      },
    });
  }
  return BoundedPgClient;
}
