import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ChannelModel, ConfirmChannel, connect } from 'amqplib';
import { QueueConfig, QueueProvider } from '../../config/karya-config';
import { MemoryQueue } from './memory.queue';
import { describeQueueContract, Gate, sleep, waitFor } from './queue.contract';
import { QueueModule } from './queue.module';
import { Delivery, QueueName, TaskQueue } from './queue.port';
import { ORIGINAL_QUEUE_HEADER, RabbitMqQueue, REASON_HEADER } from './rabbitmq.queue';

const RABBIT: QueueConfig = {
  provider: 'rabbitmq',
  username: 'guest',
  password: 'guest',
  virtualHost: '/',
  clusterNodes: ['127.0.0.1:5672'],
  heartbeat: 5,
  connectTimeout: 5000,
  publishTimeout: 10_000,
};
const ADMIN_URL = 'amqp://guest:guest@127.0.0.1:5672/%2F';
const QUEUE_NAMES = ['karya-executor-queue', 'karya-executor-batch-queue', 'karya-hooks-queue', 'karya-dead-letter-queue'];
const EXCHANGE_NAMES = ['karya-exchange', 'karya-dead-letter-exchange'];
const dlxArgs = (prefix: string) => ({
  durable: true,
  deadLetterExchange: `${prefix}karya-dead-letter-exchange`,
  deadLetterRoutingKey: 'karya-dead-letter-key',
});

/** Every prefix handed out, so afterAll can delete what each test declared on the shared broker. */
const prefixes: string[] = [];
function newPrefix(): string {
  const prefix = `test-${randomUUID().slice(0, 8)}-`;
  prefixes.push(prefix);
  return prefix;
}

let admin: ChannelModel;

/** What the adapters log, kept off the console and readable by tests (the password test reads it). */
const logged: string[] = [];
beforeAll(() => {
  const keep = (message: unknown): void => void logged.push(String(message));
  jest.spyOn(Logger.prototype, 'log').mockImplementation(keep);
  jest.spyOn(Logger.prototype, 'warn').mockImplementation(keep);
  jest.spyOn(Logger.prototype, 'error').mockImplementation(keep);
  jest.spyOn(Logger.prototype, 'debug').mockImplementation(keep);
});
afterAll(() => jest.restoreAllMocks());

/** Runs `fn` on a channel of its own: a failed declaration closes the channel it was made on. */
async function onChannel<T>(fn: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  const channel = await admin.createConfirmChannel();
  channel.on('error', () => undefined); // the failure is asserted through fn's rejection
  try {
    return await fn(channel);
  } finally {
    await channel.close().catch(() => undefined);
  }
}

beforeAll(async () => {
  admin = await connect(ADMIN_URL);
});

afterAll(async () => {
  for (const prefix of prefixes) {
    for (const name of QUEUE_NAMES) await onChannel((ch) => ch.deleteQueue(prefix + name)).catch(() => undefined);
    for (const name of EXCHANGE_NAMES) await onChannel((ch) => ch.deleteExchange(prefix + name)).catch(() => undefined);
  }
  await admin.close();
});

describeQueueContract('memory', async () => new MemoryQueue());
describeQueueContract('rabbitmq', async () => new RabbitMqQueue(RABBIT, newPrefix()));

