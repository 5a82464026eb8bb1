import { withoutUrlQueries } from '../actions/redact';

/**
 * The JSON fields every pipeline log line about one task carries (README "Logs"), so a task's story is one
 * filter away: `plan_id`, `task_id`, `attempt` and `dispatch_seq` (the fencing token of the dispatch; null
 * where the line is about no one dispatch, as for a hook). Built only on paths that log, never per task on the
 * success path.
 */
export interface TaskLogFields {
  plan_id: string | null;
  task_id: string | null;
  attempt: number | null;
  dispatch_seq: number | null;
}

/** From an ExecutorMessage, a ClaimedTask or anything shaped like them. */
export function taskLogFields(t: { planId: string; taskId: string; attempt: number; dispatchSeq?: number }): TaskLogFields {
  return { plan_id: t.planId, task_id: t.taskId, attempt: t.attempt, dispatch_seq: t.dispatchSeq ?? null };
}

/** From a queue message not parsed (or not parseable): whatever of the four it holds, with its type. */
export function rawTaskLogFields(raw: Record<string, unknown>): TaskLogFields {
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  const int = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
  return { plan_id: text(raw.planId), task_id: text(raw.taskId), attempt: int(raw.attempt), dispatch_seq: int(raw.dispatchSeq) };
}

/** Characters of a failure text a log line keeps: the whole text is in the database (error log, dead letters). */
export const LOGGED_ERROR_LENGTH = 512;

/**
 * A failure text as a log line's `error` field: cut to LOGGED_ERROR_LENGTH (it quotes up to kilobytes of a
 * target's response body, and every line is scrubbed by patterns) and without the query strings of the URLs
 * it quotes (`REST call failed --- [500 | https://…?sig=…]`), whose tokens no pattern can recognise.
 */
export function loggedError(text: string): string {
  const cut = text.length > LOGGED_ERROR_LENGTH ? `${text.slice(0, LOGGED_ERROR_LENGTH)}… [${text.length} chars]` : text;
  return withoutUrlQueries(cut);
}
