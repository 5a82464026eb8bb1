import { applyDecorators } from '@nestjs/common';
import { Type } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';

/**
 * The raw shapes of Karya's four YAML files, as the original wrote them, checked with class-validator.
 * Dotted keys (`dataSource.user`, `connection.timeout`, `bootstrap.servers`) are literal key names in
 * those files, not paths, so they appear here as quoted property names.
 *
 * Every key is optional: a missing key takes the default (config.loader.ts). Unknown keys are errors
 * (whitelist + forbidNonWhitelisted), except inside pass-through maps (`hikari`, `smtp`) whose other keys
 * belong to HikariCP / JavaMail and are accepted and ignored.
 */

const Int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  applyDecorators(
    IsOptional(),
    IsInt({ message: 'expected an integer' }),
    Min(min, { message: `expected an integer >= ${min}` }),
    Max(max, { message: `expected an integer <= ${max}` }),
  );
const Num = (min: number, max: number) =>
  applyDecorators(
    IsOptional(),
    IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'expected a number' }),
    Min(min, { message: `expected a number >= ${min}` }),
    Max(max, { message: `expected a number <= ${max}` }),
  );
const Bool = () => applyDecorators(IsOptional(), IsBoolean({ message: 'expected a boolean (true or false)' }));
const Str = () => applyDecorators(IsOptional(), IsString({ message: 'expected a string' }));
const OneOf = (values: readonly string[]) =>
  applyDecorators(IsString({ message: `expected a string, one of ${values.join(', ')}` }), IsIn([...values], {
    message: `expected one of ${values.join(', ')}`,
  }));
const StrList = () =>
  applyDecorators(
    IsOptional(),
    IsArray({ message: 'expected a list of strings' }),
    ArrayMinSize(1, { message: 'expected a non-empty list' }),
    IsString({ each: true, message: 'expected a list of strings' }),
  );
const Nested = (cls: () => new () => object) =>
  applyDecorators(IsOptional(), IsObject({ message: 'expected a map' }), ValidateNested(), Type(cls));
const Map = () => applyDecorators(IsOptional(), IsObject({ message: 'expected a map' }));

// ---------------------------------------------------------------- providers.yml

export const REPO_PROVIDERS = ['psql', 'pglite'] as const;
export const LOCK_PROVIDERS = ['redis', 'memory'] as const;
export const QUEUE_PROVIDERS = ['rabbitmq', 'memory'] as const;

/** The HikariCP keys we translate into a pg connection; other Hikari keys are accepted and ignored. */
export class HikariKnownKeys {
  @Str() 'dataSource.user'?: string;
  @Str() 'dataSource.password'?: string;
  @Str() 'dataSource.databaseName'?: string;
  @Int(1, 65535) 'dataSource.portNumber'?: number;
  @Str() 'dataSource.serverName'?: string;
  @Str() 'dataSource.url'?: string;
  @Int(1, 1000) maximumPoolSize?: number;
  @Int(0) connectionTimeout?: number;
}

export class RepoProperties {
  /** The original kept `partitions` beside `provider`; config.md lists it under properties: accept both. */
  @Int(1, 1024) partitions?: number;
  @Str() url?: string;
  @Map() hikari?: Record<string, unknown>;
  @Int(1, 1000) poolSize?: number;
  @Str() dataDir?: string;
  /** ms; bounded waits, so a silent database fails calls instead of hanging them (README "providers.yml"). */
  @Int(1) connectTimeout?: number;
  @Int(1) acquireTimeout?: number;
  @Int(0) statementTimeout?: number;
}

export class RepoSection {
  @OneOf(REPO_PROVIDERS) provider!: string;
  @Int(1, 1024) partitions?: number;
  @Nested(() => RepoProperties) properties?: RepoProperties;
}

export class LockProperties {
  @Bool() clusterMode?: boolean;
  @StrList() clusterNodes?: string[];
  @Str() password?: string;
  @Int(0) waitTime?: number;
  @Int(1) leaseTime?: number;
  @Int(0) 'connection.timeout'?: number;
  /** ms a command may wait for its reply before it fails and the connection is deemed dead. */
  @Int(1) commandTimeout?: number;
  /** Redisson pool settings: ioredis multiplexes one connection, so these are accepted and unused. */
  @Int(1) 'connection.poolSize'?: number;
  @Int(0) 'connection.minimumIdleSize'?: number;
}

export class LockSection {
  @OneOf(LOCK_PROVIDERS) provider!: string;
  @Nested(() => LockProperties) properties?: LockProperties;
}

export class QueueProperties {
  @Str() username?: string;
  @Str() password?: string;
  @Str() virtualHost?: string;
  @StrList() clusterNodes?: string[];
  /** AMQP heartbeat in seconds (as RabbitMQ negotiates it); 0 turns heartbeats off. */
  @Int(0, 600) heartbeat?: number;
  @Int(1) connectTimeout?: number;
  @Int(1) publishTimeout?: number;
}

export class QueueSection {
  @OneOf(QUEUE_PROVIDERS) provider!: string;
  @Nested(() => QueueProperties) properties?: QueueProperties;
}

export class ProvidersFile {
  @Nested(() => RepoSection) repo?: RepoSection;
  @Nested(() => LockSection) lock?: LockSection;
  @Nested(() => QueueSection) queue?: QueueSection;
}

// ---------------------------------------------------------------- server.yml

export const AUTH_MODES = ['none', 'apikey'] as const;

export class AuthSection {
  @IsOptional() @OneOf(AUTH_MODES) mode?: string;
  /** A file holding the admin key (KARYA_ADMIN_KEY wins when both are set). */
  @Str() adminKeyFile?: string;
  @Bool() protectMetrics?: boolean;
}

