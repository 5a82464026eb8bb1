// The services the harnesses run on (PostgreSQL, Redis, RabbitMQ on 127.0.0.1, overridable by environment),
// admin access to PostgreSQL, and a description of the machine for the results.
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import amqp from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { killAll } from './proc.mjs';
import { log, round } from './util.mjs';

export const SERVICES = {
  pgAdmin: process.env.KARYA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redis: { host: '127.0.0.1', port: Number(process.env.KARYA_BENCH_REDIS_PORT ?? 6379) },
  rabbit: { host: '127.0.0.1', port: Number(process.env.KARYA_BENCH_RABBIT_PORT ?? 5672), user: 'guest', password: 'guest' },
};
export const AMQP_URL = `amqp://${SERVICES.rabbit.user}:${SERVICES.rabbit.password}@${SERVICES.rabbit.host}:${SERVICES.rabbit.port}`;

/** The URL of database `name` on the admin URL's server. */
export function dbUrl(name) {
  const u = new URL(SERVICES.pgAdmin);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function adminQuery(sql) {
  const c = new pg.Client({ connectionString: SERVICES.pgAdmin });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function machine() {
  const cpuModel = (() => {
    try {
      return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model;
    } catch {
      return cpus()[0]?.model;
    }
  })();
  const pgv = (await adminQuery('SHOW server_version')).rows[0].server_version;
  const pgSettings = Object.fromEntries((await adminQuery(
    `SELECT name, setting FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections', 'wal_level', 'autovacuum')`,
  )).rows.map((r) => [r.name, r.setting]));
  const redis = new Redis({ ...SERVICES.redis, lazyConnect: true });
  await redis.connect();
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
  redis.disconnect();
  const conn = await amqp.connect(AMQP_URL);
  const rabbitVersion = conn.connection?.serverProperties?.version;
  await conn.close();
  return {
    cpus: cpus().length,
    cpuModel,
    memGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    postgres: pgv,
    postgresSettings: pgSettings,
    redis: redisVersion,
    rabbitmq: rabbitVersion,
  };
}

/**
 * Undoes a run, whatever happened: the registered steps last first (a failing one is logged, the rest still
 * run), then every process the harness started, then the databases it created.
 */
export async function runCleanup(cleanups, databases) {
  while (cleanups.length > 0) {
    const step = cleanups.pop();
    try {
      await step();
    } catch (e) {
      log(`cleanup: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  await killAll();
  for (const name of databases.splice(0)) {
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((e) => log(`cleanup: drop ${name}: ${e.message}`));
  }
}
