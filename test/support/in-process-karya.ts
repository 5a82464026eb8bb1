import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config/config.loader';
import { Delivery, QueueName, TaskQueue } from '../../src/connectors/queue/queue.port';
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
 * executor.yml, every dead letter collected into `deadLetters`, and a user named `userName`. The server.yml
 * (default: egress to private networks allowed, as the suites' sinks listen on 127.0.0.1) and the
 * scheduler.yml can be replaced.
 */
export async function startInProcessKarya(
  stack: Stack,
  tmp: TempDir,
  o: { executorYml: string; userName: string; deadLetters: Delivery[]; serverYml?: string; schedulerYml?: string },
): Promise<InProcessKarya> {
  const { config } = loadConfig({
    KARYA_PROVIDERS_CONFIG_PATH: await stack.providers(tmp),
    KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', o.serverYml ?? 'application:\n  egress:\n    allowPrivateNetworks: true\n'),
    KARYA_SCHEDULER_CONFIG_PATH: tmp.write('s.yml', o.schedulerYml ?? 'application:\n  fetcher:\n    pollFrequency: 100\n    channelCapacity: 50\n'),
    KARYA_EXECUTOR_CONFIG_PATH: tmp.write('e.yml', o.executorYml),
  });
  const app = await createApp(config, { logger: process.env.KARYA_TEST_LOGS ? undefined : false });
  const http = app.getHttpServer();
  await app.get(TaskQueue).consume(QueueName.DeadLetter, async (d) => void o.deadLetters.push(d), { prefetch: 10 });
  const userId: string = (await request(http).post('/v1/user').send({ name: o.userName }).expect(200)).body.id;
  return { app, http, ds: app.get(DataSource), userId };
}

/** Closes what startInProcessKarya started, then the suite's sink, then the stack's database and files. */
export async function stopInProcessKarya(app: INestApplication | undefined, sink: HttpSink, stack: Stack, tmp: TempDir): Promise<void> {
  await app?.close();
  await sink.stop();
  await stack.cleanup();
  tmp.cleanup();
}
