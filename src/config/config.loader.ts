import { readFileSync } from 'node:fs';
import { plainToInstance } from 'class-transformer';
import { validateSync, ValidationError } from 'class-validator';
import * as ipaddr from 'ipaddr.js';
import { parse as parseYaml } from 'yaml';
import { describeRoles, isAllRoles, parseRoles, Role, RoleError } from '../role/role';
import { DEFAULT_MAX_ERROR_TEXT_BYTES } from '../common/storable-text';
import { parsePeriod, PeriodError } from '../modules/plans/period';
import {
  AuthSection,
  CONNECTOR_CONFIG_CLASSES,
  EgressSection,
  CONNECTOR_TYPES,
  ExecutorFile,
  HikariKnownKeys,
  ProvidersFile,
  SchedulerFile,
  ServerFile,
} from './config.schema';
import {
  ConnectorConfig,
  AuthConfig,
  AuthMode,
  ConnectorType,
  EgressConfig,
  ExecutorConfig,
  KaryaConfig,
  LockConfig,
  LOG_LEVELS,
  LogLevelName,
  ProvidersConfig,
  QueueConfig,
  RepoConfig,
  SchedulerConfig,
  ServerConfig,
} from './karya-config';

/** Start-up failure carrying every problem found, so a user fixes them all in one go. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid Karya configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
      problems.map((p) => `  - ${p}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export const ENV = {
  role: 'KARYA_ROLE',
  port: 'PORT',
  providers: 'KARYA_PROVIDERS_CONFIG_PATH',
  server: 'KARYA_SERVER_CONFIG_PATH',
  scheduler: 'KARYA_SCHEDULER_CONFIG_PATH',
  executor: 'KARYA_EXECUTOR_CONFIG_PATH',
  /** A secret: read here, never logged or echoed in a problem. */
  adminKey: 'KARYA_ADMIN_KEY',
  logLevel: 'LOG_LEVEL',
} as const;

/** The original's fixed metrics ports, reused so the three roles can share a host. */
export const SCHEDULER_ONLY_PORT = 8081;
export const EXECUTOR_ONLY_PORT = 8082;

export const DEFAULTS = {
  partitions: 5,
  pgliteDataDir: './.karya/data',
  /**
   * The timeouts bound every wait on a service that stops answering, so an API call fails with a 503 well
   * within 10 s (acquire + statement) and a background loop moves on, instead of either hanging.
   */
  psql: {
    host: 'localhost', port: 5432, database: 'karya', user: 'karya', password: 'karya', poolSize: 10,
    connectionTimeout: 3000, connectTimeout: 3000, statementTimeout: 5000,
  },
  lock: { waitTime: 1000, leaseTime: 5000, clusterNodes: ['redis://localhost:6379'], connectTimeout: 5000, commandTimeout: 2000 },
  queue: {
    username: 'guest', password: 'guest', virtualHost: '/', clusterNodes: ['localhost:5672'],
    heartbeat: 5, connectTimeout: 5000, publishTimeout: 10_000,
  },
  /** requestTimeout: a client hears back within 10 s even when a dependency is silent (README "Failure handling"). */
  server: { port: 8080, strictMode: true, maxChainedDepth: 2, metricsEnabled: true, minRecurringPeriod: 1000, requestTimeout: 8000, summaryLimit: 1000 },
  /**
   * Per-user limits in apikey mode (off in none mode unless configured): generous enough for a busy
   * client, small enough that one runaway key cannot starve the others.
   */
  rateLimit: { requestsPerMinute: 6000, submissionsPerMinute: 3000 },
  /** Admin keys shorter than this are refused at start-up: a guessable admin key is no protection. */
  minAdminKeyLength: 16,
  scheduler: { threadCount: 2, workers: 3, channelCapacity: 10, pollFrequency: 300, executionBuffer: 1000, metricsEnabled: true, leaseTime: 30_000, retention: 'P30D' },
  executor: {
    metricsEnabled: true,
    concurrency: 64,
    maxErrorTextLength: DEFAULT_MAX_ERROR_TEXT_BYTES,
    retry: { initialDelay: 1000, multiplier: 2, maxDelay: 300_000, jitter: 0.2 },
    /** Without executor.yml the original enabled nothing; config.md: restapi and chained. */
    connectors: ['restapi', 'chained'] as ConnectorType[],
  },
} as const;

