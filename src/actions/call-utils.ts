/**
 * `promise`, but rejected with the signal's reason as soon as `signal` aborts. Plugins use it to keep a hard
 * deadline on calls whose library ignores an abort until later: undici 7 honours a request's signal only once
 * the request is on a connected socket (a request queued behind a full pool or waiting on a TCP connect would
 * overrun the action's timeout), and a kafkajs call goes on retrying. The abandoned call itself goes on; each
 * caller says what becomes of it.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** setTimeout fires at once for delays above 2^31-1 ms, so every delay is clamped to this. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  errors?: unknown;
}

/** An error's message, with its code when the message does not already say it (undici's often do not). */
export function errorText(err: unknown): string {
  const e: ErrorLike = typeof err === 'object' && err !== null ? (err as ErrorLike) : {};
  let message = typeof e.message === 'string' ? e.message.trim() : '';
  // Happy-eyeballs connects (several addresses) fail with an AggregateError of per-address errors.
  if (!message && Array.isArray(e.errors)) message = e.errors.map((inner) => errorText(inner)).join('; ');
  if (!message) message = typeof err === 'string' ? err : String(err);
  const code = typeof e.code === 'string' ? e.code : undefined;
  return code && !message.includes(code) ? `${message} [${code}]` : message;
}

/**
 * undici (pipelining 1) hands a keep-alive socket back to its pool only one event-loop turn after the response
 * completed (`setImmediate(client[kResume])` in client-h1.js, "to make sure non-spec compliant servers are
 * not closing the connection"). A call made before that turn finds the socket busy and opens a second one:
 * back-to-back calls to one origin would alternate between two sockets. Waiting for that turn here (a
 * setImmediate queued after undici's) means the caller's next call finds the socket free.
 */
export function socketBackInPool(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves after `ms`, or as soon as `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
    signal.addEventListener('abort', done, { once: true });
  });
}
