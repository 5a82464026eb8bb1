import type { ComponentChildren } from 'preact';

const BADGE_TONE: Record<string, string> = {
  SUCCESS: 'good',
  COMPLETED: 'good',
  RUNNING: 'info',
  PROCESSING: 'info',
  CREATED: 'neutral',
  PAUSED: 'warn',
  FAILURE: 'bad',
  CANCELLED: 'muted',
  TASK: 'neutral',
  HOOK: 'neutral',
};

export function Badge({ status }: { status: string }) {
  return (
    <span class={`badge badge-${BADGE_TONE[status] ?? 'neutral'}`} data-status={status}>
      {status}
    </span>
  );
}

export function ErrorBox({ error, testId = 'error' }: { error: string | null; testId?: string }) {
  if (!error) return null;
  return (
    <div class="alert" role="alert" data-testid={testId}>
      {error}
    </div>
  );
}

/** The outcome of a button (replay, pause, …): a status line when it worked, an alert when the API refused. */
export interface Notice {
  ok: boolean;
  text: string;
}

export function NoticeBox({ notice }: { notice: Notice | null }) {
  if (!notice) return null;
  return (
    <div class={notice.ok ? 'notice' : 'alert'} role={notice.ok ? 'status' : 'alert'} data-testid={notice.ok ? 'notice' : 'action-error'}>
      {notice.text}
    </div>
  );
}

export function Card({ title, children, actions, class: cls }: { title?: string; children: ComponentChildren; actions?: ComponentChildren; class?: string }) {
  return (
    <section class={`card ${cls ?? ''}`}>
      {(title || actions) && (
        <header class="card-head">
          {title && <h2>{title}</h2>}
          {actions && <div class="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}

export function Pager({ page, total, pageSize, onPage }: { page: number; total: number; pageSize: number; onPage: (p: number) => void }) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return (
    <div class="pager" data-testid="pager">
      <button class="btn" disabled={page <= 0} onClick={() => onPage(page - 1)}>
        ← Previous
      </button>
      <span>
        Page {page + 1} of {pages} · {total} in all
      </span>
      <button class="btn" disabled={page + 1 >= pages} onClick={() => onPage(page + 1)}>
        Next →
      </button>
    </div>
  );
}
