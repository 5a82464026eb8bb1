import { Logger } from '@nestjs/common';
import { Kafka, Partitioners, logLevel, type LogEntry, type Producer, type ProducerRecord, type RecordMetadata } from 'kafkajs';
import { ConnectorType } from '../../config/karya-config';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionPlugin, ActionResult } from '../action-plugin';
import { untilAborted } from '../call-utils';

/** executor.yml `connectors: [{ type: kafka, configs: { bootstrap.servers: "host1:9092,host2:9092" } }]`. */
export const BOOTSTRAP_SERVERS_KEY = 'bootstrap.servers';

// ---------------------------------------------------------------- time bounds
//
// KafkaProducerRequest has no timeout field, and kafkajs retries for a very long time by default (an idempotent
// producer gets Number.MAX_SAFE_INTEGER retries; the client's own retries back off up to 30 s each). Every run
// is bounded instead:
// - kafkajs is configured so the common failures end on their own in a few seconds: a refused / reset / unknown
//   host fails in < 1 s (3 attempts, 200 ms → 1 s backoff), a host that drops packets in ~5 s
//   (3 × KAFKA_CONNECTION_TIMEOUT_MS), a broker that accepts but never answers in KAFKA_REQUEST_TIMEOUT_MS;
// - PRODUCE_DEADLINE_MS caps the whole run (connect + metadata + produce + acknowledgement), whatever kafkajs's
//   nested retries add up to. The scheduler retries a failed task itself, with backoff, so giving up early only
//   moves the retry to where it is recorded in the error log.

/** Most a run() takes, from the call to its result, whatever the brokers do. */
export const PRODUCE_DEADLINE_MS = 10_000;
/** One TCP connection attempt to a broker (kafkajs `connectionTimeout`, default 1000). */
export const KAFKA_CONNECTION_TIMEOUT_MS = 1_500;
/** One request (ApiVersions, Metadata, InitProducerId, Produce) awaiting its response (kafkajs default 30 000). */
export const KAFKA_REQUEST_TIMEOUT_MS = 4_000;
/**
 * How long the partition leader waits for the in-sync replicas before answering a produce with acks=all
 * (the Produce request's `timeout`, default 30 000). Below KAFKA_REQUEST_TIMEOUT_MS so the broker's own
 * "not enough replicas" answer arrives before the client gives up on the request.
 */
export const KAFKA_ACK_TIMEOUT_MS = 3_000;
/** kafkajs retries, for both the client (connect, metadata) and the producer (send): 3 attempts in all. */
export const KAFKA_RETRY = { retries: 2, initialRetryTime: 200, maxRetryTime: 1_000, factor: 0.2, multiplier: 2 } as const;

/** `acks: all`: the record is acknowledged once every in-sync replica has it (required by the idempotent producer). */
export const ACKS_ALL = -1;

/** Record headers naming the occurrence (the REST plugin sends the same values as X-Karya-* HTTP headers). */
export const PLAN_ID_HEADER = 'x-karya-plan-id';
export const TASK_ID_HEADER = 'x-karya-task-id';

/**
 * The producer settings: idempotent (the broker drops the duplicates kafkajs's own retries could write), Java's
 * partitioner (murmur2 on the key, as the original's Java client: a keyed record lands on the same partition),
 * topics auto-created when the broker allows it (as the Java producer).
 */
export const KAFKA_PRODUCER_CONFIG = {
  idempotent: true,
  allowAutoTopicCreation: true,
  retry: KAFKA_RETRY,
} as const;

/** The part of a kafkajs Producer the plugin uses; `producerFactory` may return any implementation of it. */
export interface KafkaProducerLike {
  connect(): Promise<void>;
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
  disconnect(): Promise<void>;
}

/** Builds one (not yet connected) producer for the given `host:port` brokers. */
export type KafkaProducerFactory = (brokers: readonly string[]) => KafkaProducerLike;

export interface KafkaPluginOptions {
  /** Replaces the kafkajs producer (tests). Defaults to {@link createKafkaJsProducer}. */
  producerFactory?: KafkaProducerFactory;
}

const logger = new Logger('KafkaPlugin');

/** kafkajs warns about this on every idempotent producer we build; bounding the retries is deliberate (see above). */
const IDEMPOTENT_RETRIES_WARNING = 'Limiting retries for the idempotent producer may invalidate EoS guarantees';

/**
 * The default factory: a kafkajs client + idempotent producer with the bounds above. kafkajs's own log is routed
 * to Nest's Logger: its ERROR and WARN entries (failed connections, retried sends) at warn level — the failure
 * itself is reported through the run's result and the error log — and nothing below WARN.
 */