/** Keys whose values a problem never shows (`adminKeyFile` is only a path, but `key` costs nothing to hide). */
const SECRET_KEYS = /password|passwd|token|secret|key|credential/i;

/**
 * A node address as a problem may show it: userinfo (`redis://:pass@host`, `user:pass@host:5672`) hidden, since
 * problems go to stderr and the logs.
 */
function withoutUserinfo(address: string): string {
  return address.replace(/^((?:[A-Za-z][A-Za-z0-9+.-]*:)?\/\/)?[^/@\s]*@/, '$1(hidden)@');
}

export interface LoadedConfig {
  config: KaryaConfig;
  /** Things worth a log line at start-up that are not errors. */
  warnings: string[];
}

/**
 * Reads the environment and the (optional) YAML files, validates everything and returns typed config.
 * The only place in Karya that reads process.env or config files.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];

  let roles: ReadonlySet<Role> = new Set(Object.values(Role));
  try {
    roles = parseRoles(env[ENV.role]);
  } catch (e) {
    if (e instanceof RoleError) problems.push(e.message);
    else throw e;
  }

  const providersFile = readFile(env, ENV.providers, 'providers.yml', ProvidersFile, problems);
  const serverFile = readFile(env, ENV.server, 'server.yml', ServerFile, problems);
  const schedulerFile = readFile(env, ENV.scheduler, 'scheduler.yml', SchedulerFile, problems);
  const executorFile = readFile(env, ENV.executor, 'executor.yml', ExecutorFile, problems);

  const providers = resolveProviders(providersFile, problems, warnings);
  const server = resolveServer(serverFile, env, providers.repo.provider, problems);
  const scheduler = resolveScheduler(schedulerFile, providers.repo.partitions, problems);
  const executor = resolveExecutor(executorFile, providers.repo.provider, problems);

  const port = resolvePort(env, roles, server, problems);
  const logLevel = resolveLogLevel(env, problems);

  if (!isAllRoles(roles)) {
    const embedded = [
      providers.repo.provider === 'pglite' ? 'repo: pglite' : null,
      providers.lock.provider === 'memory' ? 'lock: memory' : null,
      providers.queue.provider === 'memory' ? 'queue: memory' : null,
    ].filter((x): x is string => x !== null);
    if (embedded.length > 0) {
      problems.push(
        `KARYA_ROLE=${describeRoles(roles)} cannot use the embedded provider(s) ${embedded.join(', ')}: embedded ` +
          `providers live inside one process, so other processes could never see its tasks, locks or messages. ` +
          `Run KARYA_ROLE=all, or set psql/redis/rabbitmq in the file named by ${ENV.providers}`,
      );
    }
  }

  if (problems.length > 0) throw new ConfigError(problems);
  const config: KaryaConfig = { roles, port, logLevel, providers, server, scheduler, executor };
  return { config, warnings };
}

function readFile<T extends object>(
  env: NodeJS.ProcessEnv,
  variable: string,
  label: string,
  cls: new () => T,
  problems: string[],
): T | undefined {
  const path = env[variable];
  if (path === undefined || path.trim() === '') return undefined;
  const where = `${label} (${variable}=${path})`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    problems.push(`${where}: cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    return undefined;
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    problems.push(`${where}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
  if (raw === null || raw === undefined) return new cls();
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    // The kind only, never the text: a path mixed up with another file's (the admin key file) would print it.
    problems.push(`${where}: expected a map at the top level, got ${Array.isArray(raw) ? 'a list' : `a ${typeof raw}`}`);
    return undefined;
  }
  const instance = plainToInstance(cls, raw);
  const before = problems.length;
  collect(validateSync(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: false }), where, '', problems);
  return problems.length === before ? instance : undefined;
}

/** Validates a free-form map against a class of known keys; unknown keys are allowed when `open`. */
function checkMap<T extends object>(
  cls: new () => T,
  raw: Record<string, unknown> | undefined,
  where: string,
  path: string,
  open: boolean,
  problems: string[],
): T | undefined {
  if (raw === undefined) return undefined;
  const instance = plainToInstance(cls, raw);
  const before = problems.length;
  collect(validateSync(instance, { whitelist: !open, forbidNonWhitelisted: !open, forbidUnknownValues: false }), where, `${path}.`, problems);
  return problems.length === before ? instance : undefined;
}

