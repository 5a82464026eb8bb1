import { ACTION, Action, Hook, PLAN_TYPE, Plan, PlanType } from './api';

export function fmtTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtRelative(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return '';
  const s = Math.round((ms - now) / 1000);
  const abs = Math.abs(s);
  const text = abs < 60 ? `${abs} s` : abs < 3600 ? `${Math.round(abs / 60)} min` : abs < 86400 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (Math.abs(ms) >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '—';
}

/** The part after the last dot of a Kotlin class name: "karya.core.entities.PlanType.Cron" → "Cron". */
export function kind(type: string | undefined): string {
  if (!type) return '?';
  return type.slice(type.lastIndexOf('.') + 1);
}

const ACTION_LABEL: Record<string, string> = {
  [ACTION.rest]: 'REST',
  [ACTION.slack]: 'Slack',
  [ACTION.email]: 'Email',
  [ACTION.kafka]: 'Kafka',
  [ACTION.chained]: 'Chained',
};

export function actionLabel(a: Action): string {
  return ACTION_LABEL[a.type] ?? kind(a.type);
}

/** Where an action goes, in one line (no secrets: headers and bodies are left out, the URL is masked). */
export function actionTarget(a: Action): string {
  switch (a.type) {
    case ACTION.rest:
      return `${String(a.method ?? 'GET')} ${String(a.protocol ?? 'HTTP').toLowerCase()}://${maskUrl(String(a.base_url ?? ''))}`;
    case ACTION.slack:
      return `channel ${String(a.channel ?? '')}`;
    case ACTION.email:
      return `to ${String(a.recipient ?? '')}`;
    case ACTION.kafka:
      return `topic ${String(a.topic ?? '')}`;
    case ACTION.chained: {
      const req = a.request as { description?: string } | undefined;
      return `creates plan “${req?.description ?? ''}”`;
    }
    default:
      return '';
  }
}

export function scheduleText(plan: Pick<Plan, 'period_time'> & { type: PlanType }): string {
  const t = plan.type;
  switch (t.type) {
    case PLAN_TYPE.oneTime:
      return `once, after ${plan.period_time}`;
    case PLAN_TYPE.recurring:
      return `every ${plan.period_time}`;
    case PLAN_TYPE.cron:
      return `cron ${t.expression ?? plan.period_time} (${t.time_zone ?? 'UTC'})`;
    default:
      return plan.period_time;
  }
}

/** Header values shown as they are; every other value may be a credential and is masked. */
const HARMLESS_HEADERS = new Set(['content-type', 'accept', 'accept-language', 'content-language', 'user-agent']);
export const MASK = '••••••';
/** What stands for a credential inside a URL. MASK contains it, so one test finds either placeholder. */
export const URL_MASK = '•••';

/**
 * Webhook URLs whose path is the credential (Slack's and Discord's incoming webhooks): the part kept, then
 * the secret segment. Other URLs keep their path, which names a resource rather than proving who calls it.
 */
const PATH_SECRETS: RegExp[] = [
  /^((?:[a-z0-9-]+\.)*slack\.com(?::\d+)?\/services\/[^/?#]+\/[^/?#]+\/)[^/?#]+/i,
  /^((?:[a-z0-9-]+\.)*discord(?:app)?\.com(?::\d+)?\/api(?:\/v\d+)?\/webhooks\/[^/?#]+\/)[^/?#]+/i,
];

/**
 * A URL as it may be shown: userinfo (`user:pass@`), query-string values, the fragment and the secret segment
 * of a known webhook path become URL_MASK. Works on Karya's scheme-less base_url as well as on full URLs, and
 * masking a masked URL changes nothing (the edit form compares masked URLs to find a hook's original).
 */
export function maskUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? '';
  let rest = url.slice(scheme.length);
  const authorityEnd = rest.search(/[/?#]/);
  const at = (authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)).lastIndexOf('@');
  if (at >= 0) rest = URL_MASK + rest.slice(at);
  for (const re of PATH_SECRETS) rest = rest.replace(re, `$1${URL_MASK}`);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash) + (hash < rest.length - 1 ? `#${URL_MASK}` : '#');
  const q = rest.indexOf('?');
  if (q >= 0) {
    const query = rest
      .slice(q + 1)
      .split('&')
      .map((pair) => {
        const eq = pair.indexOf('=');
        if (eq < 0) return pair === '' ? pair : URL_MASK;
        return eq === pair.length - 1 ? pair : `${pair.slice(0, eq + 1)}${URL_MASK}`;
      })
      .join('&');
    rest = `${rest.slice(0, q + 1)}${query}`;
  }
  return scheme + rest;
}

export function maskedHeaders(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers || typeof headers !== 'object') return out;
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) out[k] = HARMLESS_HEADERS.has(k.toLowerCase()) ? String(v) : MASK;
  return out;
}

const isUrlKey = (k: string) => /url$/i.test(k);
const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * A deep copy of an action (nested requests and hooks included) with header values and URLs masked; with
 * `bodySize`, JSON bodies are replaced by their size (for display: a body may carry credentials too).
 */
export function maskAction(value: unknown, opts: { bodySize?: boolean } = {}): unknown {
  if (Array.isArray(value)) return value.map((v) => maskAction(v, opts));
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'headers') out[k] = maskedHeaders(v);
    else if (isUrlKey(k) && typeof v === 'string') out[k] = maskUrl(v);
    else if (opts.bodySize && k === 'json_string' && typeof v === 'string') out[k] = `(${v.length} characters)`;
    else out[k] = maskAction(v, opts);
  }
  return out;
}

