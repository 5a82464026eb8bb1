import { RetryConfig } from '../config/karya-config';

/** Thrown by a queue handler to have its message dead-lettered, with this text as the reason. */
export class DeadLetter extends Error {}

/** Exponential backoff with jitter before attempt `attempt + 1`: initialDelay · multiplier^(attempt-1), capped, ± jitter. */
export function backoffDelay(retry: RetryConfig, attempt: number): number {
  const { initialDelay, multiplier, maxDelay, jitter } = retry;
  const base = Math.min(initialDelay * multiplier ** (attempt - 1), maxDelay);
  return Math.max(0, Math.round(base * (1 + jitter * (2 * Math.random() - 1))));
}
