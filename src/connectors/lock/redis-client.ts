import Redis, { Cluster, RedisOptions } from 'ioredis';
import { LockConfig } from '../../config/karya-config';

interface RedisNode {
  host: string;
  port: number;
  tls: boolean;
  username?: string;
  password?: string;
}

/** What a user of the lock's Redis may tune for its own connection; everything else follows the lock. */
export type RedisClientTuning = Pick<RedisOptions, 'enableOfflineQueue' | 'commandTimeout'>;

/**
 * An ioredis client (single node, or a Cluster in clusterMode) for the Redis named by the lock's config:
 * the lock and the shared rate-limit counters (src/rate-limit) live in the same Redis.
 */
export function createRedisClient(config: LockConfig, tuning: RedisClientTuning = {}): Redis | Cluster {
  if (config.clusterNodes.length === 0) throw new Error('lock.clusterNodes must list at least one redis:// URL');
  const nodes = config.clusterNodes.map(parseNode);
  const first = nodes[0];
  const options: RedisOptions = {
    // Explicit config wins over credentials embedded in the URL.
    username: first.username,
    password: config.password ?? first.password,
    connectTimeout: config.connectTimeout,
    // A silent Redis (a partition, a frozen host) answers nothing and closes nothing: fail the command, and
    // drop a connection that stays mute that long after a command, so the reconnect logic takes over and
    // later commands fail at once (offline queue off) instead of each waiting out its own timeout.
    commandTimeout: config.commandTimeout,
    socketTimeout: config.commandTimeout,
    // Fail a command caught by a dropped connection quickly rather than replaying it after a reconnect.
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // disconnect() of a socket that already died (Redis down) arms this timer and waits for a 'close'
    // that was emitted long ago, holding the process up for the full timeout after close(); a socket we
    // are abandoning anyway does not deserve ioredis's default 2 s grace.
    disconnectTimeout: 200,
    ...(first.tls ? { tls: {} } : {}),
    ...tuning,
  };
  if (!config.clusterMode) return new Redis({ ...options, host: first.host, port: first.port });

  const { enableOfflineQueue, ...redisOptions } = options;
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    // ioredis forces the offline queue on for per-node connections; the cluster-level switch is the one that counts.
    { enableOfflineQueue, redisOptions },
  );
}

function parseNode(url: string, index: number): RedisNode {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // The URL itself stays out of the message: it may carry a password.
    throw new Error(`lock.clusterNodes[${index}] is not a valid URL (expected redis://host:port)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`lock.clusterNodes[${index}] must use redis:// or rediss://, got ${parsed.protocol}//`);
  }
  return {
    // WHATWG URL keeps IPv6 brackets, which net.connect does not accept.
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === 'rediss:',
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
  };
}
