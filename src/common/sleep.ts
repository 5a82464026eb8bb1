/**
 * Waits `ms`, or less when `signal` aborts (a shutdown): resolves either way, never rejects. (Node's
 * timers/promises setTimeout rejects on abort, which every caller here would only have to swallow.)
 */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
