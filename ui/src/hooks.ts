import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api';

/**
 * Loads with `load` now and every `intervalMs` (when given) while the tab is visible; a hidden tab stops
 * polling and catches up as soon as it is shown again. `reload` loads at once (after an action).
 */
export function usePoll<T>(load: () => Promise<T>, intervalMs: number | null, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(async () => {
    const mine = generation.current;
    try {
      const value = await loadRef.current();
      if (mine !== generation.current) return;
      setData(value);
      setError(null);
    } catch (e) {
      if (mine !== generation.current) return;
      setError(errorText(e));
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    generation.current++;
    setData(null);
    setLoading(true);
    void reload();
    if (intervalMs === null) return () => generation.current++;
    let timer: ReturnType<typeof setInterval> | undefined;
    let busy = false;
    const tick = () => {
      if (busy || document.hidden) return;
      busy = true;
      void reload().finally(() => (busy = false));
    };
    const start = () => {
      if (timer === undefined) timer = setInterval(tick, intervalMs);
    };
    const onVisibility = () => {
      if (document.hidden) {
        clearInterval(timer);
        timer = undefined;
      } else {
        tick();
        start();
      }
    };
    start();
    document.addEventListener('visibilitychange', onVisibility);
    return () => {
      generation.current++;
      clearInterval(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
    // The caller lists what the loader depends on; the loader itself is read through loadRef.
  }, deps);

  return { data, error, loading, reload };
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The current location hash as a path ("#/plans/x" → "/plans/x"). */
export function useHashPath(): string {
  const read = () => location.hash.replace(/^#/, '') || '/';
  const [path, setPath] = useState(read);
  useEffect(() => {
    const on = () => setPath(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return path;
}

export function navigate(path: string): void {
  location.hash = `#${path}`;
}