/** Shared by server.yml (the submit-time check) and executor.yml (the enforcement). */
export class EgressSection {
  @Bool() allowPrivateNetworks?: boolean;
  /** CIDRs (`10.1.0.0/16`, `fd00::/8`) or `host:port` entries let named internal services through. */
  @IsOptional()
  @IsArray({ message: 'expected a list of CIDRs or host:port strings' })
  @IsString({ each: true, message: 'expected a list of CIDRs or host:port strings' })
  allow?: string[];
}

export class RateLimitSection {
  /** Per user, every /v1 call; 0 turns it off. */
  @Int(0) requestsPerMinute?: number;
  /** Per user, POST /v1/plan (counted in requestsPerMinute too); 0 turns it off. */
  @Int(0) submissionsPerMinute?: number;
}

export class ServerApplication {
  @Int(1, 65535) port?: number;
  @Bool() strictMode?: boolean;
  @Int(0, 100) maxChainedDepth?: number;
  /** Spelling used by the original's docs. */
  @Int(0, 100) chainedDepth?: number;
  @Bool() metricsEnabled?: boolean;
  /** Spelling used by the original's docs. */
  @Bool() monitoringEnabled?: boolean;
  /** New: the shortest period (ms) a Recurring plan may have. */
  @Int(1) minRecurringPeriod?: number;
  /** New: the address the HTTP server binds (default: every interface). */
  @Str() host?: string;
  @Nested(() => AuthSection) auth?: AuthSection;
  @Nested(() => EgressSection) egress?: EgressSection;
  @Nested(() => RateLimitSection) rateLimit?: RateLimitSection;
  /** New: most live (CREATED/RUNNING) plans one user may have; 0 or absent = no cap. */
  @Int(0) maxLivePlansPerUser?: number;
  /** New: ms after which an API call still unanswered gets a 503 with Retry-After. */
  @Int(1) requestTimeout?: number;
  /** New: most tasks and most error logs /summary returns (the newest); the paged endpoints return all. */
  @Int(1, 100_000) summaryLimit?: number;
}

export class ServerFile {
  @Nested(() => ServerApplication) application?: ServerApplication;
}

// ---------------------------------------------------------------- scheduler.yml

export class FetcherSection {
  @Int(1) channelCapacity?: number;
  @Int(1) pollFrequency?: number;
  @Int(0) executionBuffer?: number;
  @IsOptional()
  @IsArray({ message: 'expected a list of integers' })
  @ArrayMinSize(1, { message: 'expected a non-empty list' })
  @IsInt({ each: true, message: 'expected a list of integers' })
  @Min(1, { each: true, message: 'expected partition numbers >= 1' })
  repoPartitions?: number[];
}

export class SchedulerApplication {
  @Bool() metricsEnabled?: boolean;
  @Bool() monitoringEnabled?: boolean;
  @Int(1) threadCount?: number;
  @Int(1) workers?: number;
  /** New: ms a claimed task may stay unfinished past its due time before it is dispatched again. */
  @Int(1000) leaseTime?: number;
  /** New: ISO-8601 duration finished history is kept (housekeeping); PT0S keeps everything. */
  @Str() retention?: string;
  @Nested(() => FetcherSection) fetcher?: FetcherSection;
}

export class SchedulerFile {
  @Nested(() => SchedulerApplication) application?: SchedulerApplication;
}

// ---------------------------------------------------------------- executor.yml

export const CONNECTOR_TYPES = ['restapi', 'slack', 'email', 'kafka', 'chained'] as const;

export class ConnectorEntry {
  @OneOf(CONNECTOR_TYPES) type!: string;
  /** Checked per type against the classes below (config.loader.ts). */
  @Map() configs?: Record<string, unknown>;
}

export class RestApiConnectorConfigs {
  @Int(0) keepAliveTime?: number;
  @Int(0) connectionTimeout?: number;
  @Int(1) connectionAttempts?: number;
}

export class SlackConnectorConfigs {
  @Str() token?: string;
  @Str() apiUrl?: string;
}

export class EmailConnectorConfigs {
  @Str() username?: string;
  @Str() password?: string;
  @Str() from?: string;
  /** JavaMail `mail.smtp.*` properties; values are strings in the original's sample. */
  @Map() smtp?: Record<string, unknown>;
}

export class KafkaConnectorConfigs {
  @Str() 'bootstrap.servers'?: string;
}

export class ChainedConnectorConfigs {}

export const CONNECTOR_CONFIG_CLASSES: Record<(typeof CONNECTOR_TYPES)[number], new () => object> = {
  restapi: RestApiConnectorConfigs,
  slack: SlackConnectorConfigs,
  email: EmailConnectorConfigs,
  kafka: KafkaConnectorConfigs,
  chained: ChainedConnectorConfigs,
};

export class RetrySection {
  @Int(0) initialDelay?: number;
  @Num(1, 100) multiplier?: number;
  @Int(0) maxDelay?: number;
  @Num(0, 1) jitter?: number;
}

export class ExecutorApplication {
  @Bool() metricsEnabled?: boolean;
  @Bool() monitoringEnabled?: boolean;
  @IsOptional()
  @IsArray({ message: 'expected a list of {type, configs} maps' })
  @ValidateNested({ each: true })
  @Type(() => ConnectorEntry)
  connectors?: ConnectorEntry[];
  @Nested(() => RetrySection) retry?: RetrySection;
  @Int(1, 10000) concurrency?: number;
  @Nested(() => EgressSection) egress?: EgressSection;
  /** New: bytes of UTF-8 an error text (error log, dead-letter reason) is cut to before it is stored. */
  @Int(256, 10 * 1024 * 1024) maxErrorTextLength?: number;
}

export class ExecutorFile {
  @Nested(() => ExecutorApplication) application?: ExecutorApplication;
}
