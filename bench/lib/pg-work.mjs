// PostgreSQL's work per task, for the drain probe: rows written per table (inserted, updated, of which HOT,
// deleted) from pg_stat_user_tables, and WAL from pg_stat_statements (per database, so other databases'
// traffic on a shared server does not count) or, when that extension is not loaded, from pg_stat_wal
// (the whole cluster: only clean on an otherwise idle server, which the report says).
//
// pg_stat_statements needs `shared_preload_libraries = 'pg_stat_statements'` and a restart:
//   psql -U postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" && pg_ctlcluster 15 main restart
import { sleep } from './proc.mjs';

/** Whether pg_stat_statements can be used in this database (creating the extension when it is loaded). */
export async function enablePgStatements(db) {
  const { rows } = await db.query(`SELECT current_setting('shared_preload_libraries') ~ 'pg_stat_statements' AS loaded`);
  if (!rows[0].loaded) return false;
  await db.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  return true;
}

async function tableRows(db) {
  const { rows } = await db.query(
    `SELECT relname, n_tup_ins::float8 AS ins, n_tup_upd::float8 AS upd, n_tup_hot_upd::float8 AS hot, n_tup_del::float8 AS del
     FROM pg_stat_user_tables`,
  );
  /** Partitions (tasks_part_1 …) are summed under their parent's name. */
  const out = {};
  for (const r of rows) {
    const name = r.relname.replace(/_(part_)?p?\d+$/, '');
    const t = (out[name] ??= { ins: 0, upd: 0, hot: 0, del: 0 });
    t.ins += r.ins; t.upd += r.upd; t.hot += r.hot; t.del += r.del;
  }
  return out;
}

/** A snapshot of the counters; `statements`: whether pg_stat_statements is used (see enablePgStatements). */
export async function pgWorkSnapshot(db, statements) {
  // Table counters reach the shared statistics up to a second after a backend goes idle: read until stable.
  let tables = await tableRows(db);
  for (let i = 0; i < 10; i++) {
    await sleep(600);
    const again = await tableRows(db);
    const same = JSON.stringify(again) === JSON.stringify(tables);
    tables = again;
    if (same) break;
  }
  const wal = statements
    ? (await db.query(
        `SELECT sum(wal_bytes)::float8 AS bytes, sum(wal_records)::float8 AS records, sum(wal_fpi)::float8 AS fpi,
                sum(total_exec_time)::float8 AS exec_ms, sum(calls)::float8 AS calls
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT ILIKE '%pg_stat%'`,
      )).rows[0]
    : (await db.query(`SELECT wal_bytes::float8 AS bytes, wal_records::float8 AS records, wal_fpi::float8 AS fpi FROM pg_stat_wal`)).rows[0];
  return { tables, wal, statements };
}

/** Per-task figures between two snapshots. */
export function pgWorkDelta(a, b, tasks) {
  const per = (x, y) => Math.round((((y ?? 0) - (x ?? 0)) / tasks) * 100) / 100;
  const tables = {};
  for (const [name, t] of Object.entries(b.tables)) {
    const s = a.tables[name] ?? { ins: 0, upd: 0, hot: 0, del: 0 };
    const d = { ins: per(s.ins, t.ins), upd: per(s.upd, t.upd), hot: per(s.hot, t.hot), del: per(s.del, t.del) };
    if (d.ins || d.upd || d.del) tables[name] = d;
  }
  return {
    source: b.statements ? 'pg_stat_statements (this database)' : 'pg_stat_wal (whole cluster)',
    walBytes: per(a.wal.bytes, b.wal.bytes),
    walRecords: per(a.wal.records, b.wal.records),
    walFpi: per(a.wal.fpi, b.wal.fpi),
    execMs: b.statements ? per(a.wal.exec_ms, b.wal.exec_ms) : null,
    statements: b.statements ? per(a.wal.calls, b.wal.calls) : null,
    tables,
  };
}

export function formatPgWork(d) {
  const rows = Object.entries(d.tables)
    .map(([n, t]) => `${n}: ins ${t.ins} upd ${t.upd} (HOT ${t.hot}) del ${t.del}`)
    .join('; ');
  const exec = d.execMs === null ? '' : `, statements ${d.statements}, exec ${d.execMs} ms`;
  return `per task: WAL ${d.walBytes} B in ${d.walRecords} records (${d.walFpi} full pages) [${d.source}]${exec}; rows ${rows}`;
}
