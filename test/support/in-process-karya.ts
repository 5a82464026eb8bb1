import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config/config.loader';
import { Delivery, QueueName } from '../../src/connectors/queue/queue.port';
import { HttpSink } from './http-sink';
import { Stack } from './stacks';
import { TempDir } from './temp-files';

export interface InProcessKarya {
  app: INestApplication;
  http: ReturnType<INestApplication['getHttpServer']>;
  ds: DataSource;
  /** A user created for the suite. */
  userId: string;
}

/**
 * Every role in one process on `stack`, with a fast scheduler (100 ms polls, batches of 50), the given
 * executor.yml, every dead letter the process recorded mirrored into `deadLetters` when given (read from the
 * dead_letters table every 100 ms, as the Delivery it was), and a user named `userName`. The server.yml
 * (default: egress to private networks allowed, as the suites' sinks listen on 127.0.0.1) and the
 * scheduler.yml can be replaced.
 */
export async function startInProcessKarya(
  stack: Stack,
  tmp: TempDir,
  o: { executorYml: string; userName: string; deadLetters?: Delivery[]; serverYml?: string; schedulerYml?: string; adminKey?: string },
): Promise<InProcessKarya> {
  const { config } = loadConfig({
    KARYA_PROVIDERS_CONFIG_PATH: await stack.providers(tmp),
    KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', o.serverYml ?? 'application:\n  egress:\n    allowPrivateNetworks: true\n'),
    KARYA_SCHEDULER_CONFIG_PATH: tmp.write('s.yml', o.schedulerYml ?? 'application:\n  fetcher:\n    pollFrequency: 100\n    channelCapacity: 50\n'),
    KARYA_EXECUTOR_CONFIG_PATH: tmp.write('e.yml', o.executorYml),
    ...(o.adminKey !== undefined && { KARYA_ADMIN_KEY: o.adminKey }),
  });
  const app = await createApp(config, { logger: process.env.KARYA_TEST_LOGS ? undefined : false });
  const http = app.getHttpServer();
  if (o.deadLetters) mirrorDeadLetters(app, app.get(DataSource), o.deadLetters);
  const create = request(http).post('/v1/user');
  if (o.adminKey !== undefined) create.set('Authorization', `Bearer ${o.adminKey}`);
  const userId: string = (await create.send({ name: o.userName }).expect(200)).body.id;
  return { app, http, ds: app.get(DataSource), userId };
}

/** Closes what startInProcessKarya started, then the suite's sink, then the stack's database and files. */
export async function stopInProcessKarya(app: INestApplication | undefined, sink: HttpSink, stack: Stack, tmp: TempDir): Promise<void> {
  if (app) await mirrors.get(app)?.stop();
  await app?.close();
  await sink.stop();
  await stack.cleanup();
  tmp.cleanup();
}

const mirrors = new WeakMap<INestApplication, { stop(): Promise<void> }>();

/**
 * Keeps `into` equal to the dead_letters table, oldest first, each row as the Delivery the broker's
 * dead-letter queue held (DeadLetterRecorder drains that queue into the table, so the table is where a
 * test finds them). Polls until stopInProcessKarya (or until the data source is gone).
 */
function mirrorDeadLetters(app: INestApplication, ds: DataSource, into: Delivery[]): void {
  let running = true;
  let busy = false;
  let current: Promise<void> = Promise.resolve();
  const poll = async (): Promise<void> => {
    try {
      const rows: { queue: string; reason: string; message: Record<string, unknown> | null }[] = await ds.query(
        `SELECT queue, reason, message FROM dead_letters ORDER BY created_at, id`,
      );
      into.splice(0, into.length, ...rows.map((r): Delivery => ({
        queue: QueueName.DeadLetter,
        message: r.message ?? {},
        redelivered: false,
        deadLetterReason: r.reason,
        originalQueue: r.queue as QueueName,
      })));
    } catch {
      // The database may be frozen or restarting in chaos suites: the next poll catches up.
    }
  };
  const timer = setInterval(() => {
    // One poll at a time: a frozen database must not pile polls up behind the one waiting.
    if (!running || busy) return;
    busy = true;
    current = poll().finally(() => (busy = false));
  }, 100);
  // A suite that closes its app without stopInProcessKarya must not keep Jest from exiting.
  timer.unref();
  mirrors.set(app, {
    async stop() {
      running = false;
      clearInterval(timer);
      await current;
    },
  });
}
