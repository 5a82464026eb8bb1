import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ACTION, Action, BODY, Overlap, PLAN_TYPE, Plan, post } from '../api';
import { Card } from '../components';
import { errorText, navigate } from '../hooks';
import type { Session } from '../session';

type ActionKind = 'rest' | 'slack' | 'email' | 'kafka' | 'chained';
type TypeKind = 'oneTime' | 'recurring' | 'cron';

interface HookForm {
  trigger: 'ON_FAILURE' | 'ON_COMPLETION';
  protocol: string;
  method: string;
  base_url: string;
  max_retry: string;
}

interface Form {
  description: string;
  type: TypeKind;
  period: string;
  endAt: string;
  overlap: Overlap;
  expression: string;
  timeZone: string;
  maxFailureRetry: string;
  action: ActionKind;
  protocol: string;
  method: string;
  baseUrl: string;
  headers: string;
  body: string;
  timeout: string;
  channel: string;
  message: string;
  recipient: string;
  subject: string;
  topic: string;
  key: string;
  chained: string;
  hooks: HookForm[];
}

const INITIAL: Form = {
  description: '',
  type: 'recurring',
  period: 'PT30S',
  endAt: '',
  overlap: 'ALLOW',
  expression: '*/5 * * * *',
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
  maxFailureRetry: '3',
  action: 'rest',
  protocol: 'HTTP',
  method: 'POST',
  baseUrl: '',
  headers: 'content-type: application/json',
  body: '',
  timeout: '2000',
  channel: '',
  message: '',
  recipient: '',
  subject: '',
  topic: '',
  key: '',
  chained: '',
  hooks: [],
};

const CHAINED_EXAMPLE = `{
  "description": "child",
  "period_time": "PT10S",
  "plan_type": { "type": "${PLAN_TYPE.oneTime}" },
  "action": { "type": "${ACTION.rest}", "base_url": "example.com/child" }
}`;

/** A problem found before sending: named by the same field path the API would use. */
class FieldProblem extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

function intOrRaw(text: string): number | string | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  // A non-number goes as typed, so the API's 400 names the field and the value.
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new FieldProblem('action.headers', `line ${i + 1} is not "Name: value", got ${JSON.stringify(line)}`);
    out[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  });
  return out;
}

function buildAction(f: Form, userId: string): Action {
  switch (f.action) {
    case 'rest':
      return {
        type: ACTION.rest,
        base_url: f.baseUrl.trim(),
        protocol: f.protocol,
        method: f.method,
        headers: parseHeaders(f.headers),
        body: f.body.trim() ? { type: BODY.json, json_string: f.body } : { type: BODY.empty },
        ...(intOrRaw(f.timeout) !== undefined && { timeout: intOrRaw(f.timeout) }),
      };
    case 'slack':
      return { type: ACTION.slack, channel: f.channel, message: f.message };
    case 'email':
      return { type: ACTION.email, recipient: f.recipient, subject: f.subject, message: f.message };
    case 'kafka':
      return { type: ACTION.kafka, topic: f.topic, message: f.message, key: f.key === '' ? null : f.key };
    case 'chained': {
      let request: unknown;
      try {
        request = JSON.parse(f.chained);
      } catch (e) {
        throw new FieldProblem('action.request', `not valid JSON (${errorText(e)})`);
      }
      if (request && typeof request === 'object' && !Array.isArray(request) && !('user_id' in request)) (request as Record<string, unknown>).user_id = userId;
      return { type: ACTION.chained, request };
    }
  }
}

function buildRequest(f: Form, userId: string): Record<string, unknown> {
  const endAt = f.endAt ? new Date(f.endAt).getTime() : null;
  const planType =
    f.type === 'oneTime'
      ? { type: PLAN_TYPE.oneTime }
      : f.type === 'recurring'
        ? { type: PLAN_TYPE.recurring, end_at: endAt, overlap: f.overlap }
        : { type: PLAN_TYPE.cron, expression: f.expression, time_zone: f.timeZone, end_at: endAt, overlap: f.overlap };
  return {
    user_id: userId,
    description: f.description,
    ...(f.type !== 'cron' && { period_time: f.period.trim() }),
    plan_type: planType,
    action: buildAction(f, userId),
    hooks: f.hooks.map((h) => ({
      trigger: h.trigger,
      action: { type: ACTION.rest, protocol: h.protocol, method: h.method, base_url: h.base_url.trim() },
      ...(intOrRaw(h.max_retry) !== undefined && { max_retry: intOrRaw(h.max_retry) }),
    })),
    ...(intOrRaw(f.maxFailureRetry) !== undefined && { max_failure_retry: intOrRaw(f.maxFailureRetry) }),
  };
}