export function createKafkaJsProducer(brokers: readonly string[]): Producer {
  const kafka = new Kafka({
    clientId: 'karya-executor',
    brokers: [...brokers],
    connectionTimeout: KAFKA_CONNECTION_TIMEOUT_MS,
    requestTimeout: KAFKA_REQUEST_TIMEOUT_MS,
    enforceRequestTimeout: true,
    retry: { ...KAFKA_RETRY },
    logLevel: logLevel.WARN,
    logCreator: () => logKafkaJsEntry,
  });
  return kafka.producer({
    ...KAFKA_PRODUCER_CONFIG,
    retry: { ...KAFKA_PRODUCER_CONFIG.retry },
    // Passing it explicitly also silences kafkajs 2's "default partitioner changed" notice.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

function logKafkaJsEntry({ namespace, log }: LogEntry): void {
  const message = typeof log.message === 'string' ? log.message : String(log.message);
  if (message === IDEMPOTENT_RETRIES_WARNING) return;
  const broker: unknown = log['broker'];
  const where = typeof broker === 'string' && broker.length > 0 && !message.includes(broker) ? ` (broker ${broker})` : '';
  logger.warn(`kafkajs ${namespace}: ${message}${where}`);
}

// ---------------------------------------------------------------- plugin

/** A well-formed KafkaProducerRequest. */
interface KafkaRecord {
  topic: string;
  key: string | null;
  message: string;
}

/** Thrown inside run() for a malformed action; becomes a failure result, never escapes. */
class InvalidActionError extends Error {}

/** The reason a run gave up at PRODUCE_DEADLINE_MS. */
class DeadlineError extends Error {}

/** One producer, the runs using it and the kafkajs calls still running on it. */
interface ProducerSlot {
  readonly producer: KafkaProducerLike;
  /** producer.connect(), started when the slot was created (first run after start-up or after a failure). */
  connected: Promise<void>;
  /**
   * Runs holding the slot, plus kafkajs calls (connect, send) not settled yet — including calls a run stopped
   * waiting for at its deadline.
   */
  pending: number;
  /** No longer handed to new runs; disconnected once `pending` reaches 0. */
  retired: boolean;
  disconnecting: boolean;
  /** Resolves once the producer is disconnected. */
  readonly gone: Promise<void>;
  markGone: () => void;
}

/**
 * Runs `karya.core.entities.Action.KafkaProducerRequest` actions (original-karya.md §4): produces
 * `ProducerRecord(topic, key, message)` — UTF-8 strings, as the original's String serializers — with `acks=all`
 * and waits for the acknowledgement. The record carries `x-karya-plan-id` / `x-karya-task-id` headers.
 *
 * Results:
 * - acknowledged → `{ ok: true }`;
 * - anything else (no bootstrap.servers, malformed action, brokers unreachable, broker error, no acknowledgement
 *   within PRODUCE_DEADLINE_MS) → `Kafka produce failed --- error : <message>`.
 *
 * One idempotent producer, connected on the first run and shared by all runs. After a failure (other than a
 * broker rejecting that one record) it is retired: the next run connects a fresh one, and the old one is
 * disconnected once the kafkajs calls still running on it have settled. Delivery is at-least-once, like every
 * action: a run that gave up at its deadline may still see its record written, and the task is retried.
 */
export class KafkaPlugin extends ActionPlugin {
  readonly actionType = ACTION_TYPE.Kafka;
  readonly connector: ConnectorType = 'kafka';

  /** The broker list, or why the connector cannot produce at all (then every run fails with it). */
  private readonly brokers: { ok: true; list: string[] } | { ok: false; reason: string };
  private readonly producerFactory: KafkaProducerFactory;
  private current: ProducerSlot | undefined;
  /** Every producer not yet disconnected (the current one and retired ones). */
  private readonly live = new Set<ProducerSlot>();
  private closing: Promise<void> | undefined;

  constructor(configs: Record<string, unknown> = {}, options: KafkaPluginOptions = {}) {
    super();
    this.brokers = parseBootstrapServers(configs[BOOTSTRAP_SERVERS_KEY]);
    this.producerFactory = options.producerFactory ?? createKafkaJsProducer;
  }

  async run(action: JsonObject, context: ActionContext): Promise<ActionResult> {
    try {
      if (this.closing) return produceFailed('the kafka connector is closed (executor shutting down)');
      if (!this.brokers.ok) return produceFailed(this.brokers.reason);
      let record: KafkaRecord;
      try {
        record = parseAction(action);
      } catch (err) {
        return produceFailed(`invalid KafkaProducerRequest: ${errorText(err)}`);
      }
      return await this.produce(record, context, this.brokers.list);
    } catch (err) {
      // Unreachable by design; the contract is that run() never throws.
      return produceFailed(errorText(err));
    }
  }

  /** Disconnects the producer(s) once in-flight calls have settled. Idempotent. */
  override close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.current) this.retire(this.current);
      await Promise.all([...this.live].map((slot) => slot.gone));
    })();
    return this.closing;
  }

  private async produce(record: KafkaRecord, context: ActionContext, brokers: string[]): Promise<ActionResult> {
    let slot: ProducerSlot;
    try {
      slot = this.acquire();
    } catch (err) {
      return produceFailed(`could not create a Kafka producer: ${errorText(err)}`);
    }
    const brokerList = brokers.join(',');
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DeadlineError(`timed out after ${PRODUCE_DEADLINE_MS} ms`)),
      PRODUCE_DEADLINE_MS,
    );
    const { signal } = deadline;
    try {
      try {
        await untilAborted(slot.connected, signal);
      } catch (err) {
        this.retire(slot);
        if (signal.aborted) return produceFailed(`timed out after ${PRODUCE_DEADLINE_MS} ms connecting to the Kafka brokers ${brokerList}`);
        return produceFailed(`could not connect to the Kafka brokers ${brokerList}: ${errorText(err)}`);
      }

      const sent: ProducerRecord = {
        topic: record.topic,
        messages: [
          {
            key: record.key,
            value: record.message,
            headers: { [PLAN_ID_HEADER]: context.planId, [TASK_ID_HEADER]: context.taskId },
          },
        ],
        acks: ACKS_ALL,
        timeout: KAFKA_ACK_TIMEOUT_MS,
      };
      try {
        await untilAborted(this.track(slot, callAsync(() => slot.producer.send(sent))), signal);
        return { ok: true };
      } catch (err) {
        if (signal.aborted) {
          this.retire(slot);
          return produceFailed(
            `timed out after ${PRODUCE_DEADLINE_MS} ms waiting for the acknowledgement of topic ${record.topic} (brokers ${brokerList}); the record may still be written`,
          );
        }
        if (!isRecordRejection(err)) this.retire(slot);
        return produceFailed(errorText(err));
      }
    } finally {
      clearTimeout(timer);
      slot.pending--;
      this.releaseIfIdle(slot);
    }
  }

  /**
   * The shared producer, held for one run (release: `pending--` then releaseIfIdle). Creates one, and starts
   * connecting it, when there is none: on the first run, and on the first run after a failure retired it.
   */
  private acquire(): ProducerSlot {
    let slot = this.current;
    if (!slot) {
      if (!this.brokers.ok) throw new Error(this.brokers.reason);
      const producer = this.producerFactory(this.brokers.list);
      let markGone: () => void = () => undefined;
      const gone = new Promise<void>((resolve) => (markGone = resolve));
      slot = { producer, connected: Promise.resolve(), pending: 0, retired: false, disconnecting: false, gone, markGone };
      const created = slot;
      created.connected = this.track(created, callAsync(() => producer.connect()));
      this.current = created;
      this.live.add(created);
    }
    slot.pending++;
    return slot;
  }

  /** Counts a kafkajs call against the slot until it settles; the returned promise is the call's own outcome. */
  private track<T>(slot: ProducerSlot, call: Promise<T>): Promise<T> {
    slot.pending++;
    const settled = () => {
      slot.pending--;
      this.releaseIfIdle(slot);
    };
    call.then(settled, settled);
    return call;
  }

  /** Stops handing the slot to new runs; it is disconnected as soon as nothing runs on it. */
  private retire(slot: ProducerSlot): void {
    if (this.current === slot) this.current = undefined;
    slot.retired = true;
    this.releaseIfIdle(slot);
  }

  /**
   * Disconnects a retired producer once its kafkajs calls have settled. Not earlier: kafkajs reconnects the
   * cluster from inside a send's (or connect's) retry loop, so a disconnect under a running call could leave a
   * connection open behind it. Every call ends on its own (bounded retries, see the time bounds above).
   */
  private releaseIfIdle(slot: ProducerSlot): void {
    if (!slot.retired || slot.pending > 0 || slot.disconnecting) return;
    slot.disconnecting = true;
    callAsync(() => slot.producer.disconnect())
      .catch((err: unknown) => logger.warn(`disconnecting a Kafka producer failed: ${errorText(err)}`))
      .finally(() => {
        this.live.delete(slot);
        slot.markGone();
      });
  }
}

