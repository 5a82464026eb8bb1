// The report: one table (Karya split, Karya all, the peers BullMQ, graphile-worker and pg-boss, ratios,
// fraction of the machine's limits), the limits themselves, the tuning each side used, and the issue's
// targets (goals, not assertions).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export const fmt = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const ratio = (a, b) => (a == null || b == null || b === 0 ? '–' : `${(a / b).toFixed(2)}×`);
const pctOf = (a, b) => (a == null || b == null || b === 0 ? '–' : `${((100 * a) / b).toFixed(0)} %`);

/** Limits expressed in tasks/s: how many tasks per second each resource could carry on its own. */
export function taskLimits(limits) {
  return [
    { name: 'pg claim', perTask: 1, rate: limits.pgClaim.rate, what: 'rows claimed/s (batched UPDATE … SKIP LOCKED … RETURNING, 500 a batch, 3 conns)' },
    // The ceiling of a design that commits once per task. Karya's executor group-commits (one statement per
    // batch of checks, one per batch of results), so it is a reference point rather than Karya's bound.
    { name: 'pg commits', perTask: 1, rate: limits.pgCommit8.rate, what: 'single-row commits/s with 8 connections (one commit per task would stop here)' },
    { name: 'rabbitmq', perTask: 1, rate: limits.rabbit.rate, what: 'persistent msgs/s published with confirms and consumed with acks' },
    { name: 'sink', perTask: 1, rate: limits.sink.rate, what: 'POST/s from a tight keep-alive client (64 connections)' },
  ];
}

function tightest(limits, rate) {
  if (rate == null) return '–';
  const l = taskLimits(limits).sort((a, b) => a.rate - b.rate)[0];
  return `${pctOf(rate, l.rate)} of ${l.name}`;
}

export function goals(r) {
  const s = r.karya.split;
  const b = r.bullmq;
  const gw = r.graphile;
  const lostOf = (x) => (x ? x.lost : 0);
  const dupOf = (x) => (x ? x.duplicates : 0);
  const all = [
    ...Object.values(r.karya).flatMap((k) => [k.burst, k.steady, k.burstBacklog, k.burstHousekeeping]),
    ...[b, gw, r.pgboss].flatMap((p) => [p?.burst, p?.steady]),
  ].filter(Boolean);
  const lostTotal = all.reduce((n, x) => n + lostOf(x), 0);
  const dupTotal = all.reduce((n, x) => n + dupOf(x), 0);
  const list = [];
  const add = (goal, value, ok) => list.push({ goal, value, met: value == null ? null : ok });
  if (s) {
    add('burst ≥ 5,000 tasks/s (split roles)', s.burst.rate, s.burst.rate >= 5000);
    if (b) add('burst ≥ 1.0× BullMQ (split roles)', s.burst.rate && b.burst.rate ? s.burst.rate / b.burst.rate : null, s.burst.rate >= b.burst.rate);
    if (gw) add('burst ≥ 2× graphile-worker (split roles)', s.burst.rate && gw.burst.rate ? s.burst.rate / gw.burst.rate : null, s.burst.rate >= 2 * gw.burst.rate);
    add('steady p99 ≤ 25 ms (split roles)', s.steady.lateness.p99, s.steady.lateness.p99 <= 25);
    add('steady p50 ≤ 5 ms (split roles)', s.steady.lateness.p50, s.steady.lateness.p50 <= 5);
    add('submission ≥ 3,000/s (split roles)', s.submission.rate, s.submission.rate >= 3000);
    if (s.burstBacklog) {
      const dr = s.burstBacklog.rate / s.burst.rate - 1;
      add('backlog: drain rate within 10 % of the empty-table run', dr, Math.abs(dr) <= 0.1 || dr > 0);
      const dl = s.burstBacklog.lateness.p99 / s.burst.lateness.p99 - 1;
      add('backlog: lateness p99 within 10 % of the empty-table run', dl, dl <= 0.1);
    }
    if (s.burstHousekeeping) {
      // The run without it = the burst of the first split deployment (empty table, no retention).
      const h = s.burstHousekeeping;
      const dr = h.rate / s.burst.rate - 1;
      add('housekeeping: drain rate within 10 % of the run without it', dr, Math.abs(dr) <= 0.1 || dr > 0);
      const dl = h.lateness.p99 / s.burst.lateness.p99 - 1;
      add('housekeeping: lateness p99 within 10 % of the run without it', dl, dl <= 0.1);
    }
  }
  add('zero lost (every workload)', lostTotal, lostTotal === 0);
  add('zero duplicates (every workload)', dupTotal, dupTotal === 0);
  return { lostTotal, dupTotal, list };
}

