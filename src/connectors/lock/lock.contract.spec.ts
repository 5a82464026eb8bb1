import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { LockConfig, LockProvider } from '../../config/karya-config';
import { describeLockContract } from './lock.contract';
import { LockModule } from './lock.module';
import { DistributedLock } from './lock.port';
import { MemoryLock } from './memory.lock';
import { RedisLock } from './redis.lock';

const REDIS_URL = 'redis://127.0.0.1:6379';
/** A port nothing listens on: connections are refused at once. */
const DEAD_URL = 'redis://127.0.0.1:6390';
/** Isolates this run's keys from other runs and from anything else using the same Redis. */
const PREFIX = `karya:test:${randomUUID()}:`;

function lockConfig(provider: LockProvider, overrides: Partial<LockConfig> = {}): LockConfig {
  return {
    provider,
    waitTime: 200,
    leaseTime: 300,
    clusterMode: false,
    clusterNodes: [REDIS_URL],
    connectTimeout: 1_000,
    commandTimeout: 1_000,
    ...overrides,
  };
}

/** Every adapter a test builds, so none is left holding a socket or a timer whatever a test does. */
const created: DistributedLock[] = [];
function track<T extends DistributedLock>(lock: T): T {
  created.push(lock);
  return lock;
}
afterEach(async () => {
  await Promise.all(created.splice(0).map((lock) => lock.close()));
});

describeLockContract('memory', async (opts) => track(new MemoryLock(lockConfig('memory', opts))));
describeLockContract('redis', async (opts) => track(new RedisLock(lockConfig('redis', opts), PREFIX)));

describe('RedisLock', () => {
  const PASSWORD = 'never-print-this-7f3a';
  let warn: jest.SpiedFunction<Logger['warn']>;
  let log: jest.SpiedFunction<Logger['log']>;

  beforeEach(() => {
    // Silences the adapter's outage reports and lets tests check what they would have printed.
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
  });
  afterEach(() => {
    warn.mockRestore();
    log.mockRestore();
  });

  it('excludes across adapter instances sharing a prefix, as separate processes would', async () => {
    const a = track(new RedisLock(lockConfig('redis'), PREFIX));
    const b = track(new RedisLock(lockConfig('redis'), PREFIX));
    const other = track(new RedisLock(lockConfig('redis'), `${PREFIX}other:`));
    const key = `cross-${randomUUID()}`;
    const lease = await a.acquire(key, { leaseTime: 5_000 });
    expect(lease).not.toBeNull();
    expect(await b.acquire(key, { waitTime: 0 })).toBeNull();
    expect(await other.acquire(key, { waitTime: 0 })).not.toBeNull();
    if (lease) await a.release(lease);
    expect(await b.acquire(key, { waitTime: 0 })).not.toBeNull();
  });

  it('fails ping() and acquire() within seconds when Redis is unreachable, without leaking the password', async () => {
    const lock = track(new RedisLock(lockConfig('redis', { clusterNodes: [DEAD_URL], password: PASSWORD }), PREFIX));

    let start = Date.now();
    const pinged = await lock.ping().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(pinged).toBeInstanceOf(Error);
    expect(Date.now() - start).toBeLessThan(3_000);

    start = Date.now();
    const acquired = await lock.acquire('unreachable', { waitTime: 500 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    expect(acquired).toBeInstanceOf(Error);
    expect(Date.now() - start).toBeLessThan(3_000);

    const printed = [pinged, acquired].map((error) => (error instanceof Error ? `${error.message} ${error.stack}` : ''));
    printed.push(...warn.mock.calls.map((args) => args.map(String).join(' ')));
    expect(warn).toHaveBeenCalled();
    for (const text of printed) expect(text).not.toContain(PASSWORD);
  });

  it('keeps a password embedded in a malformed node URL out of the error', () => {
    expect(() => new RedisLock(lockConfig('redis', { clusterNodes: [`redis://:${PASSWORD}@[::1`] }))).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining(PASSWORD) }),
    );
  });

  const redisServer = spawnSync('redis-server', ['--version']).status === 0;
  (redisServer ? it : it.skip)('reconnects by itself after Redis restarts', async () => {
    const port = await freePort();
    let server = await startRedis(port);
    try {
      const lock = track(new RedisLock(lockConfig('redis', { clusterNodes: [`redis://127.0.0.1:${port}`] }), PREFIX));
      await lock.ping();

      await stopRedis(server);
      await expect(lock.ping()).rejects.toThrow();

      server = await startRedis(port);
      await eventually(() => lock.ping(), 10_000);
      // A restarted Redis has lost redlock's cached scripts: this also covers its NOSCRIPT fallback.
      const lease = await lock.acquire(`restart-${randomUUID()}`, { waitTime: 2_000 });
      expect(lease).not.toBeNull();
      if (lease) await lock.release(lease);
    } finally {
      await stopRedis(server);
    }
  });
});

describe('LockModule', () => {
  it('provides MemoryLock for provider memory and closes it on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LockModule.forRoot(lockConfig('memory'))] }).compile();
    const lock = moduleRef.get(DistributedLock);
    expect(lock).toBeInstanceOf(MemoryLock);
    await expect(lock.ping()).resolves.toBeUndefined();
    await moduleRef.close();
    await expect(lock.ping()).rejects.toThrow(/closed/);
  });

  it('provides RedisLock for provider redis and closes it on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LockModule.forRoot(lockConfig('redis'))] }).compile();
    const lock = moduleRef.get(DistributedLock);
    expect(lock).toBeInstanceOf(RedisLock);
    await expect(lock.ping()).resolves.toBeUndefined();
    await moduleRef.close();
    await expect(lock.ping()).rejects.toThrow(/closed/);
  });

  it('refuses an unknown provider by name instead of falling back', () => {
    // The cast stands in for unvalidated input: the type forbids this value, the module must still catch it.
    const config = lockConfig('zookeeper' as LockProvider);
    expect(() => LockModule.forRoot(config)).toThrow(/zookeeper/);
  });
});

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const address = probe.address();
  probe.close();
  await once(probe, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not find a free port');
  return address.port;
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`);
    const probe = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' });
    if (probe.stdout.trim() !== 'PONG') throw new Error(`redis-server on ${port} not up yet`);
  }, 5_000);
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

async function eventually(probe: () => Promise<void>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await probe();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}
