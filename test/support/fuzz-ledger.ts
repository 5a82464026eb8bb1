import { gunzipSync, inflateSync } from 'node:zlib';
import { FuzzCase } from './fuzz-cases';
import { PLAN_KEYS, T } from './fuzz-model';

/**
 * The API fuzz run's ledger of acknowledgements: every plan and user a 200 answer said was stored, as last
 * echoed, so the run can check afterwards that the database holds exactly that (shared/spec/api-v1.md: a 200
 * is the server's word that the request was durably applied; anything else must have written nothing).
 */

type Wire = Record<string, unknown>;

/** Plan fields a PATCH may change, by request key and Plan (response) key. */
const PATCHABLE: readonly (readonly [string, string])[] = [['period_time', 'period_time'], ['max_failure_retry', 'max_failure_retry'], ['hooks', 'hook']];

/** Deep value with object keys sorted (jsonb does not keep key order). */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  }
  return v;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? 'undefined';
  return s.length > 160 ? `${s.slice(0, 157)}...(${s.length} chars)` : s;
}

/**
 * The JSON object the server parsed from a case's body, as body-parser and the validation pipe see it (gzip or
 * deflate undone, a UTF-8 BOM dropped, a form read as flat keys); undefined when there is none to read.
 */
export function sentObject(c: FuzzCase): Record<string, unknown> | undefined {
  if (c.body === undefined) return undefined;
  const encoding = (c.headers?.['Content-Encoding'] ?? '').toLowerCase();
  let bytes = c.body;
  try {
    if (encoding === 'gzip') bytes = gunzipSync(bytes);
    else if (encoding === 'deflate') bytes = inflateSync(bytes);
    const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
    if (/^application\/x-www-form-urlencoded/i.test(c.contentType ?? '')) return Object.fromEntries(new URLSearchParams(text));
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export interface StoredPlanRow {
  id: string;
  user_id: string;
  description: string;
  period_time: string;
  type: unknown;
  status: string;
  max_failure_retry: number;
  action: unknown;
  hook: unknown;
  parent_plan_id: string | null;
  created_at: number;
  updated_at: number;
  /** Set while paused (a cancelled plan may keep it: only live plans are checked). */
  paused_at: number | null;
}
export interface StoredTaskRow {
  plan_id: string;
  status: string;
  n: number;
}
export interface StoredUserRow {
  id: string;
  name: string;
  created_at: number;
}

/** What the database holds, read with the queries below (PostgreSQL and PGlite alike). */
export interface Stored {
  plans: StoredPlanRow[];
  tasks: StoredTaskRow[];
  users: StoredUserRow[];
}

const MS = (col: string) => `(extract(epoch FROM ${col}) * 1000)::float8 AS ${col}`;
export const STORED_QUERIES = {
  plans:
    'SELECT id::text AS id, user_id::text AS user_id, description, period_time, type, status, max_failure_retry, action, hook, ' +
    `parent_plan_id::text AS parent_plan_id, ${MS('created_at')}, ${MS('updated_at')}, ${MS('paused_at')} FROM plans`,
  tasks: 'SELECT plan_id::text AS plan_id, status, count(*)::int AS n FROM tasks GROUP BY plan_id, status',
  users: `SELECT id::text AS id, name, ${MS('created_at')} FROM users`,
} as const;

export interface LedgerVerdict {
  problems: string[];
  figures: {
    plansAcknowledged: number; plansStored: number; patches: number; cancels: number; pauses: number; resumes: number; runs: number;
    usersAcknowledged: number; usersStored: number;
  };
}

/** A plan as its 200 answers left it. */
interface PlanEntry {
  /** The last Plan echoed (submit, PATCH, cancel). */
  plan: Wire;
  n: number;
  /** As the last pause or resume answered (PlanState); its paused_at while paused. */
  paused: boolean;
  pausedAt: number | null;
  /**
   * A pause or resume changed the plan after its last echo: its updated_at moved (PlanState does not say to
   * what), so the stored one must be no earlier than the echoed one.
   */
  touched: boolean;
  /** Run-now tasks still pending (CREATED, or PAUSED with their plan); a OneTime plan's run moves its one task instead. */
  extras: number;
  /** Run-now tasks a resume dropped (CANCELLED: occurrences missed while paused are not caught up). */
  dropped: number;
}

const LIVE = ['CREATED', 'RUNNING'];

export class AckLedger {
  private readonly plans = new Map<string, PlanEntry>();
  private readonly users = new Map<string, { user: Wire; n: number }>();
  private patches = 0;
  private cancels = 0;
  private pauses = 0;
  private resumes = 0;
  private runs = 0;

  /**
   * @param storedText how the database's driver returns a stored string: PGlite's wire layer drops a leading
   *   U+FEFF (a quirk of the embedded database only, noted in the README), so that stack compares without it.
   */
  constructor(private readonly storedText: (json: string) => string = (json) => json) {}

  /** A 200 to POST /v1/plan (`n`: the case number, 0 for set-up). Returns a problem with the answer, if any. */
  created(n: number, echo: unknown): string | undefined {
    const plan = echo as Wire;
    const id = String(plan.id);
    const earlier = this.plans.get(id);
    if (earlier) return `plan ${id} was acknowledged as created twice (case #${earlier.n} and this one)`;
    this.plans.set(id, { plan, n, paused: false, pausedAt: null, touched: false, extras: 0, dropped: 0 });
    return undefined;
  }

  /** A 200 to POST /v1/plan/{id}/pause (a PlanState): paused from now on; a first pause moves updated_at. */
  paused(n: number, state: unknown): string | undefined {
    this.pauses++;
    const s = state as Wire;
    const entry = this.plans.get(String(s.plan_id));
    if (!entry) return `pause acknowledged plan ${String(s.plan_id)}, which no earlier answer acknowledged as created`;
    if (s.status !== 'PAUSED') return `pause answered status ${String(s.status)}`;
    if (!entry.paused) Object.assign(entry, { paused: true, pausedAt: s.paused_at as number, touched: true, n });
    return undefined;
  }

  /** A 200 to POST /v1/plan/{id}/resume (a PlanState): the pending run-now tasks the pause held are dropped. */
  resumed(n: number, state: unknown): string | undefined {
    this.resumes++;
    const s = state as Wire;
    const entry = this.plans.get(String(s.plan_id));
    if (!entry) return `resume acknowledged plan ${String(s.plan_id)}, which no earlier answer acknowledged as created`;
    if (s.status === 'PAUSED') return 'resume answered status PAUSED';
    if (entry.paused) {
      Object.assign(entry, { paused: false, pausedAt: null, touched: true, n, dropped: entry.dropped + entry.extras, extras: 0 });
      // A bounded plan whose end passed while paused completes on resume.
      if (s.status !== entry.plan.status) entry.plan = { ...entry.plan, status: s.status };
    }
    return undefined;
  }

  /** A 200 to POST /v1/plan/{id}/run (a Task): one more pending task, except for a OneTime plan (its one task moves). */
  ran(n: number, task: unknown): string | undefined {
    this.runs++;
    const t = task as Wire;
    const entry = this.plans.get(String(t.plan_id));
    if (!entry) return `run now acknowledged a task of plan ${String(t.plan_id)}, which no earlier answer acknowledged as created`;
    const type = entry.plan.type as Wire | null;
    if (type?.type !== T.OneTime) entry.extras++;
    return undefined;
  }

  /**
   * A plan made COMPLETED behind the API, with its one task SUCCESS (nothing runs plans in the fuzz run, so a
   * suite that needs a completed plan writes one).
   */
  completedBehindApi(id: string): void {
    const entry = this.plans.get(id);
    if (entry) entry.plan = { ...entry.plan, status: 'COMPLETED' };
  }

  /** A 200 to PATCH /v1/plan: fields the request did not set must be as last acknowledged. */
  patched(n: number, echo: unknown, sent: Record<string, unknown> | undefined): string | undefined {
    this.patches++;
    return this.changed(n, echo as Wire, 'PATCH', (key) => {
      if (key === 'updated_at') return true;
      if (key === 'status') return false;
      const req = PATCHABLE.find(([, planKey]) => planKey === key)?.[0];
      // An unreadable body (never for a 200 so far) leaves the patchable fields unchecked.
      return req !== undefined && (sent === undefined || (sent[req] !== undefined && sent[req] !== null));
    });
  }

  /** A 200 to POST /v1/plan/{id} (cancel): CANCELLED, every other field as last acknowledged. */
  cancelled(n: number, echo: unknown): string | undefined {
    this.cancels++;
    const plan = echo as Wire;
    if (plan.status !== 'CANCELLED') return `cancel answered status ${String(plan.status)}`;
    return this.changed(n, plan, 'cancel', (key) => key === 'status' || key === 'updated_at');
  }

  userCreated(n: number, echo: unknown): string | undefined {
    const user = echo as Wire;
    const id = String(user.id);
    const earlier = this.users.get(id);
    if (earlier) return `user ${id} was acknowledged as created twice (case #${earlier.n} and this one)`;
    this.users.set(id, { user, n });
    return undefined;
  }

  private changed(n: number, plan: Wire, what: string, mayChange: (key: string) => boolean): string | undefined {
    const id = String(plan.id);
    const prev = this.plans.get(id);
    if (!prev) return `${what} acknowledged plan ${id}, which no earlier answer acknowledged as created`;
    const problems = PLAN_KEYS.filter((k) => !mayChange(k) && !same(prev.plan[k], plan[k]))
      .map((k) => `${k} went from ${short(prev.plan[k])} (case #${prev.n}) to ${short(plan[k])}`);
    // The echo carries the plan's updated_at again, whatever a pause or resume did to it before.
    Object.assign(prev, { plan, n, touched: false });
    return problems.length === 0 ? undefined : `${what} changed what the request did not ask to: ${problems.join('; ')}`;
  }

  /**
   * The tasks a plan must have, by status: its first task (CREATED; PAUSED while paused; CANCELLED with its plan;
   * SUCCESS once COMPLETED), one more per run now of a recurring or cron plan (the same status, or CANCELLED once a
   * resume dropped it). Nothing runs during the fuzz run, so no other task can exist.
   */
  private expectedTasks(e: PlanEntry): Map<string, number> {
    const status = String(e.plan.status);
    const pending = status === 'CANCELLED' ? 'CANCELLED' : e.paused ? 'PAUSED' : 'CREATED';
    const out = new Map<string, number>();
    const add = (s: string, k: number) => k > 0 && out.set(s, (out.get(s) ?? 0) + k);
    add(status === 'COMPLETED' ? 'SUCCESS' : pending, 1);
    add(pending, e.extras);
    add('CANCELLED', e.dropped);
    return out;
  }

  /**
   * The database against the acknowledgements: every acknowledged plan stored once, exactly as last echoed (its
   * updated_at no earlier, after a pause or resume), paused exactly when and since its answers said, with the
   * tasks its answers imply (expectedTasks); no plan or user stored that no 200 acknowledged.
   */
  verify(stored: Stored): LedgerVerdict {
    const problems: string[] = [];
    const tasks = new Map<string, StoredTaskRow[]>();
    for (const t of stored.tasks) tasks.set(t.plan_id, [...(tasks.get(t.plan_id) ?? []), t]);
    const storedPlans = new Map(stored.plans.map((p) => [p.id, p]));
    for (const [id, entry] of this.plans) {
      const { plan, n } = entry;
      const row = storedPlans.get(id);
      if (!row) {
        problems.push(`plan ${id} (acknowledged by case #${n}) is not stored`);
        continue;
      }
      const diff = PLAN_KEYS.filter((k) => !(entry.touched && k === 'updated_at'))
        .filter((k) => this.storedText(JSON.stringify(canonical(row[k as keyof StoredPlanRow]))) !== this.storedText(JSON.stringify(canonical(plan[k]))));
      if (entry.touched && !(row.updated_at >= Number(plan.updated_at))) diff.push('updated_at');
      if (diff.length > 0) {
        problems.push(`plan ${id} (case #${n}) is stored unlike its last acknowledgement: ` +
          diff.map((k) => `${k} stored ${short(row[k as keyof StoredPlanRow])}, acknowledged ${short(plan[k])}${entry.touched && k === 'updated_at' ? ' or later' : ''}`).join('; '));
      }
      const pausedAt = entry.paused ? entry.pausedAt : null;
      if (LIVE.includes(String(plan.status)) && row.paused_at !== pausedAt) {
        problems.push(`plan ${id} (case #${n}) is stored with paused_at ${short(row.paused_at)}, but its answers say ${entry.paused ? `paused at ${String(pausedAt)}` : 'not paused'}`);
      }
      const own = new Map((tasks.get(id) ?? []).map((t) => [t.status, t.n]));
      const expected = this.expectedTasks(entry);
      const describe = (m: Map<string, number>) => short([...m].sort().map(([s, k]) => `${k} ${s}`));
      if (describe(own) !== describe(expected)) {
        problems.push(`plan ${id} (case #${n}, ${String(plan.status)}${entry.paused ? ', paused' : ''}) has tasks ${describe(own)}, expected ${describe(expected)}`);
      }
    }
    for (const row of stored.plans) {
      if (!this.plans.has(row.id)) problems.push(`plan ${row.id} is stored but no answer acknowledged it: ${short(row)}`);
    }
    for (const t of stored.tasks) {
      if (!storedPlans.has(t.plan_id)) problems.push(`${t.n} task(s) of plan ${t.plan_id}, which is not stored`);
    }
    const storedUsers = new Map(stored.users.map((u) => [u.id, u]));
    for (const [id, { user, n }] of this.users) {
      const row = storedUsers.get(id);
      if (!row) problems.push(`user ${id} (acknowledged by case #${n}) is not stored`);
      else if (this.storedText(JSON.stringify([row.name, row.created_at])) !== this.storedText(JSON.stringify([user.name, user.created_at]))) {
        problems.push(`user ${id} (case #${n}) is stored as ${short([row.name, row.created_at])}, acknowledged ${short([user.name, user.created_at])}`);
      }
    }
    for (const row of stored.users) {
      if (!this.users.has(row.id)) problems.push(`user ${row.id} is stored but no answer acknowledged it: ${short(row)}`);
    }
    return {
      problems,
      figures: {
        plansAcknowledged: this.plans.size, plansStored: stored.plans.length, patches: this.patches, cancels: this.cancels,
        pauses: this.pauses, resumes: this.resumes, runs: this.runs, usersAcknowledged: this.users.size, usersStored: stored.users.length,
      },
    };
  }
}