export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) => `| ${r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w, c) => (c === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

export function formatReport(r) {
  const S = r.karya.split;
  const A = r.karya.all;
  const B = r.bullmq;
  const G = r.graphile;
  const PB = r.pgboss;
  const m = r.machine;
  const L = r.limits;
  const st = r.settings;
  const rows = [['figure', 'Karya split', 'Karya all', 'BullMQ', 'graphile-worker', 'pg-boss', 'split / BullMQ', 'split / graphile', 'all / BullMQ', 'split vs limit']];
  /** Karya-only rows: the peers' and the ratios' cells stay empty. */
  const karyaRow = (name, split, extra = '') => rows.push([name, split, '', '', '', '', '', '', '', extra]);
  const row = (name, get, digits = 0, limitOf) => {
    const [s, a, b, g, pb] = [S, A, B, G, PB].map((x) => (x ? get(x) ?? null : null));
    rows.push([name, fmt(s, digits), fmt(a, digits), fmt(b, digits), fmt(g, digits), fmt(pb, digits), ratio(s, b), ratio(s, g), ratio(a, b), limitOf ? limitOf(s) : '']);
  };
  row(`burst drain, tasks/s (${fmt(st.burst)} due at T) ↑`, (x) => x.burst?.rate, 0, (v) => tightest(L, v));
  for (const p of ['p50', 'p90', 'p99', 'max']) row(`burst lateness ${p}, ms ↓`, (x) => x.burst?.lateness[p], 1);
  row('burst due-time spread, ms (server stamps created_at)', (x) => x.burst?.dueSpreadMs, 0);
  row('burst lost', (x) => x.burst?.lost);
  row('burst duplicates', (x) => x.burst?.duplicates);
  const steadyName = st.steady.seconds === st.steadyAll.seconds ? `${st.steady.rate}/s × ${st.steady.seconds} s` : `${st.steady.rate}/s × ${st.steady.seconds} s; all: ${st.steadyAll.seconds} s`;
  for (const p of ['p50', 'p99', 'max']) row(`steady lateness ${p}, ms (${steadyName}) ↓`, (x) => x.steady?.lateness[p], 1);
  row('steady lost', (x) => x.steady?.lost);
  row('steady duplicates', (x) => x.steady?.duplicates);
  row(`submission/s (${st.submission.connections} conns, ${st.submission.seconds} s) ↑`, (x) => x.submission?.rate, 0,
    (v) => (v == null ? '–' : `${pctOf(v, L.pgCommit8.rate)} of pg commits`));
  row('submission latency p99, ms ↓', (x) => x.submission?.latencyMs.p99, 1);
  if (S?.burstBacklog) {
    const bb = S.burstBacklog;
    karyaRow(`burst + ${fmt(bb.backlog)} stored future tasks, tasks/s ↑`, fmt(bb.rate), `${ratio(bb.rate, S.burst.rate)} of empty table`);
    karyaRow('burst + backlog lateness p99, ms ↓', fmt(bb.lateness.p99, 1), `${ratio(bb.lateness.p99, S.burst.lateness.p99)} of empty table`);
    karyaRow('burst + backlog lost / duplicates', `${bb.lost} / ${bb.duplicates}`);
  }
  if (S?.burstHousekeeping) {
    const h = S.burstHousekeeping;
    const x = h.expired;
    karyaRow(`burst while deleting ${fmt(x.rows)} expired tasks, tasks/s ↑`, fmt(h.rate), `${ratio(h.rate, S.burst.rate)} of the run without it`);
    karyaRow('burst while deleting, lateness p99, ms ↓', fmt(h.lateness.p99, 1), `${ratio(h.lateness.p99, S.burst.lateness.p99)} of the run without it`);
    karyaRow('burst while deleting, lost / duplicates', `${h.lost} / ${h.duplicates}`);
    karyaRow('expired tasks deleted before T / by the burst\'s end', `${fmt(x.deletedBeforeT)} / ${fmt(x.deletedByBurstEnd)}`);
    karyaRow(`all expired tasks deleted in, s (retention ${x.retention})`, x.finished ? fmt(x.fullDeletionMs / 1000, 1) : `not done: ${fmt(x.leftAtEnd)} left`);
  }

  const lim = [['limit (measured in this run)', 'rate/s', 'as tasks/s', 'Karya split burst', 'Karya all burst', 'BullMQ burst', 'graphile-worker burst', 'pg-boss burst']];
  for (const l of taskLimits(L)) {
    // BullMQ uses neither PostgreSQL nor RabbitMQ: only the sink bounds it among these. graphile-worker and
    // pg-boss use PostgreSQL and the sink, not RabbitMQ.
    const pgPeer = (x) => (l.name === 'rabbitmq' ? 'n/a' : pctOf(x?.burst?.rate, l.rate));
    lim.push([l.what, fmt(l.rate * l.perTask), fmt(l.rate), pctOf(S?.burst?.rate, l.rate), pctOf(A?.burst?.rate, l.rate), l.name === 'sink' ? pctOf(B?.burst?.rate, l.rate) : 'n/a', pgPeer(G), pgPeer(PB)]);
  }
  lim.push(['single-row commits/s, 1 connection', fmt(L.pgCommit1.rate), '', '', '', '', '', '']);

  const t = r.tuning;
  const k = t.karya;
  const tuning = [
    `Karya (both deployments): scheduler workers ${k.scheduler.workers}, fetcher.channelCapacity ${k.scheduler.channelCapacity} (held ≤ ${k.scheduler.channelCapacity * 20}), ` +
      `pollFrequency ${k.scheduler.pollFrequency} ms, leaseTime ${k.scheduler.leaseTime} ms; executor concurrency (prefetch) ${k.executor.concurrency}, ` +
      `restapi keepAliveTime ${k.executor.restapi.keepAliveTime} ms (${k.note}); repo.partitions ${k.partitions}; ` +
      `pool sizes: split server ${k.pool.server} / scheduler ${k.pool.scheduler} / executor ${k.pool.executor}, all ${k.pool.all}.`,
    `BullMQ: ${t.bullmq.workerProcesses} worker process, concurrency ${t.bullmq.concurrency}, undici pool of ${t.bullmq.sinkConnections} keep-alive connections to the sink, ` +
      `addBulk chunks of ${t.bullmq.addBulkChunk}, ${t.bullmq.jobOptions}. Submission figure for BullMQ = queue.add() one job at a time with the same concurrency (no HTTP).`,
  ];
  const tg = t.graphile;
  if (tg) {
    tuning.push(`graphile-worker ${tg.version} (database of its own): ${tg.workerProcesses} worker process, concurrentJobs ${tg.concurrentJobs}, maxPoolSize ${tg.maxPoolSize}, ` +
      `pollInterval ${tg.pollInterval} ms, localQueue.size ${tg.localQueueSize}, completeJobBatchDelay ${tg.completeJobBatchDelay}, failJobBatchDelay ${tg.failJobBatchDelay}, LISTEN/NOTIFY ${tg.listenNotify}; ` +
      `undici pool of ${tg.sinkConnections} connections to the sink; addJobs (add_jobs) chunks of ${tg.addJobsChunk}, producer pool ${tg.producerPoolSize}; ${tg.jobOptions}. Submission figure = addJob() one job at a time.`);
  }
  const tp = t.pgboss;
  if (tp) {
    tuning.push(`pg-boss ${tp.version} (database of its own): ${tp.workerProcesses} worker process with work() × ${tp.workers}, batchSize ${tp.batchSize} (a batch's jobs run concurrently), ` +
      `pollingIntervalSeconds ${tp.pollingIntervalSeconds} (its minimum; no LISTEN/NOTIFY), pool ${tp.poolSize}; undici pool of ${tp.sinkConnections} connections to the sink; ` +
      `insert() chunks of ${tp.insertChunk}, producer pool ${tp.producerPoolSize}; ${tp.jobOptions}. Submission figure = send() one job at a time.`);
  }

  const cpuLines = [];
  const cpuLine = (name, c) => {
    if (!c) return;
    const parts = Object.entries(c.groups).sort((x, y) => y[1].cpuS - x[1].cpuS).map(([k, v]) => `${k} ${v.cores.toFixed(2)}`);
    cpuLines.push(`- ${name} (${c.wallS} s): ${parts.join(', ')}`);
  };
  for (const [k, v] of Object.entries(r.karya)) {
    cpuLine(`Karya ${k}, burst drain`, v.burst?.cpu);
    cpuLine(`Karya ${k}, steady window`, v.steady?.cpu);
    cpuLine(`Karya ${k}, submission`, v.submission?.cpu);
    cpuLine(`Karya ${k}, burst drain with backlog`, v.burstBacklog?.cpu);
    cpuLine(`Karya ${k}, burst drain while the housekeeper deletes`, v.burstHousekeeping?.cpu);
  }
  cpuLine('BullMQ, burst drain', B?.burst?.cpu);
  cpuLine('BullMQ, steady window', B?.steady?.cpu);
  cpuLine('graphile-worker, burst drain', G?.burst?.cpu);
  cpuLine('graphile-worker, steady window', G?.steady?.cpu);
  cpuLine('pg-boss, burst drain', PB?.burst?.cpu);
  cpuLine('pg-boss, steady window', PB?.steady?.cpu);

  const g = r.goals.list.map((x) => `- ${x.met === null ? '?' : x.met ? 'met ' : 'MISS'}  ${x.goal}: ${typeof x.value === 'number' && Math.abs(x.value) < 10 && !Number.isInteger(x.value) ? x.value.toFixed(2) : fmt(x.value, 1)}`);

  return [
    `Karya benchmark — profile ${r.profile} — ${r.startedAt} — ${r.durationS} s`,
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB RAM, Linux ${m.kernel}; Node ${m.node}; PostgreSQL ${m.postgres} (synchronous_commit ${m.postgresSettings.synchronous_commit}, shared_buffers ${m.postgresSettings.shared_buffers}×8kB); Redis ${m.redis}; RabbitMQ ${m.rabbitmq}`,
    '',
    table(rows),
    '',
    'Lateness = sink receive time − due time (Karya: the task\'s stored due time; the peers: the due time the job carried). ↑ higher is better, ↓ lower is better.',
    ...(st.pgPeers && (G || PB) ? [
      `graphile-worker and pg-boss ran smaller workloads in this profile: burst ${fmt(st.pgPeers.burst)}, steady ${st.pgPeers.steady.rate}/s × ${st.pgPeers.steady.seconds} s, ` +
        `submission ${st.pgPeers.submission.seconds} s (their rows and the split / graphile ratio are not comparable with the rest).`,
    ] : []),
    'Burst rate = distinct tasks / (last receive − T). Lost = expected − distinct Idempotency-Keys at the sink; duplicates = calls beyond the first per key.',
    ...(S?.burstHousekeeping ? [
      `Burst while deleting: a fresh split deployment with scheduler.yml retention ${S.burstHousekeeping.expired.retention}; ${fmt(S.burstHousekeeping.expired.rows)} SUCCESS tasks of 30 days ago ` +
        `(${S.burstHousekeeping.expired.plans >= S.burstHousekeeping.expired.rows ? 'each with its COMPLETED OneTime plan' : `over ${fmt(S.burstHousekeeping.expired.plans)} COMPLETED Recurring plans`}) stored before its scheduler started; ` +
        'the burst is submitted once the housekeeper has begun deleting. "The run without it" = the split burst above. Deletion time = first count of expired tasks that went down → first that read 0 (counted every 1-5 s).',
    ] : []),
    '',
    table(lim),
    '',
    `CPU cores used on average (of ${m.cpus}), by component:`,
    ...cpuLines,
    '',
    'Tuning:',
    ...tuning.map((x) => `- ${x}`),
    '',
    'Targets (goals, not asserted):',
    ...g,
  ].join('\n');
}

const START = '<!-- bench:latest-run:start -->';
const END = '<!-- bench:latest-run:end -->';

/** Rewrites the generated section of BENCHMARKS.md (between the markers) with this run's report. */
export function updateBenchmarksMd(path, r, report, resultFile) {
  const section = [
    START,
    `_Generated by \`npm run bench -- --profile ${r.profile}\` on ${r.startedAt}; raw numbers in \`${resultFile}\`._`,
    '',
    '```text',
    report,
    '```',
    END,
  ].join('\n');
  let text = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\n';
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.trimEnd()}\n\n## Latest run\n\n${section}\n`;
  writeFileSync(path, text);
}
