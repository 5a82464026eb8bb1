import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as ipaddr from 'ipaddr.js';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/config.loader';
import { redactCredentialPatterns } from './actions/redact';
import { configSecrets } from './logging/config-secrets';
import { createLogging } from './logging/logging';
import { describeRoles, Role } from './role/role';
import { startTracing } from './tracing/tracing';

/** How long SIGTERM may take (closing consumers, draining, closing connections) before we exit anyway. */
const SHUTDOWN_DEADLINE_MS = 30_000;

/** What goes to stderr outside the logger; the config's own secrets are added once it is loaded. */
let scrub: (text: string) => string = redactCredentialPatterns;

async function bootstrap(): Promise<void> {
  const logger = new Logger('Karya');
  let loaded;
  try {
    loaded = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${scrub(e.message)}\n`);
      process.exit(1);
    }
    throw e;
  }
  const { config, warnings } = loaded;
  // Process-wide, Nest's own logging included: JSON lines (readable ones on a terminal) at LOG_LEVEL, with no
  // secret of the configuration in them.
  const logging = createLogging({ level: config.logLevel, secrets: configSecrets(config) });
  Logger.overrideLogger(logging.nest);
  scrub = logging.scrub;
  warnings.forEach((w) => logger.warn(w));
  // Off unless OTEL_* configures a trace exporter (README "Traces").
  const tracing = startTracing({ env: process.env, roles: config.roles });

  const app = await createApp(config, { logger: logging.nest, logging });
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
      // The exporter batches spans: flush them after the app has drained (bounded by the OTLP timeout, inside
      // the shutdown deadline); a no-op when tracing is off. Spans that cannot be sent do not fail the shutdown.
      app.close().then(() => tracing.shutdown().catch((e: unknown) => logger.warn(`could not flush traces: ${e instanceof Error ? e.message : String(e)}`))).then(
        () => process.exit(0),
        (e: unknown) => {
          logger.error(`shutdown failed: ${e instanceof Error ? e.message : String(e)}`);
          process.exit(1);
        },
      );
    });
  }
  const host = config.server.host;
  if (host === undefined) await app.listen(config.port);
  else await app.listen(config.port, host);
  if (config.roles.has(Role.Server) && config.server.auth.mode === 'none' && !isLoopback(host)) {
    logger.warn(
      `\n${'!'.repeat(100)}\n!! The API is OPEN: server.yml application.auth.mode is "none" and the server listens on ` +
        `${host ?? 'every interface'}.\n!! Anyone who can reach port ${config.port} can read, change and cancel every ` +
        `user's plans. Set application.auth.mode: apikey (README "Security"),\n!! or bind to loopback with application.host: 127.0.0.1.\n` +
        '!'.repeat(100),
    );
  }
  const { repo, lock, queue } = config.providers;
  logger.log(
    { role: describeRoles(config.roles), port: config.port, repo: repo.provider, lock: lock.provider, queue: queue.provider },
    `Karya up: role=${describeRoles(config.roles)} port=${config.port} ` +
      `repo=${repo.provider} lock=${lock.provider} queue=${queue.provider}`,
  );
}

/** Whether a bind address reaches only this machine; undefined (every interface) does not. */
function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  if (host === 'localhost') return true;
  try {
    return ipaddr.process(host.replace(/^\[|\]$/g, '')).range() === 'loopback';
  } catch {
    return false;
  }
}

bootstrap().catch((e: unknown) => {
  process.stderr.write(scrub(`Karya failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`));
  process.exit(1);
});
