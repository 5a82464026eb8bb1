import { Role } from '../role/role';

/**
 * Typed, validated configuration handed out through DI. Built once by `loadConfig()` (config.loader.ts)
 * before Nest boots, because the module graph itself depends on it (role, providers). Every class here is
 * used directly as a DI token; nothing outside config.loader.ts reads process.env or the YAML files.
 */

export type RepoProvider = 'psql' | 'pglite';
export type LockProvider = 'redis' | 'memory';
export type QueueProvider = 'rabbitmq' | 'memory';

export class RepoConfig {
  provider!: RepoProvider;
  /** Number of task partitions; tasks carry partition_key in 1..partitions. */
  partitions!: number;
  /** psql: libpq-style connection URL (postgres://user:pass@host:port/db), built from `url` or `hikari`. */
  url?: string;
  /** psql: maximum pool size (hikari.maximumPoolSize). */
  poolSize!: number;
  /**
   * psql: ms a statement may wait for a pooled connection, opening one included (`acquireTimeout`, or
   * HikariCP's `connectionTimeout`, which means the same).
   */
  connectionTimeout!: number;
  /** psql: ms to open one connection (TCP, TLS, start-up, authentication). */
  connectTimeout!: number;
  /**
   * psql: ms a statement may run: PostgreSQL's statement_timeout, and a client-side read deadline a little
   * longer for when the server cannot even say so (a silent network). 0 = no limit.
   */
  statementTimeout!: number;
  /** pglite: data directory, or 'memory' for an in-memory database. */
  dataDir!: string;
}

export class LockConfig {
  provider!: LockProvider;
  /** ms to wait for a lock before giving up. */
  waitTime!: number;
  /** ms after which an unreleased lock lapses by itself. */
  leaseTime!: number;
  clusterMode!: boolean;
  /** redis://host:port URLs; single-node mode uses the first. */
  clusterNodes!: string[];
  /** Applied in both modes (the original applied it only in cluster mode: a bug, not a feature). */
  password?: string;
  /** ms to wait for a Redis connection (connection.timeout). */
  connectTimeout!: number;
  /** ms a command waits for its reply; silence that long also drops the connection, which then reconnects. */
  commandTimeout!: number;
}

export class QueueConfig {
  provider!: QueueProvider;
  username!: string;
  password!: string;
  virtualHost!: string;
  /** host:port list; amqp-connection-manager fails over between them. */
  clusterNodes!: string[];
  /** AMQP heartbeat, seconds; a broker silent for about two of them is deemed gone. 0 = off. */
  heartbeat!: number;
  /** ms to open a connection (TCP and the AMQP handshake). */
  connectTimeout!: number;
  /** ms a publish may wait for the broker's confirm, waiting for a connection included. */
  publishTimeout!: number;
}

export class ProvidersConfig {
  repo!: RepoConfig;
  lock!: LockConfig;
  queue!: QueueConfig;
}

export type AuthMode = 'none' | 'apikey';

export class AuthConfig {
  /** `none`: the original's open API; `apikey`: every /v1 call needs a key (README "Security"). */
  mode!: AuthMode;
  /** KARYA_ADMIN_KEY or the file named by auth.adminKeyFile; a secret: never logged. */
  adminKey?: string;
  /** /metrics needs a key (admin or user) when true. */
  protectMetrics!: boolean;
}

/**
 * Which addresses REST actions and hooks may connect to (src/egress). Link-local, 0.0.0.0/8 and multicast
 * are always denied; loopback and private ranges only with allowPrivateNetworks; `allow` lets named
 * CIDRs or host:port targets through.
 */
export class EgressConfig {
  allowPrivateNetworks!: boolean;
  allow!: string[];
}

export class RateLimitConfig {
  /** Per user per minute, every /v1 call; 0 = off. */
  requestsPerMinute!: number;
  /** Per user per minute, POST /v1/plan; 0 = off. */
  submissionsPerMinute!: number;
}

export class ServerConfig {
  port!: number;
  strictMode!: boolean;
  maxChainedDepth!: number;
  metricsEnabled!: boolean;
  /** ms; a Recurring plan's period must be at least this (guards against runaway schedules). */
  minRecurringPeriod!: number;
  /** Bind address; undefined = every interface (Node's default). */
  host?: string;
  auth!: AuthConfig;
  /** The submit-time check of literal IPs in base_url (the executor enforces its own copy). */
  egress!: EgressConfig;
  rateLimit!: RateLimitConfig;
  /** Most live (CREATED/RUNNING) plans per user; 0 = no cap. */
  maxLivePlansPerUser!: number;
  /** ms; an HTTP call not answered by then gets a 503 with Retry-After (the work it started may still finish). */
  requestTimeout!: number;
  /** Most tasks and most error logs GET /v1/plan/{id}/summary returns: the newest, still oldest first. */
  summaryLimit!: number;
}

export class SchedulerConfig {
  /** Accepted for compatibility; Node has no thread pool to size (documented in README). */
  threadCount!: number;
  /** Parallel claim loops, each with an interleaved share of the partitions (SchedulerService's header). */
  workers!: number;
  /**
   * Depth of the channel between the claim loops and the publishers: the claimed tasks held in memory above
   * which the loops stop claiming. Not the claim size: a claim takes max(this, MIN_CLAIM_BATCH) tasks.
   */
  channelCapacity!: number;
  /** ms; the longest pause between two claims of a loop (a full claim or room in the channel cuts it short). */
  pollFrequency!: number;
  /** ms of lateness above which a dispatch is logged as late (never a reason to skip it). */
  executionBuffer!: number;
  /** Partition keys this scheduler claims from; undefined means all of 1..partitions. */
  repoPartitions?: number[];
  metricsEnabled!: boolean;
  /** ms a claimed task may stay unfinished past its due time before another scheduler dispatches it again. */
  leaseTime!: number;
  /**
   * ms finished history (tasks, error logs, dead letters, COMPLETED/CANCELLED plans) is kept before the
   * housekeeper deletes it; 0 keeps everything.
   */
  retention!: number;
}

export type ConnectorType = 'restapi' | 'slack' | 'email' | 'kafka' | 'chained';

export class ConnectorConfig {
  type!: ConnectorType;
  /** Connector-specific settings, validated by the loader per type (see config.schema.ts). */
  configs!: Record<string, unknown>;
}

export class RetryConfig {
  /** ms before the first retry. */
  initialDelay!: number;
  multiplier!: number;
  /** Upper bound of one delay, ms. */
  maxDelay!: number;
  /** Fraction of the delay added or removed at random, 0..1. */
  jitter!: number;
}

export class ExecutorConfig {
  metricsEnabled!: boolean;
  connectors!: ConnectorConfig[];
  retry!: RetryConfig;
  /** Messages an executor holds at once (queue prefetch). */
  concurrency!: number;
  egress!: EgressConfig;
  /** Bytes of UTF-8 a stored error text is cut to (storableText). */
  maxErrorTextLength!: number;
}

/** pino's levels, least severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

export class KaryaConfig {
  roles!: ReadonlySet<Role>;
  /** The port this process listens on (PORT, else by role; see config.md). */
  port!: number;
  /** LOG_LEVEL: the least severe level written to stdout. */
  logLevel!: LogLevelName;
  providers!: ProvidersConfig;
  server!: ServerConfig;
  scheduler!: SchedulerConfig;
  executor!: ExecutorConfig;
}
