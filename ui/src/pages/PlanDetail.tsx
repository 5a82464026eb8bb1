import { useState } from 'preact/hooks';
import { Action, ACTION, api, BODY, ErrorLog, get, PLAN_TYPE, Plan, PlanState, post, Task } from '../api';
import { Badge, Card, ErrorBox, NoticeBox, type Notice } from '../components';
import { actionLabel, actionTarget, fmtMs, fmtRelative, fmtTime, kind, maskAction, maskedHeaders, scheduleText, unmaskHooks } from '../format';
import { errorText, usePoll } from '../hooks';
import type { Session } from '../session';

const REFRESH_MS = 2000;
const TIMELINE_ROWS = 100;

interface Detail {
  plan: Plan;
  tasks: Task[];
  errorLogs: ErrorLog[];
  state: PlanState;
  fires: number[];
}

async function loadDetail(id: string): Promise<Detail> {
  const path = `/plan/${encodeURIComponent(id)}`;
  const [summary, state, fires] = await Promise.all([
    get<{ plan: Plan; tasks: Task[]; error_logs: ErrorLog[] }>(`${path}/summary`),
    get<PlanState>(`${path}/state`),
    get<{ plan_id: string; fires: number[] }>(`${path}/fires?count=5`),
  ]);
  return { plan: summary.plan, tasks: summary.tasks, errorLogs: summary.error_logs, state, fires: fires.fires };
}

