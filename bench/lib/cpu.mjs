// Where the CPU goes during a phase: utime+stime of every process from /proc, grouped by component
// (Karya roles, sink, BullMQ worker, the harness itself, PostgreSQL, RabbitMQ, Redis, everything else).
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux

/** @param {Record<string, number>} named pid → group for the processes the harness started */
export function cpuSnapshot(named) {
  /** @type {Record<string, number>} */
  const ticks = {};
  let dirs = [];
  try {
    dirs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return { at: Date.now(), ticks };
  }
  for (const d of dirs) {
    let stat;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    const used = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    const pid = Number(d);
    const group = named[pid] ?? (pid === process.pid ? 'harness' : comm === 'postgres' ? 'postgres'
      : comm.startsWith('beam') || comm === 'erl_child_setup' || comm === 'epmd' ? 'rabbitmq'
      : comm.startsWith('redis') ? 'redis' : 'other');
    ticks[group] = (ticks[group] ?? 0) + used;
  }
  return { at: Date.now(), ticks };
}

/** CPU seconds and average cores per group between two snapshots (exited processes are not counted). */
export function cpuDelta(a, b) {
  const wall = (b.at - a.at) / 1000;
  /** @type {Record<string, { cpuS: number, cores: number }>} */
  const out = {};
  for (const g of new Set([...Object.keys(a.ticks), ...Object.keys(b.ticks)])) {
    const s = Math.max(0, ((b.ticks[g] ?? 0) - (a.ticks[g] ?? 0)) / TICKS);
    if (s >= 0.05) out[g] = { cpuS: Math.round(s * 100) / 100, cores: Math.round((s / wall) * 100) / 100 };
  }
  return { wallS: Math.round(wall * 100) / 100, groups: out };
}

export function formatCpu(d) {
  return Object.entries(d.groups).sort((x, y) => y[1].cpuS - x[1].cpuS)
    .map(([g, v]) => `${g} ${v.cores.toFixed(2)}`).join(', ');
}
