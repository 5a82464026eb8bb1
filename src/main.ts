import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/config.loader';
import { describeRoles } from './role/role';

/** How long SIGTERM may take (closing consumers, draining, closing connections) before we exit anyway. */
const SHUTDOWN_DEADLINE_MS = 30_000;

async function bootstrap(): Promise<void> {
  const logger = new Logger('Karya');
  let loaded;
  try {
    loaded = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const { config, warnings } = loaded;
  warnings.forEach((w) => logger.warn(w));

  const app = await createApp(config);
  app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.log(`${signal} received: shutting down`);
      setTimeout(() => {
        logger.error(`shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting`);
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS).unref();
    });
  }
  await app.listen(config.port);
  const { repo, lock, queue } = config.providers;
  logger.log(
    `Karya up: role=${describeRoles(config.roles)} port=${config.port} ` +
      `repo=${repo.provider} lock=${lock.provider} queue=${queue.provider}`,
  );
}

bootstrap().catch((e: unknown) => {
  process.stderr.write(`Karya failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