/** The inputs on screen, by the API's field path; an error goes to the longest one its path starts with. */
function fieldPaths(f: Form): string[] {
  const common = ['user_id', 'description', 'plan_type', 'max_failure_retry', 'action', 'hooks'];
  const type = f.type === 'cron' ? ['plan_type.expression', 'plan_type.time_zone', 'plan_type.end_at', 'plan_type.overlap', 'period_time'] : ['period_time'];
  if (f.type === 'recurring') type.push('plan_type.end_at', 'plan_type.overlap');
  const action: Record<ActionKind, string[]> = {
    rest: ['action.base_url', 'action.protocol', 'action.method', 'action.headers', 'action.body', 'action.timeout'],
    slack: ['action.channel', 'action.message'],
    email: ['action.recipient', 'action.subject', 'action.message'],
    kafka: ['action.topic', 'action.key', 'action.message'],
    chained: ['action.request'],
  };
  const hooks = f.hooks.flatMap((_h, i) => [`hooks[${i}]`, `hooks[${i}].trigger`, `hooks[${i}].action`, `hooks[${i}].max_retry`]);
  return [...common, ...type, ...action[f.action], ...hooks];
}

const FIELD_PATH = /^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*): /;

/** Which input a 400 text belongs to: the field path it starts with, matched to the inputs on screen. */
export function fieldOf(message: string, paths: string[]): string | null {
  const m = FIELD_PATH.exec(message);
  if (!m) return null;
  const path = m[1];
  let best: string | null = null;
  for (const p of paths) {
    const boundary = path.length === p.length || path[p.length] === '.' || path[p.length] === '[';
    if (path.startsWith(p) && boundary && (!best || p.length > best.length)) best = p;
  }
  return best;
}

/** An input with its label and, when the last error names it, the error under it. */
function Field({ err, path, label, children, wide, hint }: { err: { field: string | null; text: string } | null; path: string; label: string; children: ComponentChildren; wide?: boolean; hint?: string }) {
  const mine = err?.field === path;
  return (
    <label class={`${wide ? 'wide' : ''} ${mine ? 'has-error' : ''}`} data-field={path}>
      {label}
      {children}
      {hint && <span class="hint">{hint}</span>}
      {mine && (
        <span class="field-error" data-testid="field-error" data-field-error={path}>
          {err.text}
        </span>
      )}
    </label>
  );
}

