// What both probes (bench/probe.mjs, bench/probe-submit.mjs) stand on: a fresh database, Karya's queues
// emptied, a deployment of `kind` (optionally with V8 CPU profiles), a user; and, whatever happens, the
// processes stopped and the database dropped (unless kept) afterwards.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createUser, purgeKaryaQueues, startKarya } from './karya.mjs';
import { killAll } from './proc.mjs';
import { log } from './util.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const ADMIN = process.env.KARYA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const SERVICES = {
  redis: { host: '127.0.0.1', port: 6379 },
  rabbit: { host: '127.0.0.1', port: 5672, user: 'guest', password: 'guest', vhost: '/' },
};

/**
 * A RabbitMQ virtual host of this probe's own, so that two probes running at once do not consume (or purge)
 * each other's messages; '/' when rabbitmqctl is not at hand (then never run two probes at once).
 */
function ownVhost() {
  const vhost = `karya-probe-${process.pid}`;
  try {
    execFileSync('rabbitmqctl', ['add_vhost', vhost], { stdio: 'ignore' });
    execFileSync('rabbitmqctl', ['set_permissions', '-p', vhost, SERVICES.rabbit.user, '.*', '.*', '.*'], { stdio: 'ignore' });
    return { vhost, drop: () => execFileSync('rabbitmqctl', ['delete_vhost', vhost], { stdio: 'ignore' }) };
  } catch {
    return { vhost: '/', drop: () => undefined };
  }
}

/**
 * @param {{ kind: string, cpuProf: boolean, keepDb?: boolean, tuning?: any }} o `tuning`: startKarya's (default TUNING)
 * @param {(p: { dep: any, dir: string, dbName: string, dbUrl: string, userId: string }) => Promise<void>} body
 */
export async function withProbeDeployment(o, body) {
  const dir = mkdtempSync(join(tmpdir(), 'karya-probe-'));
  const dbName = `karya_probe_${process.pid}`;
  const admin = new pg.Client({ connectionString: ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN);
  url.pathname = `/${dbName}`;
  let dep;
  const { vhost, drop } = ownVhost();
  const services = { ...SERVICES, rabbit: { ...SERVICES.rabbit, vhost } };
  try {
    await purgeKaryaQueues(`amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`);
    const nodeArgs = o.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
    dep = await startKarya(o.kind, { root: ROOT, dir, pgUrl: url.toString(), services, nodeArgs, tuning: o.tuning });
    const userId = await createUser(dep.serverPort, 'probe');
    await body({ dep, dir, dbName, dbUrl: url.toString(), userId });
  } finally {
    if (dep) await dep.stop();
    await killAll();
    if (o.keepDb) log(`database kept: ${dbName}`);
    else await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    drop();
    log(`logs${o.cpuProf ? ' and profiles' : ''}: ${dir}`);
  }
}
