import { useState } from 'preact/hooks';
import { api, DeadLetter, get, query } from '../api';
import { Badge, Card, ErrorBox, Pager, NoticeBox, type Notice } from '../components';
import { fmtRelative, fmtTime, shortId } from '../format';
import { errorText, usePoll } from '../hooks';
import type { Session } from '../session';

const PAGE_SIZE = 20;

export function DeadLetters({ session }: { session: Session }) {
  const [page, setPage] = useState(0);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const userId = session.whoami.kind === 'user' ? undefined : session.user.id;
  const { data, error, reload } = usePoll(
    () => get<{ dead_letters: DeadLetter[]; total: number; offset: number }>(`/dead-letters${query({ user_id: userId, page })}`),
    5000,
    [userId, page],
  );

  const act = async (letter: DeadLetter, what: 'replay' | 'discard') => {
    setBusy(letter.id);
    setNotice(null);
    try {
      if (what === 'replay') await api('POST', `/dead-letters/${letter.id}/replay`);
      else await api('DELETE', `/dead-letters/${letter.id}`);
      setNotice({ ok: true, text: what === 'replay' ? `Replayed: ${letter.kind === 'TASK' ? 'the task runs again now' : 'the hook gets another try'}.` : 'Discarded.' });
      await reload();
    } catch (e) {
      setNotice({ ok: false, text: errorText(e) });
    } finally {
      setBusy(null);
    }
  };

  const letters = data?.dead_letters ?? [];
  return (
    <div class="page">
      <div class="page-head">
        <h1>Dead letters</h1>
        <span class="muted">Tasks and hooks that ran out of attempts{userId ? ` · ${session.user.name}` : ''}</span>
      </div>
      <NoticeBox notice={notice} />
      <ErrorBox error={error} />
      <Card>
        <table class="table" data-testid="dead-letters-table">
          <thead>
            <tr>
              <th>When</th>
              <th>Kind</th>
              <th>Plan</th>
              <th>Task</th>
              <th>Attempts</th>
              <th>Reason</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {letters.map((l) => (
              <tr key={l.id} data-dead-letter-id={l.id} data-plan-id={l.plan_id ?? ''}>
                <td title={fmtTime(l.created_at)}>{fmtRelative(l.created_at)}</td>
                <td>
                  <Badge status={l.kind} />
                </td>
                <td>{l.plan_id ? <a href={`#/plans/${l.plan_id}`}>{shortId(l.plan_id)}</a> : '—'}</td>
                <td>
                  <code>{shortId(l.task_id)}</code>
                </td>
                <td>{l.attempts}</td>
                <td class="error-text">{l.reason}</td>
                <td class="actions">
                  <button class="btn btn-small" data-testid="replay" disabled={busy !== null} onClick={() => act(l, 'replay')}>
                    Replay
                  </button>
                  <button class="btn btn-small btn-danger" data-testid="discard" disabled={busy !== null} onClick={() => act(l, 'discard')}>
                    Discard
                  </button>
                </td>
              </tr>
            ))}
            {data && letters.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  No dead letters.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {data && <Pager page={page} total={data.total} pageSize={PAGE_SIZE} onPage={setPage} />}
      </Card>
    </div>
  );
}
