import { Logger } from '@nestjs/common';
import {
  Kafka,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  logLevel,
  type IHeaders,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';
import { JsonObject } from '../../connectors/repo/entities/plan.entity';
import { ACTION_TYPE } from '../../modules/plans/dto/discriminators';
import { ActionContext, ActionResult } from '../action-plugin';
import {
  KAFKA_ACK_TIMEOUT_MS,
  KAFKA_PRODUCER_CONFIG,
  KafkaPlugin,
  KafkaProducerLike,
  PRODUCE_DEADLINE_MS,
  createKafkaJsProducer,
} from './kafka.plugin';
import { closedPort, startTcpServer } from '../../../test/support/tcp-server';

// ---------------------------------------------------------------- helpers

const CONTEXT: ActionContext = { planId: 'plan-1', taskId: 'task-1', attempt: 1 };
const PREFIX = 'Kafka produce failed --- error : ';

function kafkaAction(fields: { topic?: unknown; message?: unknown; key?: unknown } = {}): JsonObject {
  const action: Record<string, unknown> = { type: ACTION_TYPE.Kafka, topic: 'orders', message: '{"id":1}', ...fields };
  for (const k of Object.keys(action)) if (action[k] === undefined) delete action[k];
  return action as JsonObject;
}

function errorOf(result: ActionResult): string {
  if (result.ok) throw new Error('expected a failure, got { ok: true }');
  return result.error;
}

async function timed<T>(promise: Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await promise;
  return { result, ms: performance.now() - start };
}

/** A promise with its resolve/reject exposed. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const ACK: RecordMetadata[] = [{ topicName: 'orders', partition: 0, errorCode: 0, baseOffset: '0' }];

/**
 * THE ONLY MOCK in this file: no Kafka broker can run on this machine, so the mapping tests inject this fake
 * through the plugin's `producerFactory` option. It records what the plugin asks of a kafkajs Producer.
 * Everything else (the "real kafkajs" and config tests) goes through the actual kafkajs client.
 */
class FakeProducer implements KafkaProducerLike {
  connects = 0;
  disconnects = 0;
  readonly sent: ProducerRecord[] = [];
  /** What connect()/send() do; replaced per test. */
  onConnect: () => Promise<void> = () => Promise.resolve();
  onSend: (record: ProducerRecord) => Promise<RecordMetadata[]> = () => Promise.resolve(ACK);

  constructor(readonly brokers: readonly string[]) {}

  connect(): Promise<void> {
    this.connects++;
    return this.onConnect();
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    this.sent.push(record);
    return this.onSend(record);
  }

  disconnect(): Promise<void> {
    this.disconnects++;
    return Promise.resolve();
  }
}

/** A plugin whose producers are FakeProducers; `setup` configures each one as it is created. */
function fakePlugin(
  setup: (producer: FakeProducer, index: number) => void = () => undefined,
  servers = 'broker-1:9092',
): { plugin: KafkaPlugin; producers: FakeProducer[] } {
  const producers: FakeProducer[] = [];
  const plugin = new KafkaPlugin(
    { 'bootstrap.servers': servers },
    {
      producerFactory: (brokers) => {
        const producer = new FakeProducer(brokers);
        setup(producer, producers.length);
        producers.push(producer);
        return producer;
      },
    },
  );
  return { plugin, producers };
}

/** Lets pending promise callbacks (e.g. a deferred disconnect) run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The run's bound plus generous slack for a loaded CI machine. */
const BOUND_MS = 15_000;

// Nest's Logger is where kafkajs's own log goes (at warn level): captured here, which also keeps the output clean.
let warnings: string[] = [];
beforeEach(() => {
  warnings = [];
  jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
    warnings.push(String(message));
  });
});
afterEach(() => {
  jest.restoreAllMocks();
  jest.useRealTimers();
});

// ---------------------------------------------------------------- (1) mapping, with the fake producer

