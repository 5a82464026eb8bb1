import { TempDir } from './temp-files';

/** The real services .ci/run provides on loopback (overridable for other set-ups). */
export const REDIS = { host: '127.0.0.1', port: Number(process.env.KARYA_TEST_REDIS_PORT ?? 6379) };
export const RABBIT = {
  host: '127.0.0.1',
  port: Number(process.env.KARYA_TEST_RABBIT_PORT ?? 5672),
  /** A vhost of its own keeps suites run side by side (by hand) off each other's unprefixed queues. */
  vhost: process.env.KARYA_TEST_RABBIT_VHOST ?? '/',
};

export interface RealProviders {
  pgUrl: string;
  redisPort?: number;
  rabbitPort?: number;
  partitions?: number;
}

/** Writes a providers.yml for psql + redis + rabbitmq and returns its path. */
export function writeRealProviders(tmp: TempDir, p: RealProviders): string {
  return tmp.write(
    'providers.yml',
    [
      'repo:',
      '  provider: psql',
      `  partitions: ${p.partitions ?? 5}`,
      '  properties:',
      `    url: "${p.pgUrl}"`,
      '    poolSize: 4',
      'lock:',
      '  provider: redis',
      '  properties:',
      '    waitTime: 500',
      '    leaseTime: 5000',
      `    clusterNodes: ["redis://${REDIS.host}:${p.redisPort ?? REDIS.port}"]`,
      'queue:',
      '  provider: rabbitmq',
      '  properties:',
      '    username: guest',
      '    password: guest',
      `    virtualHost: "${RABBIT.vhost}"`,
      `    clusterNodes: ["${RABBIT.host}:${p.rabbitPort ?? RABBIT.port}"]`,
      '',
    ].join('\n'),
  );
}