export function CreatePlan({ session }: { session: Session }) {
  const [f, setF] = useState<Form>(INITIAL);
  const [error, setError] = useState<{ field: string | null; text: string } | null>(null);
  const [saving, setSaving] = useState(false);
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((old) => ({ ...old, [k]: v }));
  const setHook = (i: number, patch: Partial<HookForm>) => setF((old) => ({ ...old, hooks: old.hooks.map((h, j) => (j === i ? { ...h, ...patch } : h)) }));

  const submit = async () => {
    setError(null);
    let body: Record<string, unknown>;
    try {
      body = buildRequest(f, session.user.id);
    } catch (e) {
      setError({ field: e instanceof FieldProblem ? e.path : null, text: errorText(e) });
      return;
    }
    setSaving(true);
    try {
      const plan = await post<Plan>('/plan', body);
      navigate(`/plans/${plan.id}`);
    } catch (e) {
      const text = errorText(e);
      setError({ field: fieldOf(text, fieldPaths(f)), text });
    } finally {
      setSaving(false);
    }
  };

  return (
    <div class="page">
      <div class="page-head">
        <h1>New plan</h1>
        <span class="muted">for {session.user.name}</span>
      </div>
      {error && error.field === null && (
        <div class="alert" role="alert" data-testid="form-error">
          {error.text}
        </div>
      )}
      <form
        class="create"
        data-testid="create-form"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Card title="Plan">
          <div class="form">
            <Field err={error} path="description" label="Description" wide>
              <input name="description" value={f.description} maxLength={255} onInput={(e) => set('description', e.currentTarget.value)} />
            </Field>
            <Field err={error} path="plan_type" label="Type">
              <select name="plan_type" value={f.type} onChange={(e) => set('type', e.currentTarget.value as TypeKind)}>
                <option value="oneTime">One time (after a delay)</option>
                <option value="recurring">Recurring (every period)</option>
                <option value="cron">Cron</option>
              </select>
            </Field>
            {f.type !== 'cron' && (
              <Field err={error} path="period_time" label={f.type === 'oneTime' ? 'Delay (ISO-8601 duration)' : 'Period (ISO-8601 duration)'} hint="e.g. PT5S, PT10M, PT1H, P1D">
                <input name="period_time" value={f.period} onInput={(e) => set('period', e.currentTarget.value)} />
              </Field>
            )}
            {f.type === 'cron' && (
              <>
                <Field err={error} path="plan_type.expression" label="Cron expression" hint="minute hour day month weekday (6 fields: seconds first)">
                  <input name="expression" class="mono" value={f.expression} onInput={(e) => set('expression', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="plan_type.time_zone" label="Time zone (IANA)">
                  <input name="time_zone" value={f.timeZone} onInput={(e) => set('timeZone', e.currentTarget.value)} />
                </Field>
              </>
            )}
            {f.type !== 'oneTime' && (
              <>
                <Field err={error} path="plan_type.end_at" label="Ends at (optional, your local time)">
                  <input name="end_at" type="datetime-local" step={1} value={f.endAt} onInput={(e) => set('endAt', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="plan_type.overlap" label="Overlap" hint="when an occurrence is due while the previous one still runs">
                  <select name="overlap" value={f.overlap} onChange={(e) => set('overlap', e.currentTarget.value as Overlap)}>
                    <option value="ALLOW">ALLOW: run anyway</option>
                    <option value="SKIP">SKIP: skip it</option>
                    <option value="BUFFER_ONE">BUFFER_ONE: run one after</option>
                  </select>
                </Field>
              </>
            )}
            <Field err={error} path="max_failure_retry" label="Max failure retries (0–100)">
              <input name="max_failure_retry" type="number" min={0} max={100} value={f.maxFailureRetry} onInput={(e) => set('maxFailureRetry', e.currentTarget.value)} />
            </Field>
          </div>
        </Card>
        <Card title="Action">
          <div class="form">
            <Field err={error} path="action" label="Action type">
              <select name="action_type" value={f.action} onChange={(e) => set('action', e.currentTarget.value as ActionKind)}>
                <option value="rest">REST call</option>
                <option value="slack">Slack message</option>
                <option value="email">Email</option>
                <option value="kafka">Kafka message</option>
                <option value="chained">Chained plan</option>
              </select>
            </Field>
            {f.action === 'rest' && (
              <>
                <Field err={error} path="action.method" label="Method">
                  <select name="method" value={f.method} onChange={(e) => set('method', e.currentTarget.value)}>
                    {['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => (
                      <option key={m}>{m}</option>
                    ))}
                  </select>
                </Field>
                <Field err={error} path="action.protocol" label="Protocol">
                  <select name="protocol" value={f.protocol} onChange={(e) => set('protocol', e.currentTarget.value)}>
                    <option>HTTP</option>
                    <option>HTTPS</option>
                  </select>
                </Field>
                <Field err={error} path="action.base_url" label="URL (host[:port][/path], no scheme)" wide>
                  <input name="base_url" placeholder="api.example.com/hooks/run" value={f.baseUrl} onInput={(e) => set('baseUrl', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.headers" label="Headers (one “Name: value” a line)" wide>
                  <textarea name="headers" rows={3} class="mono" value={f.headers} onInput={(e) => set('headers', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.body" label="JSON body (empty: none)" wide>
                  <textarea name="body" rows={4} class="mono" placeholder='{"hello": "world"}' value={f.body} onInput={(e) => set('body', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.timeout" label="Timeout (ms)">
                  <input name="timeout" type="number" min={1} value={f.timeout} onInput={(e) => set('timeout', e.currentTarget.value)} />
                </Field>
              </>
            )}
            {f.action === 'slack' && (
              <>
                <Field err={error} path="action.channel" label="Channel">
                  <input name="channel" placeholder="#alerts" value={f.channel} onInput={(e) => set('channel', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.message" label="Message (Slack Block Kit blocks, as JSON)" wide>
                  <textarea name="message" rows={4} class="mono" value={f.message} onInput={(e) => set('message', e.currentTarget.value)} />
                </Field>
              </>
            )}
            {f.action === 'email' && (
              <>
                <Field err={error} path="action.recipient" label="Recipient">
                  <input name="recipient" type="email" value={f.recipient} onInput={(e) => set('recipient', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.subject" label="Subject">
                  <input name="subject" value={f.subject} onInput={(e) => set('subject', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.message" label="Message (HTML)" wide>
                  <textarea name="message" rows={4} value={f.message} onInput={(e) => set('message', e.currentTarget.value)} />
                </Field>
              </>
            )}
            {f.action === 'kafka' && (
              <>
                <Field err={error} path="action.topic" label="Topic">
                  <input name="topic" value={f.topic} onInput={(e) => set('topic', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.key" label="Key (optional)">
                  <input name="key" value={f.key} onInput={(e) => set('key', e.currentTarget.value)} />
                </Field>
                <Field err={error} path="action.message" label="Message" wide>
                  <textarea name="message" rows={4} class="mono" value={f.message} onInput={(e) => set('message', e.currentTarget.value)} />
                </Field>
              </>
            )}
            {f.action === 'chained' && (
              <Field err={error} path="action.request" label="The plan to create (a SubmitPlanRequest as JSON; user_id defaults to you)" wide>
                <textarea name="chained" rows={9} class="mono" placeholder={CHAINED_EXAMPLE} value={f.chained} onInput={(e) => set('chained', e.currentTarget.value)} />
              </Field>
            )}
          </div>
        </Card>
        <Card
          title="Hooks"
          actions={
            <>
              <button type="button" class="btn btn-small" data-testid="add-hook" onClick={() => set('hooks', [...f.hooks, { trigger: 'ON_FAILURE', protocol: 'HTTP', method: 'POST', base_url: '', max_retry: '3' }])}>
                Add hook
              </button>
            </>
          }
        >
          {f.hooks.length === 0 && <p class="muted">No hooks. A hook calls a URL when the plan fails (ON_FAILURE) or completes (ON_COMPLETION).</p>}
          {f.hooks.map((h, i) => (
            <div class="form hook-form" key={i}>
              <Field err={error} path={`hooks[${i}].trigger`} label="Trigger">
                <select name={`hooks[${i}].trigger`} value={h.trigger} onChange={(e) => setHook(i, { trigger: e.currentTarget.value as HookForm['trigger'] })}>
                  <option>ON_FAILURE</option>
                  <option>ON_COMPLETION</option>
                </select>
              </Field>
              <Field err={error} path={`hooks[${i}]`} label="Method">
                <select name={`hooks[${i}].method`} value={h.method} onChange={(e) => setHook(i, { method: e.currentTarget.value })}>
                  {['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].map((m) => (
                    <option key={m}>{m}</option>
                  ))}
                </select>
              </Field>
              <Field err={error} path={`hooks[${i}].action`} label="URL (host[:port][/path])">
                <input name={`hooks[${i}].base_url`} value={h.base_url} onInput={(e) => setHook(i, { base_url: e.currentTarget.value })} />
              </Field>
              <Field err={error} path={`hooks[${i}].max_retry`} label="Max retries">
                <input name={`hooks[${i}].max_retry`} type="number" min={0} max={100} value={h.max_retry} onInput={(e) => setHook(i, { max_retry: e.currentTarget.value })} />
              </Field>
              <div class="hook-remove">
                <button type="button" class="btn btn-small" onClick={() => set('hooks', f.hooks.filter((_x, j) => j !== i))}>
                  Remove
                </button>
              </div>
            </div>
          ))}
        </Card>
        <div class="row">
          <button class="btn btn-primary" type="submit" data-testid="create" disabled={saving}>
            Create plan
          </button>
          <a class="btn" href="#/plans">
            Cancel
          </a>
        </div>
      </form>
    </div>
  );
}
