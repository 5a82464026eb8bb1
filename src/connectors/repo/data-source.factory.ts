import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { createPgConfig } from '@electric-sql/pglite/node-postgres';
import pg from 'pg';
import { DataSource, DataSourceOptions, MigrationInterface } from 'typeorm';
import { RepoConfig } from '../../config/karya-config';
import { boundedPgClient } from './bounded-pg-client';
import { KARYA_ENTITIES } from './entities/entities';
import { initialSchemaMigration } from './migrations/initial-schema.migration';
import { ApiKeys1765000000000 } from './migrations/api-keys.migration';
import { HookRetries1766000000000 } from './migrations/hook-retries.migration';
import { DeadLetters1767000000000 } from './migrations/dead-letters.migration';
import { Operations1769000000000 } from './migrations/operations.migration';
import { Schedules1768000000000 } from './migrations/schedules.migration';
import { PlansFillfactor1764000000000 } from './migrations/plans-fillfactor.migration';

export function karyaMigrations(partitions: number): (new () => MigrationInterface)[] {
  return [initialSchemaMigration(partitions), PlansFillfactor1764000000000, ApiKeys1765000000000, HookRetries1766000000000, DeadLetters1767000000000, Schedules1768000000000, Operations1769000000000];
}

/** An arbitrary constant naming Karya's migration advisory lock, so concurrent starts migrate once. */
const MIGRATION_LOCK_ID = 4_206_921_337;

/**
 * Builds (does not initialise) a TypeORM data source for the configured repo provider.
 * Both providers use TypeORM's postgres driver over node-postgres: psql with a real pool, pglite through
 * PGlite's own node-postgres adapter with a pool of exactly one connection (PGlite is one session;
 * more connections would share it and interleave transactions).
 */
export function buildDataSource(config: RepoConfig): DataSource {
  const common = {
    type: 'postgres' as const,
    entities: KARYA_ENTITIES,
    migrations: karyaMigrations(config.partitions),
    migrationsTableName: 'karya_migrations',
    synchronize: false,
    // Failed queries reach their callers as errors (and are logged there); TypeORM's own log would repeat them.
    logging: false,
  };
  if (config.provider === 'pglite') {
    const dataDir = config.dataDir === 'memory' ? 'memory://' : resolve(config.dataDir);
    if (dataDir !== 'memory://') mkdirSync(dataDir, { recursive: true });
    const pglite = new PGlite(dataDir);
    const options: DataSourceOptions = {
      ...common,
      driver: pg,
      poolSize: 1,
      extra: createPgConfig(pglite),
      uuidExtension: 'pgcrypto',
      installExtensions: false,
    };
    const ds = new DataSource(options);
    // PGlite is owned by us, not by node-postgres: close it after TypeORM lets go of its pool.
    const destroy = ds.destroy.bind(ds);
    ds.destroy = async () => {
      if (ds.isInitialized) await destroy();
      await pglite.close();
    };
    return ds;
  }
  if (!config.url) throw new Error('providers.yml: repo provider psql needs a connection (url or hikari)');
  return new DataSource({
    ...common,
    url: config.url,
    poolSize: config.poolSize,
    // pg-pool's connectionTimeoutMillis: the wait for a pooled connection, opening a new one included.
    connectTimeoutMS: config.connectionTimeout,
    installExtensions: false,
    extra: {
      keepAlive: true,
      Client: boundedPgClient({ connectTimeout: config.connectTimeout, statementTimeout: config.statementTimeout }),
    },
  });
}

/**
 * Runs pending migrations. On real Postgres several processes may start together: an advisory lock on
 * a dedicated connection makes one of them migrate while the others wait, then find nothing to do.
 */
export async function runMigrations(ds: DataSource, config: RepoConfig): Promise<void> {
  if (config.provider === 'pglite') {
    // One process owns a PGlite database, and its single connection cannot hold a lock while migrating.
    await ds.runMigrations({ transaction: 'all' });
  } else {
    // Its own connections, without the statement bound: waiting here while another process migrates, or a
    // migration building an index on a big table, is slow work, not a database that stopped answering.
    const migrator = buildDataSource({ ...config, statementTimeout: 0, poolSize: 2 });
    await migrator.initialize();
    const runner = migrator.createQueryRunner();
    try {
      await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
      await migrator.runMigrations({ transaction: 'all' });
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
      await runner.release();
      await migrator.destroy();
    }
  }
  await verifyPartitions(ds, config.partitions);
}

export class PartitionMismatchError extends Error {}

/** Hash partitioning is fixed when the table is created; a changed repo.partitions would misroute tasks. */
export async function verifyPartitions(ds: DataSource, expected: number): Promise<void> {
  const rows: { n: number }[] = await ds.query(
    `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'tasks'::regclass`,
  );
  const actual = rows[0]?.n ?? 0;
  if (actual !== expected) {
    throw new PartitionMismatchError(
      `providers.yml: repo.partitions is ${expected} but the database's tasks table has ${actual} partitions; ` +
        `the partition count cannot change after the first start`,
    );
  }
}
