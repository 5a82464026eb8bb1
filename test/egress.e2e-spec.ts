import { readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { Delivery, QueueName } from '../src/connectors/queue/queue.port';
import { waitFor } from './support/http-sink';
import { startInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * The egress policy (src/egress) end to end. Every address these tests aim at is loopback: the ranges that
 * must never be connected to are covered by src/egress/egress-policy.spec.ts, without sockets.
 */

/**
 * Two HTTP servers on one port, one on 127.0.0.1 and one on ::1, counting every request, so a call that
 * slipped through would be seen whichever loopback address `localhost` or a mapped form ends up at.
 */
class LoopbackSinks {
  readonly hits: { at: string; path: string }[] = [];
  private readonly servers: Server[] = [];
  port = 0;

  async start(): Promise<this> {
    for (let tries = 0; this.servers.length < 2; tries++) {
      const v6 = await this.listen('::1', 0);
      try {
        const v4 = await this.listen('127.0.0.1', (v6.address() as AddressInfo).port);
        this.servers.push(v6, v4);
      } catch (err) {
        await close(v6);
        // Another process holds that port on 127.0.0.1: take another.
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 20) throw err;
      }
    }
    this.port = (this.servers[0].address() as AddressInfo).port;
    return this;
  }

  hitsAt(prefix: string): number {
    return this.hits.filter((h) => h.path.startsWith(prefix)).length;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map(close));
  }

  private listen(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      this.hits.push({ at: host, path: req.url ?? '' });
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The four spellings of loopback, as `host:port`, and the executor's error for each. */
function loopbackTargets(port: number): { name: string; host: string; error: string | RegExp }[] {
  return [
    { name: '127.0.0.1', host: `127.0.0.1:${port}`, error: 'Egress denied --- 127.0.0.1 resolved to 127.0.0.1 (loopback 127.0.0.0/8)' },
    {
      name: 'localhost',
      host: `localhost:${port}`,
      error: /^Egress denied --- localhost resolved to (127\.0\.0\.1 \(loopback 127\.0\.0\.0\/8\)|::1 \(loopback ::1\/128\))$/,
    },
    { name: '[::1]', host: `[::1]:${port}`, error: 'Egress denied --- ::1 resolved to ::1 (loopback ::1/128)' },
    {
      name: '[::ffff:127.0.0.1]',
      host: `[::ffff:127.0.0.1]:${port}`,
      error: 'Egress denied --- ::ffff:7f00:1 resolved to ::ffff:7f00:1 (loopback 127.0.0.0/8, IPv4-mapped)',
    },
  ];
}
const TARGET_NAMES = loopbackTargets(0).map((t) => t.name);

const rest = (baseUrl: string) => ({ type: T.Rest, base_url: baseUrl, method: 'POST' });
const slug = (name: string) => name.replace(/[^a-z0-9]/gi, '');
const EXECUTOR_LOG = 'karya.core.entities.ErrorLogType.ExecutorErrorLog';
const HOOK_LOG = 'karya.core.entities.ErrorLogType.HookErrorLog';

describe('egress on real PostgreSQL, Redis and RabbitMQ: the default executor policy denies loopback', () => {
  const target = stacks()[1];
  const tmp = new TempDir();
  const sinks = new LoopbackSinks();
  const deadLetters: Delivery[] = [];
  let app: INestApplication | undefined;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userId: string;

  beforeAll(async () => {
    await sinks.start();
    ({ app, http, userId } = await startInProcessKarya(target, tmp, {
      // No egress key: the psql default (private networks denied). Fast retries, so a retry would show.
      executorYml: 'application:\n  retry:\n    initialDelay: 100\n    multiplier: 1\n    jitter: 0\n',
      // The server lets literal loopback through, so what is tested here is the executor's own check.
      serverYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n',
      userName: 'egress-denied',
      deadLetters,
    }));
  });
  afterAll(async () => {
    await app?.close();
    await sinks.stop();
    await target.cleanup();
    tmp.cleanup();
  });

  it.each(TARGET_NAMES)(
    'a REST action and its REST hook aimed at %s fail with the egress error, are never retried, are dead-lettered once and never reach the sink',
    async (name) => {
      const t = loopbackTargets(sinks.port).find((x) => x.name === name)!;
      const path = `/denied-${slug(name)}`;
      const plan = (
        await request(http)
          .post('/v1/plan')
          .send({
            user_id: userId,
            description: `egress ${name}`,
            period_time: 'PT0.1S',
            plan_type: { type: T.OneTime },
            max_failure_retry: 2,
            action: rest(`${t.host}${path}/action`),
            hooks: [{ trigger: 'ON_FAILURE', max_retry: 2, action: rest(`${t.host}${path}/hook`) }],
          })
          .expect(200)
      ).body;
      const lettersOf = (queue: QueueName) => deadLetters.filter((d) => d.originalQueue === queue && d.message.planId === plan.id);
      await waitFor(
        () => lettersOf(QueueName.Executor).length >= 1 && lettersOf(QueueName.Hooks).length >= 1,
        20_000,
        `the task and the hook of ${name} dead-lettered`,
      );
      const summary = (await request(http).get(`/v1/plan/${plan.id}/summary`).expect(200)).body;

      // One attempt each: a retry (the scheduler's 2, the hook's 2) would have logged before the dead letter.
      expect(summary.tasks).toHaveLength(1);
      expect(summary.tasks[0].status).toBe('FAILURE');
      expect(summary.plan.status).toBe('COMPLETED');
      const logs: { type: { type: string }; error: string }[] = summary.error_logs;
      expect(logs).toHaveLength(2);
      const executorLog = logs.find((l) => l.type.type === EXECUTOR_LOG);
      const hookLog = logs.find((l) => l.type.type === HOOK_LOG);
      expect(executorLog?.error).toEqual(expect.stringMatching(typeof t.error === 'string' ? `^${escape(t.error)}$` : t.error));
      expect(hookLog?.error).toEqual(expect.stringMatching(typeof t.error === 'string' ? `^${escape(t.error)}$` : t.error));

      // The dead-letter reason is the egress text itself.
      expect(lettersOf(QueueName.Executor).map((d) => d.deadLetterReason)).toEqual([executorLog!.error]);
      expect(lettersOf(QueueName.Hooks).map((d) => d.deadLetterReason)).toEqual([hookLog!.error]);

      expect(sinks.hitsAt(path)).toBe(0);
    },
  );

  it('no request reached either loopback sink', () => {
    expect(sinks.hits).toEqual([]);
  });
});

describe('egress under the embedded default (PGlite, no egress config): loopback is reachable', () => {
  const target = stacks()[0];
  const tmp = new TempDir();
  const sinks = new LoopbackSinks();
  const deadLetters: Delivery[] = [];
  let app: INestApplication | undefined;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userId: string;

  beforeAll(async () => {
    await sinks.start();
    ({ app, http, userId } = await startInProcessKarya(target, tmp, {
      executorYml: 'application:\n  concurrency: 8\n',
      serverYml: 'application:\n  strictMode: true\n',
      userName: 'egress-embedded',
      deadLetters,
    }));
  });
  afterAll(async () => {
    await app?.close();
    await sinks.stop();
    await target.cleanup();
    tmp.cleanup();
  });

  it.each(TARGET_NAMES)('a REST action and its REST hook aimed at %s are accepted and reach the sink', async (name) => {
    const t = loopbackTargets(sinks.port).find((x) => x.name === name)!;
    const path = `/allowed-${slug(name)}`;
    const plan = (
      await request(http)
        .post('/v1/plan')
        .send({
          user_id: userId,
          description: `egress ${name}`,
          period_time: 'PT0.1S',
          plan_type: { type: T.OneTime },
          action: rest(`${t.host}${path}/action`),
          hooks: [{ trigger: 'ON_COMPLETION', action: rest(`${t.host}${path}/hook`) }],
        })
        .expect(200)
    ).body;
    await waitFor(() => sinks.hitsAt(`${path}/action`) === 1 && sinks.hitsAt(`${path}/hook`) === 1, 15_000, `${name} action and hook`);
    const summary = (await request(http).get(`/v1/plan/${plan.id}/summary`).expect(200)).body;
    expect(summary.tasks[0].status).toBe('SUCCESS');
    expect(summary.error_logs).toEqual([]);
    expect(deadLetters.filter((d) => d.message.planId === plan.id)).toEqual([]);
  });
});

describe('egress at submit: the default server policy on PostgreSQL refuses literal private addresses in base_url', () => {
  const target = stacks()[1];
  const tmp = new TempDir();
  let app: INestApplication | undefined;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userId: string;

  beforeAll(async () => {
    // Server role only, no server.yml: the production default. Nothing here ever runs an action.
    const { config } = loadConfig({ KARYA_ROLE: 'server', KARYA_PROVIDERS_CONFIG_PATH: await target.providers(tmp) });
    app = await createApp(config, { logger: false });
    http = app.getHttpServer();
    userId = (await request(http).post('/v1/user').send({ name: 'egress-submit' }).expect(200)).body.id;
  });
  afterAll(async () => {
    await app?.close();
    await target.cleanup();
    tmp.cleanup();
  });

  const plan = (user: string, extra: Record<string, unknown>) => ({
    user_id: user,
    description: 'submit check',
    period_time: 'PT1H',
    plan_type: { type: T.OneTime },
    action: rest('localhost:9/ok'),
    ...extra,
  });
  const chained = (user: string, extra: Record<string, unknown>) => ({ type: T.Chained, request: plan(user, extra) });
  const suffix = '; server.yml application.egress does not allow it';

  // Each case is a function of the user id, which exists only once beforeAll has run.
  it.each<[string, (user: string) => Record<string, unknown>, string]>([
    ['a top-level action', () => ({ action: rest('127.0.0.1:8080/x') }), 'action.base_url: Egress denied --- 127.0.0.1 resolved to 127.0.0.1 (loopback 127.0.0.0/8)'],
    ['an IPv6 loopback action', () => ({ action: rest('[::1]:8080/x') }), 'action.base_url: Egress denied --- ::1 resolved to ::1 (loopback ::1/128)'],
    [
      'an IPv4-mapped loopback hook',
      () => ({ hooks: [{ trigger: 'ON_FAILURE', action: rest('[::ffff:127.0.0.1]/x') }] }),
      'hooks[0].action.base_url: Egress denied --- ::ffff:7f00:1 resolved to ::ffff:7f00:1 (loopback 127.0.0.0/8, IPv4-mapped)',
    ],
    [
      'a private address in a chained request',
      (user) => ({ action: chained(user, { action: rest('10.0.0.1/x') }) }),
      'action.request.action.base_url: Egress denied --- 10.0.0.1 resolved to 10.0.0.1 (private 10.0.0.0/8)',
    ],
    [
      'the metadata address in a hook of a chained hook, over HTTPS',
      (user) => ({
        hooks: [{
          trigger: 'ON_COMPLETION',
          action: chained(user, {
            hooks: [
              { trigger: 'ON_FAILURE', action: rest('localhost/ok') },
              { trigger: 'ON_FAILURE', action: { ...rest('169.254.169.254/latest'), protocol: 'HTTPS' } },
            ],
          }),
        }],
      }),
      'hooks[0].action.request.hooks[1].action.base_url: Egress denied --- 169.254.169.254 resolved to 169.254.169.254 (link-local (cloud metadata) 169.254.0.0/16)',
    ],
  ])('refuses %s with a 400 naming the field', async (_what, extra, message) => {
    const res = await request(http).post('/v1/plan').send(plan(userId, extra(userId))).expect(400);
    expect(res.text).toBe(`${message}${suffix}`);
  });

  it('refuses a denied literal in hooks replaced by PATCH', async () => {
    const created = (await request(http).post('/v1/plan').send(plan(userId, {})).expect(200)).body;
    const res = await request(http)
      .patch('/v1/plan')
      .send({ plan_id: created.id, hooks: [{ trigger: 'ON_FAILURE', action: rest('[::1]/x') }] })
      .expect(400);
    expect(res.text).toBe(`hooks[0].action.base_url: Egress denied --- ::1 resolved to ::1 (loopback ::1/128)${suffix}`);
  });

  it('accepts names without resolving them (the executor judges what they resolve to)', async () => {
    await request(http).post('/v1/plan').send(plan(userId, { action: rest('localhost:8080/x') })).expect(200);
  });
});

describe('sample production configs', () => {
  it('configs/postgres-redis-rabbitmq say allowPrivateNetworks: false in server.yml and executor.yml', () => {
    const dir = join(__dirname, '..', 'configs', 'postgres-redis-rabbitmq');
    for (const file of ['server.yml', 'executor.yml']) {
      expect(readFileSync(join(dir, file), 'utf8')).toMatch(/^ {2}egress:\n {4}allowPrivateNetworks: false$/m);
    }
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: join(dir, 'providers.yml'),
      KARYA_SERVER_CONFIG_PATH: join(dir, 'server.yml'),
      KARYA_EXECUTOR_CONFIG_PATH: join(dir, 'executor.yml'),
    });
    expect(config.server.egress).toEqual({ allowPrivateNetworks: false, allow: [] });
    expect(config.executor.egress).toEqual({ allowPrivateNetworks: false, allow: [] });
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
