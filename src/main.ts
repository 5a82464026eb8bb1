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
  // Our own handler rather than enableShutdownHooks(): Nest's re-raises the signal after closing, so the
  // process would end "killed by SIGTERM" instead of exiting 0 after a clean shutdown.
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      logger.log(`${signal} received: shutting down`);
      setTimeout(() => {
        logger.error(`shutdown took longer than ${SHUTDOWN_DEADLINE_MS} ms; exiting`);
        process.exit(1);
      }, SHUTDOWN_DEADLINE_MS).unref();
      app.close().then(
        () => process.exit(0),
        (e: unknown) => {
          logger.error(`shutdown failed: ${e instanceof Error ? e.message : String(e)}`);
          process.exit(1);
        },
      );
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