describe('KafkaPlugin: what is produced, and how results map (fake producer)', () => {
  it('declares the Kafka action type and connector', () => {
    const { plugin } = fakePlugin();
    expect(plugin.actionType).toBe('karya.core.entities.Action.KafkaProducerRequest');
    expect(plugin.connector).toBe('kafka');
  });

  it('sends topic, key, the message as value, the plan/task headers and acks=all; the ack is a success', async () => {
    const { plugin, producers } = fakePlugin(undefined, ' b1:9092, b2.example.com:9093 ,');
    const result = await plugin.run(kafkaAction({ topic: 'orders.v1', key: 'customer-7', message: '{"id":42}' }), {
      planId: 'p-9',
      taskId: 't-3',
      attempt: 2,
    });
    expect(result).toEqual({ ok: true });
    expect(producers).toHaveLength(1);
    expect(producers[0].brokers).toEqual(['b1:9092', 'b2.example.com:9093']);
    expect(producers[0].sent).toEqual([
      {
        topic: 'orders.v1',
        messages: [{ key: 'customer-7', value: '{"id":42}', headers: { 'x-karya-plan-id': 'p-9', 'x-karya-task-id': 't-3' } }],
        acks: -1,
        timeout: KAFKA_ACK_TIMEOUT_MS,
      },
    ]);
  });

  it('key: null and a missing key are both sent as a null key; the message is sent verbatim (even empty)', async () => {
    const { plugin, producers } = fakePlugin();
    expect(await plugin.run(kafkaAction({ key: null, message: 'not json at all' }), CONTEXT)).toEqual({ ok: true });
    expect(await plugin.run(kafkaAction({ message: '' }), CONTEXT)).toEqual({ ok: true });
    const messages = producers[0].sent.map((r) => r.messages[0]);
    expect(messages).toEqual([
      { key: null, value: 'not json at all', headers: { 'x-karya-plan-id': 'plan-1', 'x-karya-task-id': 'task-1' } },
      { key: null, value: '', headers: { 'x-karya-plan-id': 'plan-1', 'x-karya-task-id': 'task-1' } },
    ]);
    expect(producers[0].sent.every((r) => r.acks === -1)).toBe(true);
  });

  it('the default producer is idempotent and Java-partitioned (real kafkajs object, never connected)', () => {
    expect(KAFKA_PRODUCER_CONFIG.idempotent).toBe(true);
    expect(createKafkaJsProducer(['127.0.0.1:9']).isIdempotent()).toBe(true);
    // kafkajs's "limiting retries of an idempotent producer" notice is expected (bounded on purpose) and dropped.
    expect(warnings).toEqual([]);
  });

  it('one producer, connected once, is reused by sequential and concurrent runs', async () => {
    const { plugin, producers } = fakePlugin();
    for (let i = 0; i < 3; i++) expect(await plugin.run(kafkaAction({ key: `k${i}` }), CONTEXT)).toEqual({ ok: true });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => plugin.run(kafkaAction({ key: `c${i}` }), CONTEXT)));
    expect(results).toEqual(Array(10).fill({ ok: true }));
    expect(producers).toHaveLength(1);
    expect(producers[0].connects).toBe(1);
    expect(producers[0].sent).toHaveLength(13);
    expect(producers[0].disconnects).toBe(0);
  });

  it('concurrent first runs share the one connect in progress', async () => {
    const gate = deferred<void>();
    const { plugin, producers } = fakePlugin((p) => (p.onConnect = () => gate.promise));
    const runs = Array.from({ length: 5 }, () => plugin.run(kafkaAction(), CONTEXT));
    await flush();
    expect(producers).toHaveLength(1);
    expect(producers[0].sent).toHaveLength(0); // nothing is sent before the producer is connected
    gate.resolve();
    expect(await Promise.all(runs)).toEqual(Array(5).fill({ ok: true }));
    expect(producers[0].connects).toBe(1);
  });

  it('a send failure maps to "Kafka produce failed --- error : <message>"', async () => {
    const { plugin } = fakePlugin((p) => (p.onSend = () => Promise.reject(new Error('boom'))));
    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: false, error: 'Kafka produce failed --- error : boom' });
  });

  it('a broker error names its Kafka error type, also when kafkajs wrapped it after its retries', async () => {
    const protocolError = new KafkaJSProtocolError(
      Object.assign(new Error('This server does not host this topic-partition'), { type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3, retriable: true }),
    );
    const wrapped = new KafkaJSNumberOfRetriesExceeded(protocolError, { retryCount: 2, retryTime: 800 });
    const { plugin } = fakePlugin((p) => (p.onSend = () => Promise.reject(wrapped)));
    expect(errorOf(await plugin.run(kafkaAction(), CONTEXT))).toBe(
      `${PREFIX}This server does not host this topic-partition [UNKNOWN_TOPIC_OR_PARTITION]`,
    );
  });

  it('after a failed send the producer is replaced: the next run connects a new one, the old one is disconnected', async () => {
    const { plugin, producers } = fakePlugin((p, i) => {
      if (i === 0) p.onSend = () => Promise.reject(new Error('Connection error: read ECONNRESET'));
    });
    expect(errorOf(await plugin.run(kafkaAction(), CONTEXT))).toBe(`${PREFIX}Connection error: read ECONNRESET`);
    await flush();
    expect(producers[0].disconnects).toBe(1);
    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: true });
    expect(producers).toHaveLength(2);
    expect(producers[1].connects).toBe(1);
    expect(producers[1].disconnects).toBe(0);
  });

  it('a broker rejecting one record (e.g. MESSAGE_TOO_LARGE) keeps the producer', async () => {
    const tooLarge = new KafkaJSProtocolError(
      Object.assign(new Error('The request included a message larger than the max message size the server will accept'), {
        type: 'MESSAGE_TOO_LARGE',
        code: 10,
        retriable: false,
      }),
    );
    let calls = 0;
    const { plugin, producers } = fakePlugin((p) => (p.onSend = () => (++calls === 1 ? Promise.reject(tooLarge) : Promise.resolve(ACK))));
    expect(errorOf(await plugin.run(kafkaAction(), CONTEXT))).toBe(
      `${PREFIX}The request included a message larger than the max message size the server will accept [MESSAGE_TOO_LARGE]`,
    );
    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: true });
    expect(producers).toHaveLength(1);
    expect(producers[0].disconnects).toBe(0);
  });

  it('a failed connect fails every run waiting on it; the next run reconnects with a fresh producer', async () => {
    const gate = deferred<void>();
    const { plugin, producers } = fakePlugin((p, i) => {
      if (i === 0) p.onConnect = () => gate.promise;
    }, 'k1:9092,k2:9092');
    const runs = [plugin.run(kafkaAction(), CONTEXT), plugin.run(kafkaAction(), CONTEXT)];
    gate.reject(new Error('Connection error: connect ECONNREFUSED 10.0.0.1:9092'));
    const expected = `${PREFIX}could not connect to the Kafka brokers k1:9092,k2:9092: Connection error: connect ECONNREFUSED 10.0.0.1:9092`;
    expect((await Promise.all(runs)).map(errorOf)).toEqual([expected, expected]);
    await flush();
    expect(producers).toHaveLength(1);
    expect(producers[0].sent).toHaveLength(0);
    expect(producers[0].disconnects).toBe(1);

    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: true });
    expect(producers).toHaveLength(2);
    expect(producers[1].connects).toBe(1);
    expect(producers[1].sent).toHaveLength(1);
  });

  it('a connect that throws synchronously, or a factory that throws, is a failure too', async () => {
    const { plugin } = fakePlugin((p) => {
      p.connect = () => {
        throw new Error('sync boom');
      };
    });
    expect(errorOf(await plugin.run(kafkaAction(), CONTEXT))).toBe(`${PREFIX}could not connect to the Kafka brokers broker-1:9092: sync boom`);

    const throwing = new KafkaPlugin(
      { 'bootstrap.servers': 'b:1' },
      {
        producerFactory: () => {
          throw new Error('bad client config');
        },
      },
    );
    expect(errorOf(await throwing.run(kafkaAction(), CONTEXT))).toBe(`${PREFIX}could not create a Kafka producer: bad client config`);
  });

  it('a run in flight on a producer that another run retired is not cut off', async () => {
    const slow = deferred<RecordMetadata[]>();
    const { plugin, producers } = fakePlugin((p, i) => {
      if (i === 0) {
        let n = 0;
        p.onSend = () => (++n === 1 ? slow.promise : Promise.reject(new Error('Closed connection')));
      }
    });
    const first = plugin.run(kafkaAction({ key: 'slow' }), CONTEXT);
    await flush();
    expect(errorOf(await plugin.run(kafkaAction({ key: 'fails' }), CONTEXT))).toBe(`${PREFIX}Closed connection`);
    await flush();
    expect(producers[0].disconnects).toBe(0); // the slow send still runs on it
    slow.resolve(ACK);
    expect(await first).toEqual({ ok: true });
    await flush();
    expect(producers[0].disconnects).toBe(1);
  });

  it(`gives up after PRODUCE_DEADLINE_MS (${PRODUCE_DEADLINE_MS} ms) when connecting hangs; disconnects once the connect settles`, async () => {
    jest.useFakeTimers();
    const gate = deferred<void>();
    const { plugin, producers } = fakePlugin((p, i) => {
      if (i === 0) p.onConnect = () => gate.promise;
    });
    let result: ActionResult | undefined;
    void plugin.run(kafkaAction(), CONTEXT).then((r) => (result = r));
    await jest.advanceTimersByTimeAsync(PRODUCE_DEADLINE_MS - 1);
    expect(result).toBeUndefined();
    await jest.advanceTimersByTimeAsync(1);
    expect(result).toEqual({
      ok: false,
      error: `${PREFIX}timed out after ${PRODUCE_DEADLINE_MS} ms connecting to the Kafka brokers broker-1:9092`,
    });
    // The abandoned connect is still running inside kafkajs: disconnecting now could leave a socket behind it.
    expect(producers[0].disconnects).toBe(0);
    gate.reject(new Error('late failure'));
    await jest.advanceTimersByTimeAsync(0);
    expect(producers[0].disconnects).toBe(1);
    // The next run does not wait on the abandoned producer.
    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: true });
    expect(producers).toHaveLength(2);
  });

  it('gives up after PRODUCE_DEADLINE_MS when the acknowledgement does not come', async () => {
    jest.useFakeTimers();
    const { plugin, producers } = fakePlugin((p, i) => {
      if (i === 0) p.onSend = () => new Promise<RecordMetadata[]>(() => undefined);
    });
    let result: ActionResult | undefined;
    void plugin.run(kafkaAction({ topic: 'slow-topic' }), CONTEXT).then((r) => (result = r));
    await jest.advanceTimersByTimeAsync(PRODUCE_DEADLINE_MS);
    expect(result).toEqual({
      ok: false,
      error: `${PREFIX}timed out after ${PRODUCE_DEADLINE_MS} ms waiting for the acknowledgement of topic slow-topic (brokers broker-1:9092); the record may still be written`,
    });
    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({ ok: true });
    expect(producers).toHaveLength(2);
  });

  it('close() disconnects the producer after in-flight runs finish; later runs fail without a producer; idempotent', async () => {
    const slow = deferred<RecordMetadata[]>();
    const { plugin, producers } = fakePlugin((p) => (p.onSend = () => slow.promise));
    const inflight = plugin.run(kafkaAction(), CONTEXT);
    await flush();
    let closed = false;
    const closing = plugin.close().then(() => (closed = true));
    await flush();
    expect(closed).toBe(false);
    expect(producers[0].disconnects).toBe(0);
    slow.resolve(ACK);
    expect(await inflight).toEqual({ ok: true });
    await closing;
    expect(producers[0].disconnects).toBe(1);

    expect(await plugin.run(kafkaAction(), CONTEXT)).toEqual({
      ok: false,
      error: `${PREFIX}the kafka connector is closed (executor shutting down)`,
    });
    expect(producers).toHaveLength(1);
    await plugin.close();
    expect(producers[0].disconnects).toBe(1);
  });

  it('close() with no producer ever created resolves at once', async () => {
    const { plugin, producers } = fakePlugin();
    await plugin.close();
    expect(producers).toHaveLength(0);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['no topic', { topic: undefined }, 'topic is required'],
    ['an empty topic', { topic: '' }, 'topic is required'],
    ['an illegal topic name', { topic: 'orders/v1' }, 'topic "orders/v1" is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)'],
    ['a 250-character topic', { topic: 'a'.repeat(250) }, `topic "${'a'.repeat(250)}" is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)`],
    ['no message', { message: undefined }, 'message must be a string'],
    ['a non-string message', { message: { a: 1 } }, 'message must be a string'],
    ['a numeric key', { key: 7 }, 'key must be a string or null'],
  ])('rejects an action with %s, without creating a producer', async (_name, fields, reason) => {
    const { plugin, producers } = fakePlugin();
    expect(errorOf(await plugin.run(kafkaAction(fields), CONTEXT))).toBe(`${PREFIX}invalid KafkaProducerRequest: ${reason}`);
    expect(producers).toHaveLength(0);
  });
});