export function PlanDetail({ id }: { id: string; session: Session }) {
  const { data, error, reload } = usePoll(() => loadDetail(id), REFRESH_MS, [id]);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirmCancel, setConfirmCancel] = useState(false);
  const [editing, setEditing] = useState(false);
  const [showAll, setShowAll] = useState(false);

  const act = async (label: string, call: () => Promise<unknown>) => {
    setBusy(true);
    setNotice(null);
    try {
      await call();
      setNotice({ ok: true, text: label });
      await reload();
    } catch (e) {
      setNotice({ ok: false, text: errorText(e) });
    } finally {
      setBusy(false);
      setConfirmCancel(false);
    }
  };

  if (!data) {
    return (
      <div class="page">
        <p>
          <a href="#/plans">← Plans</a>
        </p>
        <ErrorBox error={error} />
        {!error && <p class="muted">Loading…</p>}
      </div>
    );
  }

  const { plan, state, tasks, errorLogs, fires } = data;
  const path = `/plan/${plan.id}`;
  const ended = state.status === 'COMPLETED' || state.status === 'CANCELLED';
  const paused = state.status === 'PAUSED';
  const errorsByTask = new Map<string, ErrorLog[]>();
  const hookErrors: ErrorLog[] = [];
  for (const log of errorLogs) {
    const taskId = log.type.task_id;
    if (taskId) errorsByTask.set(taskId, [...(errorsByTask.get(taskId) ?? []), log]);
    else hookErrors.push(log);
  }
  const newestFirst = [...tasks].reverse();
  const shown = showAll ? newestFirst : newestFirst.slice(0, TIMELINE_ROWS);

  return (
    <div class="page" data-testid="plan-detail" data-plan-id={plan.id}>
      <p>
        <a href="#/plans">← Plans</a>
      </p>
      <div class="page-head">
        <div>
          <h1>{plan.description || '(no description)'}</h1>
          <code class="muted">{plan.id}</code>
        </div>
        <div class="head-right">
          <Badge status={state.status} />
          <span data-testid="plan-state" data-status={state.status} hidden />
        </div>
      </div>
      <div class="toolbar">
        {!paused && (
          <button class="btn" data-testid="pause" disabled={busy || ended} onClick={() => act('Paused.', () => post(`${path}/pause`))}>
            Pause
          </button>
        )}
        {paused && (
          <button class="btn" data-testid="resume" disabled={busy} onClick={() => act('Resumed.', () => post(`${path}/resume`))}>
            Resume
          </button>
        )}
        <button class="btn" data-testid="run-now" disabled={busy || ended} onClick={() => act('Started a run now.', () => post(`${path}/run`))}>
          Run now
        </button>
        <button class="btn" data-testid="edit" disabled={ended} onClick={() => setEditing(!editing)}>
          {editing ? 'Close editor' : 'Edit'}
        </button>
        {!confirmCancel ? (
          <button class="btn btn-danger" data-testid="cancel" disabled={busy || ended} onClick={() => setConfirmCancel(true)}>
            Cancel plan
          </button>
        ) : (
          <span class="confirm">
            Cancel this plan and its child plans for good?
            <button class="btn btn-danger" data-testid="cancel-confirm" disabled={busy} onClick={() => act('Cancelled.', () => post(path))}>
              Yes, cancel
            </button>
            <button class="btn" onClick={() => setConfirmCancel(false)}>
              Keep it
            </button>
          </span>
        )}
      </div>
      <NoticeBox notice={notice} />
      <ErrorBox error={error} />
      {editing && !ended && (
        <EditPlan
          plan={plan}
          onSaved={async () => {
            setEditing(false);
            setNotice({ ok: true, text: 'Saved.' });
            await reload();
          }}
        />
      )}
      <div class="grid2">
        <Card title="Schedule">
          <dl class="facts" data-testid="schedule">
            <dt>Type</dt>
            <dd>{kind(plan.type.type)}</dd>
            {plan.type.type === PLAN_TYPE.cron ? (
              <>
                <dt>Expression</dt>
                <dd>
                  <code>{plan.type.expression ?? plan.period_time}</code>
                </dd>
                <dt>Time zone</dt>
                <dd>{plan.type.time_zone ?? 'UTC'}</dd>
              </>
            ) : (
              <>
                <dt>{plan.type.type === PLAN_TYPE.oneTime ? 'Delay' : 'Period'}</dt>
                <dd>
                  <code>{plan.period_time}</code>
                </dd>
              </>
            )}
            {plan.type.type !== PLAN_TYPE.oneTime && (
              <>
                <dt>Ends</dt>
                <dd>{plan.type.end_at ? fmtTime(plan.type.end_at) : 'never'}</dd>
                <dt>Overlap</dt>
                <dd>{state.overlap ?? plan.type.overlap ?? 'ALLOW'}</dd>
              </>
            )}
            <dt>Retries</dt>
            <dd>{plan.max_failure_retry} after a failed attempt</dd>
            {paused && (
              <>
                <dt>Paused</dt>
                <dd>{fmtTime(state.paused_at)}</dd>
              </>
            )}
            <dt>Created</dt>
            <dd>{fmtTime(plan.created_at)}</dd>
            <dt>Updated</dt>
            <dd>{fmtTime(plan.updated_at)}</dd>
            {plan.parent_plan_id && (
              <>
                <dt>Parent</dt>
                <dd>
                  <a href={`#/plans/${plan.parent_plan_id}`}>{plan.parent_plan_id}</a>
                </dd>
              </>
            )}
          </dl>
          <h3>Next fires</h3>
          <ol class="fires" data-testid="fires">
            {fires.map((f) => (
              <li key={f}>
                {fmtTime(f)} <span class="muted">{fmtRelative(f)}</span>
              </li>
            ))}
            {fires.length === 0 && <li class="muted none">{paused ? 'none while paused' : 'none: the plan has ended'}</li>}
          </ol>
          {paused && fires.length > 0 && <p class="muted small">Paused: these are the fires it would have if resumed now.</p>}
        </Card>
        <Card title="Action">
          <ActionFacts action={plan.action} />
          <h3>Hooks</h3>
          {plan.hook.length === 0 && <p class="muted">None.</p>}
          {plan.hook.map((h, i) => (
            <div class="hook" key={i} data-testid="hook">
              <span class="tag">{h.trigger}</span> <span class="tag">{actionLabel(h.action)}</span> {actionTarget(h.action)} <span class="muted">· {h.max_retry} retries</span>
            </div>
          ))}
        </Card>
      </div>
      <Card title={`Tasks (${tasks.length})`} actions={<span class="muted small">newest first · refreshes every 2 s</span>}>
        <table class="table" data-testid="timeline">
          <thead>
            <tr>
              <th>Status</th>
              <th>Due</th>
              <th>Executed</th>
              <th title="End of the last attempt minus the due time">Lateness</th>
              <th>Attempts</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((t) => {
              const logs = errorsByTask.get(t.id) ?? [];
              const attempts = logs.length + (t.status === 'SUCCESS' ? 1 : 0);
              const last = logs[logs.length - 1];
              return (
                <tr key={t.id} data-task-id={t.id} data-status={t.status}>
                  <td>
                    <Badge status={t.status} />
                  </td>
                  <td>{fmtTime(t.next_execution_at)}</td>
                  <td>{fmtTime(t.executed_at)}</td>
                  <td>{t.executed_at !== null && t.next_execution_at !== null ? fmtMs(t.executed_at - t.next_execution_at) : '—'}</td>
                  <td>{attempts || '—'}</td>
                  <td class="error-text" data-testid="task-error">
                    {last ? last.error : ''}
                    {logs.length > 1 && <span class="muted"> ({logs.length} failed attempts)</span>}
                  </td>
                </tr>
              );
            })}
            {tasks.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  No tasks.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {!showAll && newestFirst.length > TIMELINE_ROWS && (
          <button class="btn" onClick={() => setShowAll(true)}>
            Show all {newestFirst.length}
          </button>
        )}
      </Card>
      {hookErrors.length > 0 && (
        <Card title="Hook errors">
          <ul class="loglist" data-testid="hook-errors">
            {hookErrors
              .slice()
              .reverse()
              .map((l, i) => (
                <li key={i}>
                  <span class="muted">{fmtTime(l.timestamp)}</span> <span class="error-text">{l.error}</span>
                </li>
              ))}
          </ul>
        </Card>
      )}
    </div>
  );
}

