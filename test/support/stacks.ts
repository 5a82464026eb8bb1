import { createTestDatabase, TestDatabase } from './postgres';
import { writeRealProviders } from './real-services';
import { TempDir } from './temp-files';

/** A provider set a suite runs against: the embedded stack, or real PostgreSQL, Redis and RabbitMQ. */
export interface Stack {
  name: string;
  /** Writes the providers.yml for this stack (creating a fresh database for the real one). */
  providers(tmp: TempDir): Promise<string>;
  cleanup(): Promise<void>;
}

/** Both stacks, for describe.each; `lockWaitTime` shortens the embedded lock's wait (the real one waits 500 ms). */
export function stacks(options: { partitions?: number; lockWaitTime?: number } = {}): Stack[] {
  const partitions = options.partitions ?? 5;
  let db: TestDatabase | undefined;
  const lock = options.lockWaitTime === undefined ? '' : `lock:\n  provider: memory\n  properties:\n    waitTime: ${options.lockWaitTime}\n    leaseTime: 5000\n`;
  return [
    {
      name: 'embedded (PGlite, memory lock and queue)',
      providers: async (tmp) =>
        tmp.write('providers.yml', `repo:\n  provider: pglite\n  partitions: ${partitions}\n  properties:\n    dataDir: memory\n${lock}`),
      cleanup: async () => undefined,
    },
    {
      name: 'real PostgreSQL, Redis and RabbitMQ',
      providers: async (tmp) => {
        db = await createTestDatabase();
        return writeRealProviders(tmp, { pgUrl: db.url, partitions });
      },
      cleanup: async () => db?.drop(),
    },
  ];
}