// ---------------------------------------------------------------- (2) real kafkajs, unreachable brokers

describe('KafkaPlugin: real kafkajs against unreachable brokers (no broker runs here)', () => {
  it('nothing listening: fails fast naming the broker and the refused connection; reconnects on the next run', async () => {
    const port = await closedPort();
    const plugin = new KafkaPlugin({ 'bootstrap.servers': `127.0.0.1:${port}` });
    try {
      for (let run = 0; run < 2; run++) {
        const { result, ms } = await timed(plugin.run(kafkaAction(), CONTEXT));
        expect(errorOf(result)).toBe(
          `${PREFIX}could not connect to the Kafka brokers 127.0.0.1:${port}: Connection error: connect ECONNREFUSED 127.0.0.1:${port}`,
        );
        expect(ms).toBeLessThan(BOUND_MS);
      }
      // kafkajs's own log reached Nest's Logger at warn level.
      expect(warnings).toContain(`kafkajs Connection: Connection error: connect ECONNREFUSED 127.0.0.1:${port}`);
      expect(warnings.some((w) => w.includes('Limiting retries'))).toBe(false);
    } finally {
      await plugin.close();
    }
  });

  it('a server that accepts and closes at once: "Closed connection", within the bound; the next run connects again', async () => {
    const tcp = await startTcpServer((socket) => socket.destroy());
    const plugin = new KafkaPlugin({ 'bootstrap.servers': `127.0.0.1:${tcp.port}` });
    try {
      const first = await timed(plugin.run(kafkaAction(), CONTEXT));
      expect(errorOf(first.result)).toBe(`${PREFIX}could not connect to the Kafka brokers 127.0.0.1:${tcp.port}: Closed connection`);
      expect(first.ms).toBeLessThan(BOUND_MS);
      const afterFirst = tcp.connections();
      expect(afterFirst).toBeGreaterThanOrEqual(1);

      const second = await timed(plugin.run(kafkaAction(), CONTEXT));
      expect(errorOf(second.result)).toBe(first.result.ok ? '' : first.result.error);
      expect(second.ms).toBeLessThan(BOUND_MS);
      expect(tcp.connections()).toBeGreaterThan(afterFirst); // a real reconnect, not a cached failure
    } finally {
      await plugin.close();
      await tcp.close();
    }
  });

  it('a server that accepts and never answers: fails within the bound, naming the brokers', async () => {
    const tcp = await startTcpServer(() => undefined);
    const plugin = new KafkaPlugin({ 'bootstrap.servers': `127.0.0.1:${tcp.port}` });
    try {
      const { result, ms } = await timed(plugin.run(kafkaAction(), CONTEXT));
      expect(errorOf(result)).toMatch(new RegExp(`^${PREFIX}(could not connect to|timed out after \\d+ ms connecting to) the Kafka brokers 127\\.0\\.0\\.1:${tcp.port}`));
      expect(ms).toBeLessThan(BOUND_MS);
    } finally {
      await plugin.close();
      await tcp.close();
    }
  });

  it('two brokers, both down: every one is tried, and the run still ends within the bound', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const plugin = new KafkaPlugin({ 'bootstrap.servers': `127.0.0.1:${a},127.0.0.1:${b}` });
    try {
      const { result, ms } = await timed(plugin.run(kafkaAction(), CONTEXT));
      expect(errorOf(result)).toMatch(
        new RegExp(`^${PREFIX}could not connect to the Kafka brokers 127\\.0\\.0\\.1:${a},127\\.0\\.0\\.1:${b}: Connection error: connect ECONNREFUSED 127\\.0\\.0\\.1:(${a}|${b})$`),
      );
      expect(ms).toBeLessThan(BOUND_MS);
      for (const port of [a, b]) expect(warnings.some((w) => w.includes(`ECONNREFUSED 127.0.0.1:${port}`))).toBe(true);
    } finally {
      await plugin.close();
    }
  });
});