function collect(errors: ValidationError[], where: string, prefix: string, out: string[]): void {
  for (const error of errors) {
    // List items come back as numeric properties: show them as `connectors[0]`, like our own messages.
    const key = /^\d+$/.test(error.property) ? `${prefix.replace(/\.$/, '')}[${error.property}]` : `${prefix}${error.property}`;
    if (error.constraints) {
      const value = SECRET_KEYS.test(error.property) ? '(hidden)' : describeValue(error.value);
      if (error.constraints.whitelistValidation) {
        out.push(`${where}: ${key}: unknown key`);
      } else {
        // The most specific message is the last one class-validator reports for a property.
        const messages = Object.values(error.constraints);
        out.push(`${where}: ${key}: ${messages[messages.length - 1]}, got ${value}`);
      }
    }
    if (error.children && error.children.length > 0) collect(error.children, where, `${key}.`, out);
  }
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list ${truncate(JSON.stringify(value))}`;
  if (typeof value === 'object') return 'a map';
  return `${typeof value} ${truncate(JSON.stringify(value))}`;
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function resolveProviders(file: ProvidersFile | undefined, problems: string[], warnings: string[]): ProvidersConfig {
  const where = 'providers.yml';
  const repoSection = file?.repo;
  const props = repoSection?.properties;
  const partitions = repoSection?.partitions ?? props?.partitions ?? DEFAULTS.partitions;
  const repo: RepoConfig = {
    provider: (repoSection?.provider as RepoConfig['provider'] | undefined) ?? 'pglite',
    partitions,
    poolSize: props?.poolSize ?? DEFAULTS.psql.poolSize,
    connectionTimeout: props?.acquireTimeout ?? DEFAULTS.psql.connectionTimeout,
    connectTimeout: props?.connectTimeout ?? DEFAULTS.psql.connectTimeout,
    statementTimeout: props?.statementTimeout ?? DEFAULTS.psql.statementTimeout,
    dataDir: props?.dataDir ?? DEFAULTS.pgliteDataDir,
  };
  if (repo.provider === 'psql') {
    const hikari = checkMap(HikariKnownKeys, props?.hikari, where, 'repo.properties.hikari', true, problems);
    if (props?.url !== undefined) {
      if (!/^postgres(ql)?:\/\//.test(props.url)) {
        // The scheme only: a dozen characters of a URL with credentials can be half its password.
        const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(props.url)?.[0];
        problems.push(`${where}: repo.properties.url: expected a postgres:// URL, got ${scheme ? `a ${scheme} URL` : 'something else'}`);
      }
      repo.url = props.url;
    } else {
      repo.url = hikariToUrl(hikari, warnings);
    }
    repo.poolSize = props?.poolSize ?? hikari?.maximumPoolSize ?? DEFAULTS.psql.poolSize;
    repo.connectionTimeout = props?.acquireTimeout ?? hikari?.connectionTimeout ?? DEFAULTS.psql.connectionTimeout;
  }

  const lockProps = file?.lock?.properties;
  const lock: LockConfig = {
    provider: (file?.lock?.provider as LockConfig['provider'] | undefined) ?? 'memory',
    waitTime: lockProps?.waitTime ?? DEFAULTS.lock.waitTime,
    leaseTime: lockProps?.leaseTime ?? DEFAULTS.lock.leaseTime,
    clusterMode: lockProps?.clusterMode ?? false,
    clusterNodes: lockProps?.clusterNodes ?? [...DEFAULTS.lock.clusterNodes],
    password: lockProps?.password,
    connectTimeout: lockProps?.['connection.timeout'] ?? DEFAULTS.lock.connectTimeout,
    commandTimeout: lockProps?.commandTimeout ?? DEFAULTS.lock.commandTimeout,
  };
  lock.clusterNodes.forEach((node, i) => {
    if (!/^rediss?:\/\/[^/:]+(:\d+)?\/?$/.test(node)) {
      problems.push(`${where}: lock.properties.clusterNodes[${i}]: expected redis://host:port, got "${withoutUserinfo(node)}"`);
    }
  });

  const queueProps = file?.queue?.properties;
  const queue: QueueConfig = {
    provider: (file?.queue?.provider as QueueConfig['provider'] | undefined) ?? 'memory',
    username: queueProps?.username ?? DEFAULTS.queue.username,
    password: queueProps?.password ?? DEFAULTS.queue.password,
    virtualHost: queueProps?.virtualHost ?? DEFAULTS.queue.virtualHost,
    clusterNodes: queueProps?.clusterNodes ?? [...DEFAULTS.queue.clusterNodes],
    heartbeat: queueProps?.heartbeat ?? DEFAULTS.queue.heartbeat,
    connectTimeout: queueProps?.connectTimeout ?? DEFAULTS.queue.connectTimeout,
    publishTimeout: queueProps?.publishTimeout ?? DEFAULTS.queue.publishTimeout,
  };
  queue.clusterNodes.forEach((node, i) => {
    if (!/^[^/:\s]+:\d+$/.test(node)) {
      problems.push(`${where}: queue.properties.clusterNodes[${i}]: expected host:port, got "${withoutUserinfo(node)}"`);
    }
  });
  return { repo, lock, queue };
}

