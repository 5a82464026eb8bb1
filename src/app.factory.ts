import { INestApplication, LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { collapseSlashes } from './common/collapse-slashes.middleware';
import { PlainTextExceptionFilter } from './common/plain-text-exception.filter';
import { karyaValidationPipe } from './common/validation.pipe';
import { KaryaConfig } from './config/karya-config';
import { Role } from './role/role';

export interface CreateAppOptions {
  logger?: LoggerService | false;
}

/** Builds the Nest application for a config; shared by main.ts and the e2e tests so they test the same app. */
export async function createApp(config: KaryaConfig, options: CreateAppOptions = {}): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forConfig(config), {
    logger: options.logger ?? undefined,
    abortOnError: false,
  });
  // Before init, so it precedes the router in Express' stack.
  app.use(collapseSlashes);
  app.enableCors({
    origin: true,
    methods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Accept', 'Authorization'],
    optionsSuccessStatus: 200,
  });
  app.useGlobalFilters(new PlainTextExceptionFilter());
  app.useGlobalPipes(karyaValidationPipe());
  if (config.roles.has(Role.Server)) {
    SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, openApiConfig()), {
      jsonDocumentUrl: 'docs-json',
    });
  }
  await app.init();
  return app;
}

export function openApiConfig() {
  return new DocumentBuilder()
    .setTitle('Karya')
    .setDescription("Karya's v1 REST API, wire-compatible with Karya's published clients")
    .setVersion('1')
    .build();
}