// ---------------------------------------------------------------- (3) configuration

describe('KafkaPlugin: bootstrap.servers', () => {
  const where = 'executor.yml connectors → kafka → configs → bootstrap.servers';
  it.each<[string, Record<string, unknown>, string]>([
    ['missing', {}, `the kafka connector has no bootstrap.servers configured (${where})`],
    ['empty', { 'bootstrap.servers': '' }, `the kafka connector has no bootstrap.servers configured (${where})`],
    ['only commas', { 'bootstrap.servers': ' , ,' }, `the kafka connector has no bootstrap.servers configured (${where})`],
    ['not a string', { 'bootstrap.servers': 9092 }, `the kafka connector's bootstrap.servers must be a "host:port,host:port" string, got 9092 (${where})`],
    ['without a port', { 'bootstrap.servers': 'localhost' }, `the kafka connector's bootstrap.servers entry "localhost" is not host:port (${where}; IPv6 literals are not supported)`],
    ['with a scheme', { 'bootstrap.servers': 'PLAINTEXT://k:9092' }, `the kafka connector's bootstrap.servers entry "PLAINTEXT://k:9092" is not host:port (${where}; IPv6 literals are not supported)`],
    ['port out of range', { 'bootstrap.servers': 'k:1,k:65536' }, `the kafka connector's bootstrap.servers entry "k:65536" is not host:port (${where}; IPv6 literals are not supported)`],
    ['an IPv6 literal', { 'bootstrap.servers': '[::1]:9092' }, `the kafka connector's bootstrap.servers entry "[::1]:9092" is not host:port (${where}; IPv6 literals are not supported)`],
  ])('%s: the plugin is built, and every run fails with the reason (no producer, no connection)', async (_name, configs, reason) => {
    let created = 0;
    const plugin = new KafkaPlugin(configs, {
      producerFactory: (brokers) => {
        created++;
        return new FakeProducer(brokers);
      },
    });
    for (let i = 0; i < 2; i++) expect(errorOf(await plugin.run(kafkaAction(), CONTEXT))).toBe(`${PREFIX}${reason}`);
    expect(created).toBe(0);
    await plugin.close();
  });

  it('real kafkajs with no bootstrap.servers fails at once', async () => {
    const plugin = new KafkaPlugin({});
    const { result, ms } = await timed(plugin.run(kafkaAction(), CONTEXT));
    expect(errorOf(result)).toBe(`${PREFIX}the kafka connector has no bootstrap.servers configured (${where})`);
    expect(ms).toBeLessThan(100);
    await plugin.close();
  });
});

