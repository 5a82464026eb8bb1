import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * Where the real PostgreSQL is. .ci/run makes sure it runs on 127.0.0.1 with trust auth; override with
 * KARYA_TEST_PG_URL (a URL whose user may create databases).
 */
export const PG_ADMIN_URL = process.env.KARYA_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, empty database per suite, so suites never see each other's rows or schema. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `karya_test_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