describe('RabbitMqQueue against RabbitMQ', () => {
  let prefix: string;
  let queue: RabbitMqQueue;
  let gates: Gate[];

  beforeEach(() => {
    gates = [];
    prefix = newPrefix();
    queue = new RabbitMqQueue(RABBIT, prefix);
  });

  afterEach(async () => {
    for (const g of gates) g.open();
    await queue.close();
  });

  it('declares the original topology: durable direct exchanges, durable queues, the DLX arguments, the bindings', async () => {
    await queue.ping(); // resolves once the publisher channel has declared the topology

    await onChannel(async (ch) => {
      for (const name of EXCHANGE_NAMES) await ch.checkExchange(prefix + name);
      for (const name of QUEUE_NAMES) await ch.checkQueue(prefix + name);
    });
    // Re-declaring with the very same properties succeeds, so these are exactly the properties...
    await onChannel(async (ch) => {
      for (const name of EXCHANGE_NAMES) await ch.assertExchange(prefix + name, 'direct', { durable: true });
      await ch.assertQueue(`${prefix}karya-executor-queue`, dlxArgs(prefix));
      await ch.assertQueue(`${prefix}karya-executor-batch-queue`, dlxArgs(prefix));
      await ch.assertQueue(`${prefix}karya-hooks-queue`, dlxArgs(prefix));
      await ch.assertQueue(`${prefix}karya-dead-letter-queue`, { durable: true });
    });
    // ...and re-declaring with anything else fails with PRECONDITION_FAILED.
    const inequivalent: Array<(ch: ConfirmChannel) => Promise<unknown>> = [
      (ch) => ch.assertExchange(`${prefix}karya-exchange`, 'topic', { durable: true }),
      (ch) => ch.assertExchange(`${prefix}karya-dead-letter-exchange`, 'direct', { durable: false }),
      (ch) => ch.assertQueue(`${prefix}karya-executor-queue`, { durable: true }),
      (ch) => ch.assertQueue(`${prefix}karya-hooks-queue`, { ...dlxArgs(prefix), deadLetterRoutingKey: 'other' }),
      (ch) => ch.assertQueue(`${prefix}karya-executor-queue`, { ...dlxArgs(prefix), durable: false }),
      (ch) => ch.assertQueue(`${prefix}karya-dead-letter-queue`, { durable: false }),
    ];
    for (const declare of inequivalent) {
      await expect(onChannel(declare)).rejects.toThrow(/PRECONDITION_FAILED/);
    }
    // Bindings: each routing key reaches its queue.
    const routes: Array<[string, string, string]> = [
      ['karya-exchange', 'karya-executor-key', 'karya-executor-queue'],
      ['karya-exchange', 'karya-executor-batch-key', 'karya-executor-batch-queue'],
      ['karya-exchange', 'karya-hooks-key', 'karya-hooks-queue'],
      ['karya-dead-letter-exchange', 'karya-dead-letter-key', 'karya-dead-letter-queue'],
    ];
    await onChannel(async (ch) => {
      for (const [exchange, key, target] of routes) {
        ch.publish(prefix + exchange, key, Buffer.from(JSON.stringify({ via: key })));
        await ch.waitForConfirms();
        const got = await ch.get(prefix + target, { noAck: true });
        expect(got && JSON.parse(got.content.toString())).toEqual({ via: key });
      }
    });
  });

  it('publishes persistent JSON messages, dead letters included', async () => {
    await queue.publish(QueueName.Executor, { id: 'durable' });
    await queue.deadLetter(QueueName.Hooks, { id: 'dead' }, 'why not');

    const [message, deadLetter] = await onChannel(async (ch) => [
      await ch.get(`${prefix}karya-executor-queue`, { noAck: true }),
      await ch.get(`${prefix}karya-dead-letter-queue`, { noAck: true }),
    ]);

    if (!message || !deadLetter) throw new Error('expected a message on each queue');
    expect(message.properties.deliveryMode).toBe(2);
    expect(message.properties.contentType).toBe('application/json');
    expect(JSON.parse(message.content.toString())).toEqual({ id: 'durable' });
    expect(deadLetter.properties.deliveryMode).toBe(2);
    expect(deadLetter.properties.headers).toMatchObject({ [REASON_HEADER]: 'why not', [ORIGINAL_QUEUE_HEADER]: 'hooks' });
  });

  it('dead-letters an unparseable message without handing it to the handler, and never requeues it', async () => {
    const handled: Delivery[] = [];
    await queue.consume(QueueName.Executor, async (d) => void handled.push(d), { prefetch: 1 });
    const dead: Delivery[] = [];
    await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });

    await onChannel(async (ch) => {
      ch.sendToQueue(`${prefix}karya-executor-queue`, Buffer.from('{"not": json'), { persistent: true });
      ch.sendToQueue(`${prefix}karya-executor-queue`, Buffer.from('[1, 2, 3]'), { persistent: true });
      await ch.waitForConfirms();
    });
    await queue.publish(QueueName.Executor, { id: 'fine' });

    await waitFor(() => dead.length === 2 && handled.length === 1, 'two dead letters and one handled message');
    await sleep(300);
    expect(handled.map((d) => d.message)).toEqual([{ id: 'fine' }]);
    expect(dead).toHaveLength(2);
    for (const d of dead) {
      expect(d.deadLetterReason).toMatch(/^Unparseable message: /);
      expect(d.originalQueue).toBe(QueueName.Executor);
    }
    expect(dead.map((d) => d.message)).toEqual([{ unparseableBody: '{"not": json' }, { unparseableBody: '[1, 2, 3]' }]);
    await queue.close();
    const remaining = await onChannel((ch) => ch.checkQueue(`${prefix}karya-executor-queue`));
    expect(remaining.messageCount).toBe(0);
  });

  it('reads a dead letter made by the broker itself (x-death) as well as its own', async () => {
    await queue.ping();
    // A message rejected without requeue goes through the queue's x-dead-letter-exchange argument.
    await onChannel(async (ch) => {
      ch.sendToQueue(`${prefix}karya-executor-queue`, Buffer.from(JSON.stringify({ id: 'rejected' })));
      await ch.waitForConfirms();
      const got = await ch.get(`${prefix}karya-executor-queue`);
      if (!got) throw new Error('expected the message back');
      ch.nack(got, false, false);
    });
    const dead: Delivery[] = [];

    await queue.consume(QueueName.DeadLetter, async (d) => void dead.push(d), { prefetch: 1 });

    await waitFor(() => dead.length === 1, 'the dead letter');
    expect(dead[0]).toMatchObject({
      message: { id: 'rejected' },
      deadLetterReason: 'Dead-lettered by RabbitMQ: rejected',
      originalQueue: QueueName.Executor,
    });
  });

  it('recovers by itself when the broker drops its connection, redelivering what was in flight', async () => {
    const release = new Gate();
    gates.push(release);
    const got: Delivery[] = [];
    await queue.consume(
      QueueName.Executor,
      async (d) => {
        got.push(d);
        if (got.length === 1) await release.promise;
      },
      { prefetch: 1 },
    );
    await queue.publish(QueueName.Executor, { id: 'in flight' });
    await waitFor(() => got.length === 1, 'the first delivery');

    await closeConnectionsNamed(`karya ${prefix}`);
    release.open(); // its ack now hits a dead channel and must be dropped quietly

    await waitFor(() => got.length === 2, 'the redelivery after reconnecting');
    expect(got[1]).toMatchObject({ message: { id: 'in flight' }, redelivered: true });
    await queue.publish(QueueName.Executor, { id: 'after' });
    await waitFor(() => got.length === 3, 'a message published after reconnecting');
    expect(got[2].message).toEqual({ id: 'after' });
    await expect(queue.ping()).resolves.toBeUndefined();
  });

  it('recovers a channel the broker closed while the connection stayed up', async () => {
    await queue.ping();
    await onChannel((ch) => ch.deleteExchange(`${prefix}karya-exchange`));

    // The first publish after the deletion may fail (404 closes the channel); the adapter then recycles
    // the connection, which re-declares the topology, and publishing works again.
    await queue.publish(QueueName.Executor, { id: 'lost' }).catch(() => undefined);
    const got: Delivery[] = [];
    await queue.consume(QueueName.Executor, async (d) => void got.push(d), { prefetch: 1 });
    await queue.publish(QueueName.Executor, { id: 'after' });
    await waitFor(() => got.some((d) => d.message.id === 'after'), 'a message published after recovery');
  });

  it('fails fast, leaks no password, and closes promptly when the broker is unreachable', async () => {
    const password = 'S3cret/p@ss:word';
    const cases: Array<[QueueConfig, RegExp]> = [
      [{ ...RABBIT, password, clusterNodes: ['127.0.0.1:5690'] }, /ECONNREFUSED/], // nothing listens
      [{ ...RABBIT, password }, /ACCESS.REFUSED/], // the real broker refuses these credentials
    ];
    for (const [config, cause] of cases) {
      logged.length = 0;
      const unreachable = new RabbitMqQueue(config, newPrefix());
      const started = Date.now();
      const failure = await unreachable.ping().then(
        () => new Error('ping resolved'),
        (err: unknown) => err,
      );
      expect(Date.now() - started).toBeLessThan(3000);
      expect(failure).toBeInstanceOf(Error);
      expect((failure as Error).message).toMatch(/not connected/);

      const pending = unreachable.publish(QueueName.Executor, { id: 'never' }).then(
        () => 'published',
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      const closing = Date.now();
      await unreachable.close();
      expect(Date.now() - closing).toBeLessThan(3000);
      expect(await pending).not.toBe('published');

      const text = [(failure as Error).message, ...logged].join('\n');
      expect(text).toMatch(cause); // the failure was reported...
      expect(text).not.toContain(password); // ...without the password
      expect(text).not.toContain(encodeURIComponent(password));
    }
  });
});

