// Submission probe (a developer's tool, not the benchmark): starts a Karya server and measures
// POST /v1/plan with autocannon; --cpu-prof writes the server's V8 CPU profile into the printed directory.
//
//   node bench/probe-submit.mjs [--seconds 10] [--connections 64] [--cpu-prof]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cpuDelta, cpuSnapshot, formatCpu } from './lib/cpu.mjs';
import { createUser, startKarya, submissionBench } from './lib/karya.mjs';
import { childNames, killAll } from './lib/proc.mjs';
import { log } from './lib/util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    kind: { type: 'string', default: 'split' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const ADMIN = process.env.KARYA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SERVICES = { redis: { host: '127.0.0.1', port: 6379 }, rabbit: { host: '127.0.0.1', port: 5672, user: 'guest', password: 'guest' } };
const DIR = mkdtempSync(join(tmpdir(), 'karya-probe-'));
const dbName = `karya_probe_${process.pid}`;
const admin = new pg.Client({ connectionString: ADMIN });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const url = new URL(ADMIN);
url.pathname = `/${dbName}`;
let dep;
try {
  const nodeArgs = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${DIR}`] : [];
  dep = await startKarya(args.kind, { root: ROOT, dir: DIR, pgUrl: url.toString(), services: SERVICES, nodeArgs });
  const userId = await createUser(dep.serverPort, 'probe');
  // Warm-up, then the measured run.
  await submissionBench(dep.serverPort, userId, 1, { connections: Number(args.connections), seconds: 2 });
  const c0 = cpuSnapshot(childNames());
  const r = await submissionBench(dep.serverPort, userId, 1, { connections: Number(args.connections), seconds: Number(args.seconds) });
  log(`submission: ${r.rate}/s, latency p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}`);
  log(`CPU: ${formatCpu(cpuDelta(c0, cpuSnapshot(childNames())))}`);
} finally {
  if (dep) await dep.stop();
  await killAll();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  log(`logs${args['cpu-prof'] ? ' and profiles' : ''}: ${DIR}`);
}
