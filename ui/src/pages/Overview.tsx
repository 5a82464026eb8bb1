import { useMemo } from 'preact/hooks';
import { get, query, Stats } from '../api';
import { TimeChart } from '../chart';
import { Card, ErrorBox } from '../components';
import { fmtMs, fmtTime } from '../format';
import { usePoll } from '../hooks';
import type { Session } from '../session';

const REFRESH_MS = 5000;

export function Overview({ session }: { session: Session }) {
  const userId = session.whoami.kind === 'user' ? undefined : session.user.id;
  const { data, error } = usePoll(() => get<Stats>(`/stats${query({ minutes: 15, user_id: userId })}`), REFRESH_MS, [userId]);

  const charts = useMemo(() => {
    if (!data) return null;
    const x = data.buckets.map((b) => b.at / 1000);
    const per = data.bucket_seconds;
    const finished = data.buckets.map((b) => b.succeeded + b.failed);
    return {
      x,
      throughput: [
        { label: 'succeeded /s', color: '#1f9d55', values: data.buckets.map((b) => b.succeeded / per) },
        { label: 'failed /s', color: '#d64545', values: data.buckets.map((b) => b.failed / per) },
      ],
      throughputPoints: finished.filter((n) => n > 0).length,
      success: [{ label: 'success %', color: '#2f5bd3', values: data.buckets.map((b, i) => (finished[i] ? (100 * b.succeeded) / finished[i] : null)) }],
      latency: [
        { label: 'p50 ms', color: '#2f5bd3', values: data.buckets.map((b) => b.lateness_p50_ms) },
        { label: 'p99 ms', color: '#c27c0e', values: data.buckets.map((b) => b.lateness_p99_ms), dash: [6, 4] },
      ],
      latencyPoints: data.buckets.filter((b) => b.lateness_p50_ms !== null).length,
    };
  }, [data]);

  const t = data?.totals;
  const finished = t ? t.succeeded + t.failed : 0;
  return (
    <div class="page">
      <div class="page-head">
        <h1>Overview</h1>
        <span class="muted">
          Last 15 minutes{userId ? ` · ${session.user.name}` : ''} · refreshes every 5 s{data ? ` · as of ${fmtTime(data.to).slice(11, 19)}` : ''}
        </span>
      </div>
      <ErrorBox error={error} />
      <div class="stats" data-testid="headline">
        <div class="stat">
          <span class="stat-value" data-testid="total-succeeded">{t ? t.succeeded : '—'}</span>
          <span class="stat-label">succeeded</span>
        </div>
        <div class="stat">
          <span class={`stat-value ${t && t.failed > 0 ? 'bad' : ''}`} data-testid="total-failed">
            {t ? t.failed : '—'}
          </span>
          <span class="stat-label">failed</span>
        </div>
        <div class="stat">
          <span class="stat-value">{t && finished ? `${((100 * t.succeeded) / finished).toFixed(1)} %` : '—'}</span>
          <span class="stat-label">success rate</span>
        </div>
        <div class="stat">
          <span class="stat-value">{data ? (finished / (data.buckets.length * data.bucket_seconds)).toFixed(2) : '—'}</span>
          <span class="stat-label">tasks / s (avg)</span>
        </div>
        <div class="stat">
          <span class="stat-value">{fmtMs(t?.lateness_p50_ms)}</span>
          <span class="stat-label">lateness p50</span>
        </div>
        <div class="stat">
          <span class="stat-value">{fmtMs(t?.lateness_p99_ms)}</span>
          <span class="stat-label">lateness p99</span>
        </div>
      </div>
      {charts && (
        <div class="charts">
          <Card>
            <TimeChart id="chart-throughput" title="Throughput (tasks/s)" unit="tasks/s" x={charts.x} series={charts.throughput} points={charts.throughputPoints} />
          </Card>
          <Card>
            <TimeChart id="chart-success" title="Success rate (%)" unit="%" x={charts.x} series={charts.success} points={charts.throughputPoints} fixed={[0, 100]} />
          </Card>
          <Card>
            <TimeChart id="chart-lateness" title="Start lateness (ms)" unit="ms" x={charts.x} series={charts.latency} points={charts.latencyPoints} />
          </Card>
        </div>
      )}
      <p class="muted small">Counts are of finished attempts (a retry counts again), per 10 s, from the executors; they reach the server about 2 s after a task ends.</p>
    </div>
  );
}