describe('QueueModule', () => {
  it('provides TaskQueue as a MemoryQueue for provider memory, and closes it on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [QueueModule.forRoot({ ...RABBIT, provider: 'memory' })],
    }).compile();
    const queue = moduleRef.get(TaskQueue);
    expect(queue).toBeInstanceOf(MemoryQueue);
    await expect(queue.ping()).resolves.toBeUndefined();

    await moduleRef.close();

    await expect(queue.ping()).rejects.toThrow(/closed/);
  });

  it('refuses an unknown provider, naming it', () => {
    expect(() => QueueModule.forRoot({ ...RABBIT, provider: 'kafka' as QueueProvider })).toThrow(/"kafka"/);
  });
});

/** Closes, broker side, the connections whose client-given name is `name`, as a broker restart would. */
async function closeConnectionsNamed(name: string): Promise<void> {
  const run = promisify(execFile);
  // Tab-separated rather than --formatter json, whose pids (#PID<…>) close_connection does not accept.
  const { stdout } = await run('rabbitmqctl', ['list_connections', 'pid', 'client_properties', '-q']);
  const pids = stdout
    .split('\n')
    .filter((line) => line.includes(`{"connection_name","${name}"}`))
    .map((line) => line.split('\t')[0]);
  expect(pids).toHaveLength(1);
  for (const pid of pids) await run('rabbitmqctl', ['close_connection', pid, 'test: simulated broker failure']);
}
