import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Which database errors are worth another try, and which mean "the database is not answering".
 *
 * What reaches us (checked against node-postgres 8 and TypeORM 1 in transient.spec.ts): a failed statement is
 * a TypeORM QueryFailedError carrying the server's SQLSTATE as `code` and node-postgres' error as
 * `driverError`; a connection that cannot be made is node-postgres' or Node's own Error (`code` ECONNREFUSED,
 * or only a message such as `timeout exceeded when trying to connect`), unwrapped.
 */

/**
 * SQLSTATEs after which the same work, run again, can succeed. Classes 08 (connection exception, except
 * 08P01, a protocol violation) and the ones listed here: the session was cut (admin or crash shutdown, a
 * server still starting, idle timeouts), the server was full, or the transaction lost a lock conflict.
 */
const TRANSIENT_SQLSTATES = new Set([
  '57P01', // admin_shutdown: pg_terminate_backend, or a restart
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or shutting down
  '57P05', // idle_session_timeout
  '25P03', // idle_in_transaction_session_timeout
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
]);

/** Node's socket errors for a connection refused, reset or cut; each fails fast, so a retry costs little. */
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENOTCONN', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** node-postgres' messages for a connection that died under a query (they carry no code). */
const TRANSIENT_MESSAGES = [
  /^Connection terminated unexpectedly$/,
  /^Connection terminated$/,
  /^Client has encountered a connection error and is not queryable$/,
];

/**
 * Errors that mean the database is slow or silent rather than gone: they arrive only after a timeout ran
 * out, so another try would double the wait. Not retried, but answered like an outage (503, not a 500).
 */
const TIMEOUT_SQLSTATES = new Set([
  '57014', // query_canceled: statement_timeout (or an operator's pg_cancel_backend)
]);
const TIMEOUT_NODE_CODES = new Set(['ETIMEDOUT']);
const TIMEOUT_MESSAGES = [
  /^Query read timeout$/, // node-postgres' query_timeout
  /^timeout exceeded when trying to connect$/, // pg-pool's connectionTimeoutMillis: no connection in time
  /^Connection terminated due to connection timeout$/, // node-postgres' connect timeout
];

export type DatabaseTrouble = 'transient' | 'timeout';

/**
 * `transient` when running the same work again may succeed at once, `timeout` when the database did not
 * answer in time, null for anything else (a bug, bad data, a constraint). Looks through TypeORM's
 * `driverError` and `cause` chains.
 */
export function databaseTrouble(error: unknown): DatabaseTrouble | null {
  for (let e = error, depth = 0; e !== null && typeof e === 'object' && depth < 5; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string') {
      if (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code) || (code.startsWith('08') && code !== '08P01')) return 'transient';
      if (TIMEOUT_SQLSTATES.has(code) || TIMEOUT_NODE_CODES.has(code)) return 'timeout';
    }
    if (typeof message === 'string') {
      if (TRANSIENT_MESSAGES.some((m) => m.test(message))) return 'transient';
      if (TIMEOUT_MESSAGES.some((m) => m.test(message))) return 'timeout';
    }
    const next = e as { driverError?: unknown; cause?: unknown };
    e = next.driverError ?? next.cause;
  }
  return null;
}

/** Worth running again: the connection was lost or refused, the server was full, or a lock conflict lost. */
export function isTransientDatabaseError(error: unknown): boolean {
  return databaseTrouble(error) === 'transient';
}

/** The database is down, unreachable or too slow: a 503 for an API caller, never a dead letter. */
export function isDatabaseUnavailable(error: unknown): boolean {
  return databaseTrouble(error) !== null;
}

export interface TransientRetry {
  /** Tries in all, the first included. */
  tries: number;
  /** Wait before the second try; each further wait doubles, up to maxDelayMs, with jitter. */
  baseDelayMs: number;
  maxDelayMs?: number;
}

/**
 * For a statement or a transaction on a hot path: 5 tries over about 0.75 s. Enough to ride out a killed
 * backend, a lost lock conflict or a failover's first refusals; a longer outage reaches the caller (a 503).
 */
export const STATEMENT_RETRY: TransientRetry = { tries: 5, baseDelayMs: 50, maxDelayMs: 400 };

/**
 * Runs `work`, and runs it again after a short jittered backoff while it fails with a transient database
 * error (see databaseTrouble). Anything else, and the last failure, reaches the caller unchanged.
 *
 * `work` must be a unit that commits nothing when it fails: one statement outside a transaction, or a whole
 * transaction, never one statement inside a transaction (its transaction is already aborted). The only
 * failure that may have committed is a connection lost while the commit's answer was on its way; work that
 * can run twice must be written so that the second run changes nothing (fenced updates, inserts of ids
 * chosen before the first try with ON CONFLICT DO NOTHING).
 */
export async function withTransientRetry<T>(work: () => Promise<T>, retry: TransientRetry = STATEMENT_RETRY): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (e) {
      if (attempt >= retry.tries || !isTransientDatabaseError(e)) throw e;
      await sleep(backoffMs(retry, attempt));
    }
  }
}

/** Wait after failed try `attempt`: base · 2^(attempt-1), capped, between half and all of it (jitter). */
export function backoffMs(retry: TransientRetry, attempt: number): number {
  const full = Math.min(retry.baseDelayMs * 2 ** (attempt - 1), retry.maxDelayMs ?? Number.POSITIVE_INFINITY);
  return Math.round(full / 2 + Math.random() * (full / 2));
}
