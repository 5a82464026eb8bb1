import { ACTION, Action, PLAN_TYPE, Plan, PlanType } from './api';

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

/** Where an action goes, in one line (no secrets: headers and bodies are left out). */
export function actionTarget(a: Action): string {
  switch (a.type) {
    case ACTION.rest:
      return `${String(a.method ?? 'GET')} ${String(a.protocol ?? 'HTTP').toLowerCase()}://${String(a.base_url ?? '')}`;
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

export function maskedHeaders(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers || typeof headers !== 'object') return out;
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) out[k] = HARMLESS_HEADERS.has(k.toLowerCase()) ? String(v) : MASK;
  return out;
}

/** A deep copy of an action (nested requests and hooks included) with header values masked. */
export function maskAction(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskAction);
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = k === 'headers' ? maskedHeaders(v) : maskAction(v);
  return out;
}

/** Puts back the original values of headers still showing MASK (the edit form shows hooks masked). */
export function unmask(edited: unknown, original: unknown): unknown {
  if (Array.isArray(edited)) return edited.map((e, i) => unmask(e, Array.isArray(original) ? original[i] : undefined));
  if (!edited || typeof edited !== 'object') return edited;
  const orig = original && typeof original === 'object' ? (original as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(edited as Record<string, unknown>)) {
    if (k === 'headers' && v && typeof v === 'object') {
      const oh = (orig.headers ?? {}) as Record<string, unknown>;
      out[k] = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([h, hv]) => [h, hv === MASK && h in oh ? oh[h] : hv]));
    } else out[k] = unmask(v, orig[k]);
  }
  return out;
}