// ---------------------------------------------------------------- configs and action JSON

/**
 * `bootstrap.servers`: a comma-separated `host:port` list, as the Java client's. Blank entries are ignored.
 * IPv6 literals are refused: kafkajs splits an address at its first colon.
 */
function parseBootstrapServers(raw: unknown): { ok: true; list: string[] } | { ok: false; reason: string } {
  const where = `executor.yml connectors → kafka → configs → ${BOOTSTRAP_SERVERS_KEY}`;
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) {
    return { ok: false, reason: `the kafka connector has no ${BOOTSTRAP_SERVERS_KEY} configured (${where})` };
  }
  if (typeof raw !== 'string') {
    return { ok: false, reason: `the kafka connector's ${BOOTSTRAP_SERVERS_KEY} must be a "host:port,host:port" string, got ${JSON.stringify(raw)} (${where})` };
  }
  const list: string[] = [];
  for (const entry of raw.split(',').map((s) => s.trim())) {
    if (entry === '') continue;
    const match = /^([^:/\s[\]]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) {
      return {
        ok: false,
        reason: `the kafka connector's ${BOOTSTRAP_SERVERS_KEY} entry ${JSON.stringify(entry)} is not host:port (${where}; IPv6 literals are not supported)`,
      };
    }
    list.push(entry);
  }
  if (list.length === 0) return { ok: false, reason: `the kafka connector has no ${BOOTSTRAP_SERVERS_KEY} configured (${where})` };
  return { ok: true, list };
}