// ---------------------------------------------------------------- (4) a real broker, when one is provided

const BROKERS = process.env.KARYA_TEST_KAFKA_BROKERS;

// Skipped (and reported as skipped) unless KARYA_TEST_KAFKA_BROKERS=host:port[,host:port] points at a broker.
(BROKERS ? describe : describe.skip)('KafkaPlugin: integration with a real broker (KARYA_TEST_KAFKA_BROKERS)', () => {
  it('produces keyed and unkeyed records that a consumer reads back with their headers', async () => {
    const brokers = (BROKERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const kafka = new Kafka({ clientId: 'karya-kafka-plugin-test', brokers, logLevel: logLevel.NOTHING });
    const topic = `karya-test-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    const admin = kafka.admin();
    await admin.connect();
    const plugin = new KafkaPlugin({ 'bootstrap.servers': BROKERS });
    const consumer = kafka.consumer({ groupId: `${topic}-group` });
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });

      expect(await plugin.run(kafkaAction({ topic, key: 'order-42', message: '{"id":42}' }), { planId: 'p-int', taskId: 't-1', attempt: 1 })).toEqual({ ok: true });
      expect(await plugin.run(kafkaAction({ topic, key: null, message: 'plain text' }), { planId: 'p-int', taskId: 't-2', attempt: 1 })).toEqual({ ok: true });

      const received: { key: string | null; value: string | null; headers: Record<string, string> }[] = [];
      const headerText = (headers: IHeaders | undefined): Record<string, string> =>
        Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('utf8') : String(v)]));
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const done = deferred<void>();
      await consumer.run({
        eachMessage: async ({ message }) => {
          received.push({
            key: message.key ? message.key.toString('utf8') : null,
            value: message.value ? message.value.toString('utf8') : null,
            headers: headerText(message.headers),
          });
          if (received.length === 2) done.resolve();
        },
      });
      const timer = setTimeout(() => done.reject(new Error(`only ${received.length} record(s) consumed in 30 s`)), 30_000);
      try {
        await done.promise;
      } finally {
        clearTimeout(timer);
      }
      expect(received).toEqual([
        { key: 'order-42', value: '{"id":42}', headers: { 'x-karya-plan-id': 'p-int', 'x-karya-task-id': 't-1' } },
        { key: null, value: 'plain text', headers: { 'x-karya-plan-id': 'p-int', 'x-karya-task-id': 't-2' } },
      ]);
    } finally {
      await consumer.disconnect();
      await plugin.close();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  }, 60_000);
});