function ActionFacts({ action }: { action: Action }) {
  const a = action;
  return (
    <dl class="facts" data-testid="action">
      <dt>Type</dt>
      <dd>{actionLabel(a)}</dd>
      {a.type === ACTION.rest && (
        <>
          <dt>Target</dt>
          <dd>
            <code>{actionTarget(a)}</code>
          </dd>
          <dt>Headers</dt>
          <dd>
            {Object.entries(maskedHeaders(a.headers)).map(([k, v]) => (
              <div key={k}>
                <code>
                  {k}: {v}
                </code>
              </div>
            ))}
          </dd>
          <dt>Body</dt>
          <dd>{(a.body as { type?: string } | undefined)?.type === BODY.json ? `JSON, ${String((a.body as { json_string?: string }).json_string ?? '').length} characters` : 'none'}</dd>
          <dt>Timeout</dt>
          <dd>{String(a.timeout ?? 2000)} ms</dd>
        </>
      )}
      {a.type === ACTION.slack && (
        <>
          <dt>Channel</dt>
          <dd>{String(a.channel)}</dd>
        </>
      )}
      {a.type === ACTION.email && (
        <>
          <dt>Recipient</dt>
          <dd>{String(a.recipient)}</dd>
          <dt>Subject</dt>
          <dd>{String(a.subject)}</dd>
        </>
      )}
      {a.type === ACTION.kafka && (
        <>
          <dt>Topic</dt>
          <dd>{String(a.topic)}</dd>
          <dt>Key</dt>
          <dd>{a.key === null || a.key === undefined ? '—' : String(a.key)}</dd>
        </>
      )}
      {a.type === ACTION.chained && (
        <>
          <dt>Creates</dt>
          <dd>
            <pre class="json">{JSON.stringify(maskAction(a.request, { bodySize: true }), null, 2)}</pre>
          </dd>
        </>
      )}
    </dl>
  );
}

function EditPlan({ plan: polled, onSaved }: { plan: Plan; onSaved(): void }) {
  // The plan as it was when the editor opened: the page keeps polling, and a masked value must be restored
  // from what the form was filled with, not from a plan that changed under it.
  const [plan] = useState(polled);
  const cron = plan.type.type === PLAN_TYPE.cron;
  const [period, setPeriod] = useState(cron ? '' : plan.period_time);
  const [retries, setRetries] = useState(String(plan.max_failure_retry));
  const [shownHooks] = useState(() => JSON.stringify(maskAction(plan.hook), null, 2));
  const [hooks, setHooks] = useState(shownHooks);
  const [error, setError] = useState<string | null>(null);
  const [hooksError, setHooksError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const save = async () => {
    setError(null);
    setHooksError(null);
    const body: Record<string, unknown> = { plan_id: plan.id, max_failure_retry: retries.trim() === '' ? null : Number(retries) };
    // Untouched hooks are not sent: re-sending them would rewrite the stored hooks from a copy the user never changed.
    if (hooks !== shownHooks) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(hooks);
      } catch (e) {
        setHooksError(`hooks: not valid JSON (${errorText(e)})`);
        return;
      }
      const { hooks: restored, problems } = unmaskHooks(parsed, plan.hook);
      if (problems.length > 0) {
        setHooksError(`hooks: ${problems.join('; ')}`);
        return;
      }
      body.hooks = restored;
    }
    if (!cron && period.trim() !== plan.period_time) body.period_time = period.trim();
    setSaving(true);
    try {
      await api('PATCH', '/plan', body);
      onSaved();
    } catch (e) {
      const text = errorText(e);
      if (text.startsWith('hooks')) setHooksError(text);
      else setError(text);
    } finally {
      setSaving(false);
    }
  };

  return (
    <Card title="Edit plan" class="edit">
      <form
        class="form"
        data-testid="edit-form"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <label>
          Period (ISO-8601 duration)
          <input name="period_time" value={period} disabled={cron} placeholder={cron ? 'a Cron plan keeps its expression' : 'PT30S'} onInput={(e) => setPeriod(e.currentTarget.value)} />
          {cron && <span class="hint">A Cron plan's expression cannot be changed; create a new plan instead.</span>}
        </label>
        <label>
          Max failure retries (0–100)
          <input name="max_failure_retry" type="number" min={0} max={100} value={retries} onInput={(e) => setRetries(e.currentTarget.value)} />
        </label>
        <label class="wide">
          Hooks (JSON list; a masked value •••••• or ••• is kept only while its hook keeps its trigger, method and URL)
          <textarea name="hooks" rows={8} class="mono" value={hooks} onInput={(e) => setHooks(e.currentTarget.value)} />
          {hooksError && (
            <span class="field-error" role="alert" data-testid="hooks-error" data-field-error="hooks">
              {hooksError}
            </span>
          )}
        </label>
        {error && (
          <div class="field-error wide" data-testid="edit-error">
            {error}
          </div>
        )}
        <div class="wide">
          <button class="btn btn-primary" type="submit" disabled={saving}>
            Save
          </button>
        </div>
      </form>
    </Card>
  );
}
