// Small shared helpers: logging with progress lines, percentiles, the sink client.
import { request } from 'undici';
import { sleep } from './proc.mjs';

const started = Date.now();
const tty = process.stderr.isTTY;
let pendingLine = false;

/** A log line on stderr, prefixed with the elapsed time. */
export function log(msg) {
  if (pendingLine) process.stderr.write('\n');
  pendingLine = false;
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}\n`);
}

/** A progress line: rewritten in place on a terminal, printed as a plain line otherwise. */
export function progress(msg) {
  const line = `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`;
  if (tty) {
    process.stderr.write(`\r${line}\x1b[K`);
    pendingLine = true;
  } else {
    process.stderr.write(`${line}\n`);
  }
}

/** Percentile (nearest rank) of an ascending sorted array. */
export function pct(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export const round = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits);

export class SinkClient {
  /** @param {number} port */
  constructor(port) {
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
  }

  async get(path) {
    const { statusCode, body } = await request(`${this.base}${path}`);
    const json = await body.json();
    if (statusCode !== 200) throw new Error(`sink ${path}: ${statusCode}`);
    return json;
  }

  /** @returns {Promise<{distinct: number, total: number}>} */
  count(run) {
    return this.get(`/count?run=${encodeURIComponent(run)}`);
  }

  /** @returns {Promise<{keys: string[], first: number[], due: (number|null)[], count: number[], total: number}>} */
  records(run) {
    return this.get(`/records?run=${encodeURIComponent(run)}`);
  }

  /**
   * The records of `run` so far, and the sink forgets them (a later call for a key starts a new record).
   * @returns {Promise<{keys: string[], first: number[], due: (number|null)[], count: number[], fails: number[], plan: string[], attempt: number[], total: number}>}
   */
  take(run) {
    return this.get(`/records?run=${encodeURIComponent(run)}&take=1`);
  }

  async forget(run) {
    const { body } = await request(`${this.base}/runs?run=${encodeURIComponent(run)}`, { method: 'DELETE' });
    await body.dump();
  }

  /**
   * Waits until `expected` distinct keys of `run` arrived (or nothing new arrived for `idleMs` after
   * `notBefore`, or `timeoutMs` passed), showing progress; then waits `settleMs` more for late duplicates.
   */
  async waitFor(run, expected, { label, timeoutMs, idleMs = 20_000, notBefore = 0, settleMs = 1000, onEnd = () => undefined }) {
    const deadline = Date.now() + timeoutMs;
    let last = -1;
    let lastChange = Date.now();
    let lastShown = 0;
    let prev = { at: Date.now(), n: 0 };
    while (Date.now() < deadline) {
      const { distinct } = await this.count(run);
      const now = Date.now();
      if (distinct !== last) {
        last = distinct;
        lastChange = now;
      }
      if (now - lastShown >= 1000 || distinct >= expected) {
        const rate = ((distinct - prev.n) * 1000) / Math.max(1, now - prev.at);
        progress(`${label}: ${distinct}/${expected} tasks done (${Math.round(rate)}/s)`);
        prev = { at: now, n: distinct };
        lastShown = now;
      }
      if (distinct >= expected) break;
      if (now > notBefore && now - lastChange > idleMs) {
        log(`${label}: nothing new for ${idleMs / 1000} s, giving up with ${distinct}/${expected}`);
        break;
      }
      await sleep(100);
    }
    if (Date.now() >= deadline) log(`${label}: timed out after ${timeoutMs / 1000} s`);
    onEnd();
    await sleep(settleMs);
    return this.records(run);
  }
}

/**
 * Turns sink records into the figures of one workload. `dueOf(key, i)` gives the due time to use (the
 * body's by default). Lateness = first receive − due.
 * @param {{keys: string[], first: number[], due: (number|null)[], count: number[], total: number}} rec
 * @param {number} expected
 * @param {{ start: number, dueOf?: (key: string, i: number) => number | null | undefined }} o start = T (the burst instant or the window start)
 */
export function summarise(rec, expected, o) {
  const late = [];
  let lastAt = -Infinity;
  let dups = 0;
  let unknownDue = 0;
  for (let i = 0; i < rec.keys.length; i++) {
    const due = o.dueOf ? o.dueOf(rec.keys[i], i) : rec.due[i];
    if (due === null || due === undefined) unknownDue++;
    else late.push(rec.first[i] - due);
    if (rec.first[i] > lastAt) lastAt = rec.first[i];
    dups += rec.count[i] - 1;
  }
  late.sort((a, b) => a - b);
  const distinct = rec.keys.length;
  const spanMs = lastAt - o.start;
  return {
    expected,
    distinct,
    lost: expected - distinct,
    duplicates: dups,
    unknownDue,
    spanMs: round(spanMs, 1),
    rate: distinct > 0 && spanMs > 0 ? round((distinct * 1000) / spanMs, 0) : null,
    lateness: {
      min: round(late[0] ?? null, 1),
      p50: round(pct(late, 50), 1),
      p90: round(pct(late, 90), 1),
      p99: round(pct(late, 99), 1),
      max: round(late[late.length - 1] ?? null, 1),
    },
  };
}

/**
 * The submission figure of a peer queue: `addOne()` (the peer's own add call, one job each) with
 * `connections` calls in flight for `seconds`; the rate and the latency of a call.
 * @param {string} label
 * @param {{ connections: number, seconds: number }} o
 * @param {() => Promise<unknown>} addOne
 */
export async function addRateLoop(label, { connections, seconds }, addOne) {
  const lat = [];
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = Date.now();
  let shown = t0;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < end) {
      const s = performance.now();
      await addOne();
      lat.push(performance.now() - s);
      n++;
      if (Date.now() - shown >= 1000) {
        shown = Date.now();
        progress(`${label}: ${n} jobs added so far`);
      }
    }
  }));
  const ms = Date.now() - t0;
  lat.sort((a, b) => a - b);
  return {
    connections,
    seconds,
    requests: n,
    rate: round((n * 1000) / ms, 0),
    latencyMs: { p50: round(pct(lat, 50)), p99: round(pct(lat, 99)), max: round(lat[lat.length - 1] ?? null) },
  };
}
