import { useState } from 'preact/hooks';
import { get, Plan, query } from '../api';
import { Badge, Card, ErrorBox, Pager } from '../components';
import { actionLabel, actionTarget, fmtRelative, fmtTime, scheduleText, shortId } from '../format';
import { navigate, usePoll } from '../hooks';
import type { Session } from '../session';

const STATUSES = ['CREATED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED'];
const PAGE_SIZE = 20;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function Plans({ session }: { session: Session }) {
  const [page, setPage] = useState(0);
  const [status, setStatus] = useState('');
  const [search, setSearch] = useState('');
  const { data, error, loading } = usePoll(
    () => get<{ plans: Plan[]; total: number; offset: number }>(`/plan${query({ user_id: session.user.id, page, status })}`),
    10_000,
    [session.user.id, page, status],
  );
  const needle = search.trim().toLowerCase();
  const plans = (data?.plans ?? []).filter((p) => !needle || p.id.toLowerCase().includes(needle) || p.description.toLowerCase().includes(needle));

  return (
    <div class="page">
      <div class="page-head">
        <h1>Plans</h1>
        <a class="btn btn-primary" href="#/new">
          New plan
        </a>
      </div>
      <Card>
        <form
          class="filters"
          onSubmit={(e) => {
            e.preventDefault();
            // An exact plan id opens it, even when it is not on this page.
            if (UUID.test(search.trim())) navigate(`/plans/${search.trim().toLowerCase()}`);
          }}
        >
          <label>
            Status
            <select
              name="status"
              value={status}
              onChange={(e) => {
                setStatus(e.currentTarget.value);
                setPage(0);
              }}
            >
              <option value="">All</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label class="grow">
            Search
            <input name="search" type="search" placeholder="Description or id on this page; a full plan id opens it (Enter)" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
          </label>
        </form>
        <ErrorBox error={error} />
        <table class="table" data-testid="plans-table">
          <thead>
            <tr>
              <th>Description</th>
              <th>Id</th>
              <th>Schedule</th>
              <th>Action</th>
              <th>Status</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {plans.map((p) => (
              <tr key={p.id} data-plan-id={p.id}>
                <td>
                  <a href={`#/plans/${p.id}`}>{p.description || <span class="muted">(no description)</span>}</a>
                </td>
                <td>
                  <code title={p.id}>{shortId(p.id)}</code>
                </td>
                <td>{scheduleText(p)}</td>
                <td>
                  <span class="tag">{actionLabel(p.action)}</span> <span class="ellipsis">{actionTarget(p.action)}</span>
                </td>
                <td>
                  <Badge status={status === 'PAUSED' ? 'PAUSED' : p.status} />
                </td>
                <td title={fmtTime(p.created_at)}>{fmtRelative(p.created_at)}</td>
              </tr>
            ))}
            {!loading && plans.length === 0 && (
              <tr>
                <td colSpan={6} class="empty">
                  {needle ? 'No plan on this page matches.' : 'No plans yet.'} <a href="#/new">Create one</a>
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
