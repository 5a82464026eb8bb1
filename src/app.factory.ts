import { INestApplication, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { collapseSlashes } from './common/collapse-slashes.middleware';
import { PlainTextExceptionFilter } from './common/plain-text-exception.filter';
import { RequestDeadlineInterceptor } from './common/request-deadline.interceptor';
import { karyaValidationPipe } from './common/validation.pipe';
import { KaryaConfig } from './config/karya-config';
import { KaryaLogging, REQUEST_ID_HEADER } from './logging/logging';
import { QueueName, TaskQueue } from './connectors/queue/queue.port';
import { executorPrefetch } from './pipeline/executor-message';
import { QueueTransport } from './pipeline/queue.transport';
import { createOpenApiDocument } from './openapi';
import { Role } from './role/role';

export interface CreateAppOptions {
  logger?: LoggerService | false;
  /** main.ts's pino logging: its middleware gives every request an id and a log line. */
  logging?: KaryaLogging;
}

/** Builds the Nest application for a config; shared by main.ts and the e2e tests so they test the same app. */
export async function createApp(config: KaryaConfig, options: CreateAppOptions = {}): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forConfig(config), {
    logger: options.logger ?? undefined,
    abortOnError: false,
  });
  // First of all, so that every request is logged and answered with its X-Request-Id, CORS preflights too.
  if (options.logging) app.use(options.logging.http);
  // Before init, so it precedes the router in Express' stack.
  app.use(collapseSlashes);
  app.enableCors({
    origin: true,
    methods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Accept', 'Authorization', REQUEST_ID_HEADER],
    exposedHeaders: [REQUEST_ID_HEADER],
    optionsSuccessStatus: 200,
  });
  app.useGlobalFilters(new PlainTextExceptionFilter());
  app.useGlobalInterceptors(new RequestDeadlineInterceptor(config.server.requestTimeout));
  app.useGlobalPipes(karyaValidationPipe());
  if (config.roles.has(Role.Server)) {
    // Built by the same code as the committed openapi/karya-v1.json (npm run openapi).
    SwaggerModule.setup('docs', app, () => createOpenApiDocument(app), {
      jsonDocumentUrl: 'docs-json',
    });
  }
  if (config.roles.has(Role.Executor)) {
    // The executor's @EventPattern handlers run behind a transport over the queue port (RabbitMQ or memory).
    // Prefetches that bound the tasks held, not just the messages (executorPrefetch).
    const prefetch = executorPrefetch(config.executor.concurrency);
    const queues = [
      { name: QueueName.Executor, prefetch: prefetch.lone },
      { name: QueueName.ExecutorBatch, prefetch: prefetch.batch },
      { name: QueueName.Hooks, prefetch: config.executor.concurrency },
    ];
    // Not inheritAppConfig: the HTTP error filter and validation pipe mean nothing to queue messages.
    app.connectMicroservice({ strategy: new QueueTransport(app.get(TaskQueue), queues) });
  }
  await app.init();
  await app.startAllMicroservices();
  return app;
}