/**
 * Where an object's headers (and URL credentials) go. A masked value is restored only from an original with
 * the same target, so a credential never follows a hook to another URL, method, protocol or destination.
 */
function targetOf(o: Record<string, unknown>, url: unknown = o.base_url): string {
  return JSON.stringify([o.type ?? null, String(o.protocol ?? 'HTTP').toUpperCase(), String(o.method ?? 'GET').toUpperCase(), url ?? null, o.topic ?? null, o.channel ?? null, o.recipient ?? null]);
}

/** The one value all `values` agree on, or undefined when they are none, differ or are not strings. */
function agreed(values: unknown[]): string | undefined {
  if (values.length === 0 || values.some((v) => typeof v !== 'string' || v !== values[0])) return undefined;
  return values[0] as string;
}

function restore(edited: unknown, originals: unknown[], hook: number, problems: string[]): unknown {
  if (Array.isArray(edited)) return edited.map((e, j) => restore(e, originals.filter(Array.isArray).map((o) => o[j]), hook, problems));
  if (!isRecord(edited)) return edited;
  const origs = originals.filter(isRecord);
  const out: Record<string, unknown> = { ...edited };
  // URLs first: the restored URL is part of the target the headers are matched by.
  for (const [k, v] of Object.entries(edited)) {
    if (!isUrlKey(k) || typeof v !== 'string' || !v.includes(URL_MASK)) continue;
    const same = origs.filter((o) => typeof o[k] === 'string' && maskUrl(o[k] as string) === v && targetOf(o, null) === targetOf(edited, null));
    const value = agreed(same.map((o) => o[k]));
    if (value === undefined) problems.push(`re-enter ${k} of hook ${hook}: its masked parts (${URL_MASK}) cannot be restored`);
    else out[k] = value;
  }
  const sameTarget = origs.filter((o) => targetOf(o) === targetOf(out));
  for (const [k, v] of Object.entries(edited)) {
    if (isUrlKey(k) && typeof v === 'string') continue;
    if (k === 'headers' && isRecord(v)) {
      const headers: Record<string, unknown> = {};
      for (const [h, hv] of Object.entries(v)) {
        headers[h] = hv;
        if (typeof hv !== 'string' || !hv.includes(URL_MASK)) continue;
        const value = hv === MASK ? agreed(sameTarget.map((o) => (isRecord(o.headers) ? o.headers[h] : undefined))) : undefined;
        if (value !== undefined) headers[h] = value;
        else if (hv !== MASK) problems.push(`re-enter the value of header ${h} of hook ${hook}: it still contains ${URL_MASK}`);
        else if (sameTarget.length > 1 && sameTarget.every((o) => isRecord(o.headers) && typeof o.headers[h] === 'string'))
          problems.push(`re-enter the value of header ${h} of hook ${hook}: hooks with this target had different values`);
        else problems.push(`re-enter the value of header ${h} of hook ${hook}: its target changed`);
      }
      out[k] = headers;
    } else out[k] = restore(v, origs.map((o) => o[k]), hook, problems);
  }
  return out;
}

/**
 * Puts back the original values the edit form shows masked (header values, URL credentials) in edited hooks.
 * Each value comes only from an original hook with the same trigger and the same target (type, protocol,
 * method, URL) and the same header name, never by position: deleting or reordering hooks must not send one
 * hook's credential to another's URL. A placeholder that cannot be restored is a problem to show, not a value
 * to store.
 */
export function unmaskHooks(edited: unknown, original: readonly Hook[]): { hooks: unknown; problems: string[] } {
  if (!Array.isArray(edited)) return { hooks: edited, problems: [] };
  const problems: string[] = [];
  const hooks = edited.map((h, i) => restore(h, original.filter((o) => isRecord(h) && o.trigger === h.trigger), i + 1, problems));
  return { hooks, problems };
}