/** Builds a pg URL from the original's HikariCP map (separate keys, or a jdbc:postgresql:// URL). */
function hikariToUrl(h: HikariKnownKeys | undefined, warnings: string[]): string {
  const d = DEFAULTS.psql;
  let host: string = h?.['dataSource.serverName'] ?? d.host;
  let port: number = h?.['dataSource.portNumber'] ?? d.port;
  let database: string = h?.['dataSource.databaseName'] ?? d.database;
  const jdbc = h?.['dataSource.url'];
  if (jdbc) {
    const m = /^jdbc:postgresql:\/\/([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/.exec(jdbc);
    if (m) {
      const hosts = m[1].split(',');
      // node-postgres connects to one host; the JDBC driver's multi-host failover has no equivalent.
      if (hosts.length > 1) warnings.push(`providers.yml: repo.properties.hikari.dataSource.url lists ${hosts.length} hosts; node-postgres uses the first (${hosts[0]})`);
      const [h0, p0] = hosts[0].split(':');
      host = h0;
      port = p0 ? Number(p0) : 5432;
      if (m[2]) database = m[2];
      // JDBC-only query parameters (loadBalanceStrategy, targetServerType, …) mean nothing to node-postgres.
    } else {
      warnings.push('providers.yml: repo.properties.hikari.dataSource.url is not a jdbc:postgresql:// URL; ignored');
    }
  }
  const user = encodeURIComponent(h?.['dataSource.user'] ?? d.user);
  const password = encodeURIComponent(h?.['dataSource.password'] ?? d.password);
  return `postgres://${user}:${password}@${host}:${port}/${encodeURIComponent(database)}`;
}

function resolveServer(
  file: ServerFile | undefined,
  env: NodeJS.ProcessEnv,
  repoProvider: RepoConfig['provider'],
  problems: string[],
): ServerConfig {
  const a = file?.application;
  const d = DEFAULTS.server;
  const auth = resolveAuth(a?.auth, env, problems);
  const limits = a?.rateLimit;
  // Off in none mode unless configured (issue: "both are off in none mode unless configured").
  const limitDefaults = auth.mode === 'apikey' ? DEFAULTS.rateLimit : { requestsPerMinute: 0, submissionsPerMinute: 0 };
  return {
    port: a?.port ?? d.port,
    host: a?.host,
    strictMode: a?.strictMode ?? d.strictMode,
    maxChainedDepth: a?.maxChainedDepth ?? a?.chainedDepth ?? d.maxChainedDepth,
    metricsEnabled: a?.metricsEnabled ?? a?.monitoringEnabled ?? d.metricsEnabled,
    minRecurringPeriod: a?.minRecurringPeriod ?? d.minRecurringPeriod,
    auth,
    egress: resolveEgress(a?.egress, repoProvider, 'server.yml', problems),
    rateLimit: {
      requestsPerMinute: limits?.requestsPerMinute ?? limitDefaults.requestsPerMinute,
      submissionsPerMinute: limits?.submissionsPerMinute ?? limitDefaults.submissionsPerMinute,
    },
    maxLivePlansPerUser: a?.maxLivePlansPerUser ?? 0,
    requestTimeout: a?.requestTimeout ?? d.requestTimeout,
    summaryLimit: a?.summaryLimit ?? d.summaryLimit,
  };
}

function resolveAuth(section: AuthSection | undefined, env: NodeJS.ProcessEnv, problems: string[]): AuthConfig {
  const mode = (section?.mode ?? 'none') as AuthMode;
  let adminKey = env[ENV.adminKey]?.trim() || undefined;
  let source: string = ENV.adminKey;
  if (adminKey === undefined && section?.adminKeyFile !== undefined) {
    source = `the file named by application.auth.adminKeyFile (${section.adminKeyFile})`;
    try {
      adminKey = readFileSync(section.adminKeyFile, 'utf8').trim() || undefined;
    } catch (e) {
      problems.push(`server.yml: application.auth.adminKeyFile: cannot read file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  if (adminKey !== undefined) {
    if (adminKey.length < DEFAULTS.minAdminKeyLength) {
      problems.push(`${source}: the admin key must be at least ${DEFAULTS.minAdminKeyLength} characters (value hidden)`);
    } else if (!/^[\x21-\x7e]+$/.test(adminKey)) {
      problems.push(`${source}: the admin key must be printable ASCII without spaces (value hidden)`);
    }
  }
  return { mode, adminKey, protectMetrics: section?.protectMetrics ?? false };
}

/**
 * Loopback and private ranges are denied by default, except on the embedded all-in-one (repo pglite, as
 * `npm start` with no files), where local development calls localhost.
 */
function resolveEgress(section: EgressSection | undefined, repoProvider: RepoConfig['provider'], file: string, problems: string[]): EgressConfig {
  const allow = section?.allow ?? [];
  allow.forEach((entry, i) => {
    if (!isEgressAllowEntry(entry)) {
      problems.push(`${file}: application.egress.allow[${i}]: expected a CIDR (10.1.0.0/16) or host:port, got ${JSON.stringify(entry)}`);
    }
  });
  return { allowPrivateNetworks: section?.allowPrivateNetworks ?? repoProvider === 'pglite', allow: [...allow] };
}

function isEgressAllowEntry(entry: string): boolean {
  if (entry.includes('/')) {
    try {
      ipaddr.parseCIDR(entry);
      return true;
    } catch {
      return false;
    }
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
  return m !== null && Number(m[2]) >= 1 && Number(m[2]) <= 65535;
}

function resolveScheduler(file: SchedulerFile | undefined, partitions: number, problems: string[]): SchedulerConfig {
  const a = file?.application;
  const f = a?.fetcher;
  const d = DEFAULTS.scheduler;
  const repoPartitions = f?.repoPartitions;
  repoPartitions?.forEach((p, i) => {
    if (p > partitions) {
      problems.push(
        `scheduler.yml: application.fetcher.repoPartitions[${i}]: expected a partition in 1..${partitions} ` +
          `(providers.yml repo.partitions), got ${p}`,
      );
    }
  });
  return {
    threadCount: a?.threadCount ?? d.threadCount,
    workers: a?.workers ?? d.workers,
    channelCapacity: f?.channelCapacity ?? d.channelCapacity,
    pollFrequency: f?.pollFrequency ?? d.pollFrequency,
    executionBuffer: f?.executionBuffer ?? d.executionBuffer,
    repoPartitions: repoPartitions ? [...new Set(repoPartitions)].sort((x, y) => x - y) : undefined,
    metricsEnabled: a?.metricsEnabled ?? a?.monitoringEnabled ?? d.metricsEnabled,
    leaseTime: a?.leaseTime ?? d.leaseTime,
    retention: resolveRetention(a?.retention ?? d.retention, problems),
  };
}

/** retention is an ISO-8601 duration like a plan's period (PT0S = keep everything). */
function resolveRetention(text: string, problems: string[]): number {
  try {
    return parsePeriod(text);
  } catch (e) {
    problems.push(`scheduler.yml: application.retention: ${e instanceof PeriodError ? e.message : String(e)}, got ${JSON.stringify(text)}`);
    return 0;
  }
}

function resolveExecutor(file: ExecutorFile | undefined, repoProvider: RepoConfig['provider'], problems: string[]): ExecutorConfig {
  const a = file?.application;
  const d = DEFAULTS.executor;
  let connectors: ConnectorConfig[];
  if (a?.connectors === undefined) {
    connectors = d.connectors.map((type) => ({ type, configs: {} }));
  } else {
    connectors = [];
    const seen = new Set<string>();
    a.connectors.forEach((entry, i) => {
      const path = `application.connectors[${i}]`;
      const type = entry.type as (typeof CONNECTOR_TYPES)[number];
      if (seen.has(type)) problems.push(`executor.yml: ${path}.type: connector "${type}" is listed twice`);
      seen.add(type);
      checkMap(CONNECTOR_CONFIG_CLASSES[type], entry.configs ?? {}, 'executor.yml', `${path}.configs`, false, problems);
      connectors.push({ type, configs: entry.configs ?? {} });
    });
    // The chained connector needs no settings and is always on (as in the original).
    if (!seen.has('chained')) connectors.push({ type: 'chained', configs: {} });
  }
  return {
    metricsEnabled: a?.metricsEnabled ?? a?.monitoringEnabled ?? d.metricsEnabled,
    connectors,
    concurrency: a?.concurrency ?? d.concurrency,
    egress: resolveEgress(a?.egress, repoProvider, 'executor.yml', problems),
    maxErrorTextLength: a?.maxErrorTextLength ?? d.maxErrorTextLength,
    retry: {
      initialDelay: a?.retry?.initialDelay ?? d.retry.initialDelay,
      multiplier: a?.retry?.multiplier ?? d.retry.multiplier,
      maxDelay: a?.retry?.maxDelay ?? d.retry.maxDelay,
      jitter: a?.retry?.jitter ?? d.retry.jitter,
    },
  };
}

function resolvePort(env: NodeJS.ProcessEnv, roles: ReadonlySet<Role>, server: ServerConfig, problems: string[]): number {
  const raw = env[ENV.port];
  if (raw !== undefined && raw.trim() !== '') {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      problems.push(`environment: PORT: expected an integer port 0..65535, got "${raw}"`);
      return server.port;
    }
    return n;
  }
  if (roles.has(Role.Server)) return server.port;
  return roles.has(Role.Scheduler) ? SCHEDULER_ONLY_PORT : EXECUTOR_ONLY_PORT;
}

/** LOG_LEVEL, case-insensitive; unset or blank means info (README "Logs"). */
function resolveLogLevel(env: NodeJS.ProcessEnv, problems: string[]): LogLevelName {
  const raw = env[ENV.logLevel];
  if (raw === undefined || raw.trim() === '') return 'info';
  const level = LOG_LEVELS.find((l) => l === raw.trim().toLowerCase());
  if (level === undefined) {
    problems.push(`environment: ${ENV.logLevel}: expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
    return 'info';
  }
  return level;
}