/** Kafka's legal topic names (org.apache.kafka.common.internals.Topic). */
const TOPIC_PATTERN = /^[a-zA-Z0-9._-]{1,249}$/;

function parseAction(action: JsonObject): KafkaRecord {
  if (typeof action !== 'object' || action === null || Array.isArray(action)) {
    throw new InvalidActionError('the action is not a JSON object');
  }
  const topic = action['topic'];
  if (typeof topic !== 'string' || topic.length === 0) throw new InvalidActionError('topic is required');
  if (!TOPIC_PATTERN.test(topic) || topic === '.' || topic === '..') {
    throw new InvalidActionError(`topic ${JSON.stringify(topic)} is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)`);
  }
  const message = action['message'];
  if (typeof message !== 'string') throw new InvalidActionError('message must be a string');
  const key = action['key'];
  if (key !== undefined && key !== null && typeof key !== 'string') throw new InvalidActionError('key must be a string or null');
  return { topic, key: key ?? null, message };
}

// ---------------------------------------------------------------- errors

function produceFailed(message: string): ActionResult {
  return { ok: false, error: `Kafka produce failed --- error : ${message}` };
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  type?: unknown;
  code?: unknown;
  cause?: unknown;
}

function asErrorLike(err: unknown): ErrorLike {
  return typeof err === 'object' && err !== null ? (err as ErrorLike) : {};
}

/**
 * Broker answers that concern this one record, not the connection or the producer's state: the producer stays in
 * use after them. Any other failure retires it (a producer that failed for another reason — lost connection,
 * timeout, fenced or out-of-sequence idempotent state — is replaced rather than trusted).
 */
const RECORD_REJECTIONS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'INVALID_TOPIC_EXCEPTION',
  'TOPIC_AUTHORIZATION_FAILED',
  'POLICY_VIOLATION',
  'INVALID_REQUIRED_ACKS',
]);

/** True when the error (or what kafkajs wrapped, e.g. in KafkaJSNumberOfRetriesExceeded) is a record rejection. */
function isRecordRejection(err: unknown): boolean {
  for (let e = asErrorLike(err), depth = 0; depth < 5; e = asErrorLike(e.cause), depth++) {
    if (typeof e.type === 'string' && RECORD_REJECTIONS.has(e.type)) return true;
    if (e.cause === undefined) break;
  }
  return false;
}

/** An error's message, with the broker's error type (kafkajs protocol errors) when the message does not say it. */
function errorText(err: unknown): string {
  const e = asErrorLike(err);
  let message = typeof e.message === 'string' ? e.message.trim() : '';
  if (!message) message = typeof err === 'string' ? err : String(err);
  let type: unknown;
  for (let inner = e, depth = 0; depth < 5 && type === undefined; inner = asErrorLike(inner.cause), depth++) {
    if (typeof inner.type === 'string') type = inner.type;
    if (inner.cause === undefined) break;
  }
  return typeof type === 'string' && !message.includes(type) ? `${message} [${type}]` : message;
}

// ---------------------------------------------------------------- promises

/** Runs `fn`, turning a synchronous throw into a rejection. */
function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

