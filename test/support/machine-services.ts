import { execFile, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { RABBIT, REDIS } from './real-services';

/**
 * Stops and starts the machine's own PostgreSQL, Redis and RabbitMQ, the ones every suite uses, exactly as
 * .ci/run starts them. Only the chaos suite calls this, and it must always put a service back: see
 * `ensureAllRunningSync`, meant for a process 'exit' guard.
 */

const run = promisify(execFile);
const PG_PORT = 5432;

export type ServiceName = 'postgres' | 'redis' | 'rabbitmq';

/** The installed PostgreSQL major version (the cluster .ci/run starts), e.g. "15". */
function pgVersion(): string {
  const versions = readdirSync('/etc/postgresql').sort((a, b) => Number(a) - Number(b));
  const latest = versions[versions.length - 1];
  if (!latest) throw new Error('no PostgreSQL cluster under /etc/postgresql');
  return latest;
}

const REDIS_START_ARGS = [
  '--daemonize', 'yes', '--bind', '127.0.0.1', '-::1', '--port', String(REDIS.port), '--save', '', '--appendonly', 'no',
  '--dir', '/var/lib/redis', '--logfile', '/var/log/redis/ci.log',
];

/** True when the service answers; never throws. */
export async function isUp(service: ServiceName): Promise<boolean> {
  try {
    switch (service) {
      case 'postgres':
        await run('pg_isready', ['-h', '127.0.0.1', '-p', String(PG_PORT), '-q'], { timeout: 5000 });
        return true;
      case 'redis':
        return (await run('redis-cli', ['-h', REDIS.host, '-p', String(REDIS.port), 'ping'], { timeout: 5000 })).stdout.trim() === 'PONG';
      case 'rabbitmq':
        await run('rabbitmqctl', ['-q', 'await_startup', '--timeout', '5'], { timeout: 10_000 });
        return true;
    }
  } catch {
    return false;
  }
}

export async function stopService(service: ServiceName): Promise<void> {
  switch (service) {
    case 'postgres':
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'stop'], { timeout: 60_000 });
      return;
    case 'redis':
      // Answers with a closed connection, which redis-cli reports as an error: what counts is that it is gone.
      await run('redis-cli', ['-h', REDIS.host, '-p', String(REDIS.port), 'shutdown', 'nosave'], { timeout: 10_000 }).catch(() => undefined);
      await waitUntil(async () => !(await isUp('redis')), 10_000, 'Redis to stop');
      return;
    case 'rabbitmq':
      await run('rabbitmqctl', ['-q', 'stop_app'], { timeout: 60_000 });
      return;
  }
}

export async function startService(service: ServiceName): Promise<void> {
  switch (service) {
    case 'postgres':
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'start'], { timeout: 60_000 });
      break;
    case 'redis':
      await run('mkdir', ['-p', '/var/lib/redis', '/var/log/redis']);
      await run('redis-server', REDIS_START_ARGS, { timeout: 10_000 });
      break;
    case 'rabbitmq':
      await run('rabbitmqctl', ['-q', 'start_app'], { timeout: 60_000 });
      break;
  }
  await waitUntil(() => isUp(service), 60_000, `${service} to answer`);
}

/**
 * Synchronous, for a process 'exit' handler (which cannot wait for promises): starts whatever is not up.
 * Each check is cheap when the service runs, so this is safe to call whatever state the test left.
 */
export function ensureAllRunningSync(): void {
  const ok = (cmd: string, args: string[], timeout = 10_000) => spawnSync(cmd, args, { timeout, stdio: 'ignore' }).status === 0;
  if (!ok('pg_isready', ['-h', '127.0.0.1', '-p', String(PG_PORT), '-q'])) {
    ok('pg_ctlcluster', ['--skip-systemctl-redirect', pgVersion(), 'main', 'start'], 60_000);
  }
  if (spawnSync('redis-cli', ['-h', REDIS.host, '-p', String(REDIS.port), 'ping'], { timeout: 5000 }).stdout?.toString().trim() !== 'PONG') {
    ok('mkdir', ['-p', '/var/lib/redis', '/var/log/redis']);
    ok('redis-server', REDIS_START_ARGS);
  }
  if (!ok('rabbitmqctl', ['-q', 'await_startup', '--timeout', '5'], 10_000)) {
    ok('rabbitmqctl', ['-q', 'start_app'], 60_000);
    ok('rabbitmqctl', ['-q', 'await_startup', '--timeout', '60'], 70_000);
  }
}

/**
 * A RabbitMQ virtual host of its own, so that Karya processes of other test runs or benchmarks on the same
 * broker (same queue names) neither take this run's messages nor purge them. `delete` removes it with all
 * its queues.
 */
export async function createVhost(name: string): Promise<{ name: string; delete(): Promise<void> }> {
  await run('rabbitmqctl', ['-q', 'add_vhost', name], { timeout: 30_000 });
  await run('rabbitmqctl', ['-q', 'set_permissions', '-p', name, 'guest', '.*', '.*', '.*'], { timeout: 30_000 });
  return {
    name,
    delete: async () => void (await run('rabbitmqctl', ['-q', 'delete_vhost', name], { timeout: 30_000 })),
  };
}

/** The suite restarts services on this machine only: refuses when the tests were pointed elsewhere. */
export function assertLocalDefaults(pgAdminUrl: string): void {
  const pg = new URL(pgAdminUrl);
  const local = ['127.0.0.1', 'localhost'].includes(pg.hostname) && Number(pg.port || PG_PORT) === PG_PORT
    && REDIS.port === 6379 && RABBIT.port === 5672;
  if (!local) throw new Error('the chaos suite restarts the machine\'s own services: it needs the default 127.0.0.1 ports');
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
