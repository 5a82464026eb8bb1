import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config.loader';
import { buildDataSource, runMigrations } from './connectors/repo/data-source.factory';

/** `npm run migrate`: apply pending migrations for the configured repo and exit (no HTTP, no roles). */
async function migrate(): Promise<void> {
  const { config } = loadConfig();
  const repo = config.providers.repo;
  const ds = buildDataSource(repo);
  try {
    await ds.initialize();
    const pending = await ds.showMigrations();
    await runMigrations(ds, repo);
    process.stdout.write(`migrations ${pending ? 'applied' : 'already up to date'} (${repo.provider}, ${repo.partitions} partitions)\n`);
  } finally {
    await ds.destroy();
  }
}

migrate().catch((e: unknown) => {
  process.stderr.write(`${e instanceof ConfigError ? e.message : e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
