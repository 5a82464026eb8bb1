import { DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule, TypeOrmModuleOptions } from '@nestjs/typeorm';
import { RepoConfig } from '../../config/karya-config';
import { buildDataSource, PartitionMismatchError, runMigrations } from './data-source.factory';

/**
 * The repository connector: one TypeORM DataSource (psql or pglite, same dialect, so no port of its own).
 * Every role migrates at start under an advisory lock, so no role depends on another having started first.
 */
@Global()
@Module({})
export class RepoModule {
  static forRoot(config: RepoConfig): DynamicModule {
    return {
      module: RepoModule,
      imports: [
        TypeOrmModule.forRootAsync({
          // The real options live in buildDataSource; TypeOrmModule only needs its retry settings here.
          useFactory: (): TypeOrmModuleOptions => ({
            type: 'postgres',
            retryAttempts: config.provider === 'pglite' ? 0 : 10,
            retryDelay: 2000,
            toRetry: (err: unknown) => !(err instanceof PartitionMismatchError),
          }),
          dataSourceFactory: async () => {
            const ds = buildDataSource(config);
            try {
              await ds.initialize();
              await runMigrations(ds, config);
            } catch (e) {
              await ds.destroy().catch(() => undefined);
              throw e;
            }
            return ds;
          },
        }),
      ],
      exports: [TypeOrmModule],
    };
  }
}
