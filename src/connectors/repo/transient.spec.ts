import { createServer, Server } from 'node:net';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { createTestDatabase, TestDatabase } from '../../../test/support/postgres';
import { backoffMs, databaseTrouble, isDatabaseUnavailable, isTransientDatabaseError, withTransientRetry } from './transient';

/** What node-postgres and TypeORM hand over, in the shapes they really have (checked below against a server). */
const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });
const wrapped = (driverError: Error) => Object.assign(new Error(driverError.message), { name: 'QueryFailedError', driverError });

describe('databaseTrouble', () => {
  it.each([
    ['admin shutdown (pg_terminate_backend, a restart)', pgError('57P01')],
    ['crash shutdown', pgError('57P02')],
    ['server starting up', pgError('57P03')],
    ['too many connections', pgError('53300')],
    ['deadlock', pgError('40P01')],
    ['serialization failure', pgError('40001')],
    ['a connection exception (class 08)', pgError('08006')],
    ['connection refused', pgError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432')],
    ['connection reset', pgError('ECONNRESET')],
    ['broken pipe', pgError('EPIPE')],
    ['a connection that died under a query', new Error('Connection terminated unexpectedly')],
    ['a client left unusable by a connection error', new Error('Client has encountered a connection error and is not queryable')],
    ['a deadlock wrapped by TypeORM', wrapped(pgError('40P01'))],
    ['a lost connection wrapped by TypeORM', wrapped(new Error('Connection terminated unexpectedly'))],
    ['a lost connection as the cause of another error', new Error('outer', { cause: pgError('ECONNRESET') })],
  ])('%s is transient', (_, e) => {
    expect(databaseTrouble(e)).toBe('transient');
    expect(isTransientDatabaseError(e)).toBe(true);
    expect(isDatabaseUnavailable(e)).toBe(true);
  });

  it.each([
    ['statement_timeout (57014)', pgError('57014', 'canceling statement due to statement timeout')],
    ["node-postgres' query_timeout", new Error('Query read timeout')],
    ['no pooled connection in time', new Error('timeout exceeded when trying to connect')],
    ['a connect timeout', new Error('Connection terminated due to connection timeout')],
    ['a TCP connect timeout', pgError('ETIMEDOUT')],
    ['a statement timeout wrapped by TypeORM', wrapped(pgError('57014'))],
  ])('%s is a timeout: unavailable, but not retried (it would double the wait)', (_, e) => {
    expect(databaseTrouble(e)).toBe('timeout');
    expect(isTransientDatabaseError(e)).toBe(false);
    expect(isDatabaseUnavailable(e)).toBe(true);
  });

  it.each([
    ['a unique violation', pgError('23505')],
    ['a value too long', pgError('22001')],
    ['a protocol violation (a bug, not the network)', pgError('08P01')],
    ['a syntax error', wrapped(pgError('42601'))],
    ['a plain error', new Error('boom')],
    ['a string', 'Connection terminated unexpectedly'],
    ['null', null],
    ['undefined', undefined],
  ])('%s is none of these', (_, e) => {
    expect(databaseTrouble(e)).toBeNull();
    expect(isDatabaseUnavailable(e)).toBe(false);
  });

  it('does not loop on a cause chain that cycles', () => {
    const a: Error & { cause?: unknown } = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    expect(databaseTrouble(a)).toBeNull();
  });
});

describe('withTransientRetry', () => {
  const fast = { tries: 4, baseDelayMs: 1 };

  it('runs the work again while it fails transiently, and answers its first success', async () => {
    let calls = 0;
    const out = await withTransientRetry(async () => {
      if (++calls < 3) throw pgError('57P01');
      return 'ok';
    }, fast);
    expect(out).toBe('ok');
    expect(calls).toBe(3);
  });

  it('gives up after `tries` with the last error', async () => {
    let calls = 0;
    await expect(
      withTransientRetry(async () => {
        throw pgError('40P01', `deadlock ${++calls}`);
      }, fast),
    ).rejects.toThrow('deadlock 4');
    expect(calls).toBe(4);
  });

  it.each([
    ['a constraint violation', pgError('23505')],
    ['a statement timeout', pgError('57014')],
    ['an application error', new Error('Plan not found')],
  ])('does not run the work again after %s', async (_, error) => {
    let calls = 0;
    await expect(
      withTransientRetry(async () => {
        calls++;
        throw error;
      }, fast),
    ).rejects.toBe(error);
    expect(calls).toBe(1);
  });

  it('backs off exponentially, capped, with jitter between half and all of each step', () => {
    const retry = { tries: 6, baseDelayMs: 100, maxDelayMs: 300 };
    for (let i = 0; i < 200; i++) {
      const waits = [1, 2, 3, 4].map((a) => backoffMs(retry, a));
      expect(waits[0]).toBeGreaterThanOrEqual(50);
      expect(waits[0]).toBeLessThanOrEqual(100);
      expect(waits[1]).toBeGreaterThanOrEqual(100);
      expect(waits[1]).toBeLessThanOrEqual(200);
      expect(waits[2]).toBeGreaterThanOrEqual(150); // capped at 300
      expect(waits[3]).toBeLessThanOrEqual(300);
    }
  });
});

// The classifier is only as good as its knowledge of what the drivers throw: these are the real errors.
describe('what node-postgres and TypeORM really throw (real PostgreSQL)', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let admin: Client;
  let silent: Server | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    ds = new DataSource({ type: 'postgres', url: db.url, poolSize: 2 });
    await ds.initialize();
    admin = new Client({ connectionString: db.url });
    await admin.connect();
  });

  afterAll(async () => {
    silent?.close();
    await admin?.end();
    await ds?.destroy();
    await db?.drop();
  });

  /** Terminates the backend running `sql` as soon as it runs; true when one was terminated. */
  async function terminate(sql: string): Promise<boolean> {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE query = $1 AND state = 'active' AND pid <> pg_backend_pid()`,
        [sql],
      );
      if (rows.length > 0) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  it('a backend terminated under a statement, and the next statement on its pooled connection, are transient', async () => {
    const sql = 'SELECT pg_sleep(5) AS terminated_statement';
    const running = ds.query(sql).then(() => null, (e: unknown) => e);
    expect(await terminate(sql)).toBe(true);
    const killed = await running;
    expect((killed as { code?: string }).code).toBe('57P01');
    expect(isTransientDatabaseError(killed)).toBe(true);
    // The dead connection may be lent again before its close is noticed; whatever the next statement meets is transient.
    const next = await ds.query('SELECT 1').then(() => null, (e: unknown) => e);
    if (next !== null) expect(isTransientDatabaseError(next)).toBe(true);
    // withTransientRetry rides over it: the pool opens a fresh connection.
    await expect(withTransientRetry(() => ds.query('SELECT 1 AS one'))).resolves.toEqual([{ one: 1 }]);
  });

  it('a backend terminated inside a transaction is transient, and the whole transaction runs again', async () => {
    const sql = 'SELECT pg_sleep(5) AS terminated_in_transaction';
    await ds.query('CREATE TABLE retried (run int)');
    let runs = 0;
    const tx = withTransientRetry(() =>
      ds.transaction(async (m) => {
        runs++;
        await m.query('INSERT INTO retried (run) VALUES ($1)', [runs]);
        if (runs === 1) await m.query(sql);
        return runs;
      }),
    );
    expect(await terminate(sql)).toBe(true);
    await expect(tx).resolves.toBe(2);
    // The first run committed nothing.
    await expect(ds.query('SELECT run FROM retried')).resolves.toEqual([{ run: 2 }]);
  });

  it('a statement_timeout is a timeout', async () => {
    const e = await ds.transaction(async (m) => {
      await m.query(`SET LOCAL statement_timeout = 50`);
      return m.query('SELECT pg_sleep(2)');
    }).then(() => null, (err: unknown) => err);
    expect((e as { code?: string }).code).toBe('57014');
    expect(databaseTrouble(e)).toBe('timeout');
  });

  it('a refused connection is transient; a pool that cannot get a connection in time is a timeout', async () => {
    const refused = new DataSource({ type: 'postgres', url: 'postgres://postgres@127.0.0.1:1/postgres' });
    const e1 = await refused.initialize().then(() => null, (err: unknown) => err);
    expect(databaseTrouble(e1)).toBe('transient');

    silent = createServer(() => undefined); // accepts and never answers
    await new Promise<void>((r) => silent!.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const stuck = new DataSource({ type: 'postgres', url: `postgres://postgres@127.0.0.1:${port}/postgres`, connectTimeoutMS: 200 });
    const e2 = await stuck.initialize().then(() => null, (err: unknown) => err);
    expect(databaseTrouble(e2)).toBe('timeout');
  });

  it('an error in the statement itself (division by zero) is none of these', async () => {
    const e = await ds.query(`SELECT 1/0`).then(() => null, (err: unknown) => err);
    expect((e as { code?: string }).code).toBe('22012');
    expect(databaseTrouble(e)).toBeNull();
  });
});
