/**
 * The dashboard's only way to the server: the /v1 API on the origin that served the page, with the API key
 * (apikey mode) as a Bearer token. Errors keep the server's plain-text message, which is meant for people.
 */

export const ACTION = {
  rest: 'karya.core.entities.Action.RestApiRequest',
  slack: 'karya.core.entities.Action.SlackMessageRequest',
  email: 'karya.core.entities.Action.EmailRequest',
  kafka: 'karya.core.entities.Action.KafkaProducerRequest',
  chained: 'karya.core.entities.Action.ChainedRequest',
} as const;

export const PLAN_TYPE = {
  oneTime: 'karya.core.entities.PlanType.OneTime',
  recurring: 'karya.core.entities.PlanType.Recurring',
  cron: 'karya.core.entities.PlanType.Cron',
} as const;

export const BODY = {
  json: 'karya.core.entities.http.Body.JsonBody',
  empty: 'karya.core.entities.http.Body.EmptyBody',
} as const;

export type Overlap = 'ALLOW' | 'SKIP' | 'BUFFER_ONE';

export interface User {
  id: string;
  name: string;
  created_at?: number;
}

export interface PlanType {
  type: string;
  end_at?: number | null;
  overlap?: Overlap;
  expression?: string;
  time_zone?: string;
}

export interface Action {
  type: string;
  [key: string]: unknown;
}

export interface Hook {
  trigger: 'ON_FAILURE' | 'ON_COMPLETION';
  action: Action;
  max_retry: number;
}

export interface Plan {
  id: string;
  user_id: string;
  description: string;
  period_time: string;
  type: PlanType;
  status: string;
  max_failure_retry: number;
  action: Action;
  hook: Hook[];
  parent_plan_id: string | null;
  created_at: number;
  updated_at: number;
}

export interface Task {
  id: string;
  plan_id: string;
  partition_key: number;
  status: string;
  created_at: number;
  executed_at: number | null;
  next_execution_at: number | null;
}

export interface ErrorLog {
  plan_id: string;
  error: string;
  type: { type: string; task_id?: string };
  timestamp: number;
}

export interface PlanState {
  plan_id: string;
  status: string;
  paused_at: number | null;
  overlap: Overlap | null;
  next_execution_at: number | null;
}

export interface DeadLetter {
  id: string;
  user_id: string | null;
  kind: 'TASK' | 'HOOK';
  plan_id: string | null;
  task_id: string | null;
  reason: string;
  attempts: number;
  created_at: number;
}

export interface StatsBucket {
  at: number;
  succeeded: number;
  failed: number;
  lateness_p50_ms: number | null;
  lateness_p99_ms: number | null;
}

export interface Stats {
  bucket_seconds: number;
  from: number;
  to: number;
  buckets: StatsBucket[];
  totals: Omit<StatsBucket, 'at'>;
}

export interface Whoami {
  auth_mode: 'none' | 'apikey';
  kind: 'open' | 'admin' | 'user';
  user: User | null;
}

/** A non-2xx answer: `message` is the server's plain-text body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const KEY_STORAGE = 'karya.apiKey';

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

export async function api<T>(method: string, path: string, body?: unknown, key: string | null = storedKey()): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'The server did not answer (is Karya running?)');
  }
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, text.trim() || `${res.status} ${res.statusText}`);
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body);

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
