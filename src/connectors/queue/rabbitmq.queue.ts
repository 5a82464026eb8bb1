import { Logger } from '@nestjs/common';
import amqp, { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { QueueConfig } from '../../config/karya-config';
import {
  assertPrefetch, ConsumeOptions, Consumer, deadLetterReason, Delivery, DeliveryHandler, QueueConsumer, QueueMessage, QueueName, recordedReason, TaskQueue,
} from './queue.port';

/** The original's topology names; a test prefix goes in front of every exchange and queue name. */
const EXCHANGE = 'karya-exchange';
const DEAD_LETTER_EXCHANGE = 'karya-dead-letter-exchange';
const DEAD_LETTER_ROUTING_KEY = 'karya-dead-letter-key';
const QUEUES: Record<QueueName, { queue: string; routingKey: string; deadLetter: boolean }> = {
  [QueueName.Executor]: { queue: 'karya-executor-queue', routingKey: 'karya-executor-key', deadLetter: false },
  [QueueName.ExecutorBatch]: { queue: 'karya-executor-batch-queue', routingKey: 'karya-executor-batch-key', deadLetter: false },
  [QueueName.Hooks]: { queue: 'karya-hooks-queue', routingKey: 'karya-hooks-key', deadLetter: false },
  [QueueName.DeadLetter]: { queue: 'karya-dead-letter-queue', routingKey: DEAD_LETTER_ROUTING_KEY, deadLetter: true },
};

export const REASON_HEADER = 'x-karya-reason';
export const ORIGINAL_QUEUE_HEADER = 'x-karya-original-queue';
const JSON_CONTENT_TYPE = 'application/json';

const RECONNECT_SECONDS = 1;
/** How long ping() waits for a connection in progress before declaring the broker down. */
const PING_WAIT_MS = 1000;
/** How long ping() waits for the broker to answer on a connection that looks up. */
const PING_ROUND_TRIP_MS = 800;

interface Route {
  readonly exchange: string;
  readonly routingKey: string;
  readonly queue: string;
}

/**
 * TaskQueue over RabbitMQ through amqp-connection-manager, which reconnects (round-robin over
 * clusterNodes) and re-runs every channel's setup after a reconnect. Each consumer owns its channel, so
 * its prefetch is its own and closing it hands its unacked messages back to the broker.
 *
 * Acks always go to the raw amqplib channel that delivered the message, never through the ChannelWrapper:
 * after a reconnect the wrapper points at a new channel, where the old delivery tag is unknown and acking
 * it would make the broker close that new channel.
 */
export class RabbitMqQueue extends TaskQueue {
  private readonly logger = new Logger(RabbitMqQueue.name);
  private readonly routes: Record<QueueName, Route>;
  private readonly exchange: string;
  private readonly deadLetterExchange: string;
  private readonly nodes: readonly string[];
  private readonly secrets: readonly string[];
  private readonly connection: AmqpConnectionManager;
  private readonly publisher: ChannelWrapper;
  private publisherReady = false;
  /** The publisher's current raw channel, for ping()'s round trip. */
  private publisherChannel: ConfirmChannel | undefined;
  private readonly consumers = new Set<ConsumerState>();
  private closing: Promise<void> | undefined;
  /** Reconnect attempts repeat every second while the broker is down: log the first failure only. */
  private connectFailureLogged = false;

  constructor(config: QueueConfig, namePrefix = '') {
    super();
    if (config.clusterNodes.length === 0) {
      throw new Error('queue.clusterNodes must list at least one host:port');
    }
    this.nodes = [...config.clusterNodes];
    this.secrets = config.password ? [config.password, encodeURIComponent(config.password)] : [];
    this.exchange = namePrefix + EXCHANGE;
    this.deadLetterExchange = namePrefix + DEAD_LETTER_EXCHANGE;
    this.routes = {
      [QueueName.Executor]: this.route(namePrefix, QueueName.Executor),
      [QueueName.ExecutorBatch]: this.route(namePrefix, QueueName.ExecutorBatch),
      [QueueName.Hooks]: this.route(namePrefix, QueueName.Hooks),
      [QueueName.DeadLetter]: this.route(namePrefix, QueueName.DeadLetter),
    };

    const credentials = `${encodeURIComponent(config.username)}:${encodeURIComponent(config.password)}`;
    const vhost = encodeURIComponent(config.virtualHost || '/');
    const urls = this.nodes.map((node) => `amqp://${credentials}@${node}/${vhost}`);
    this.connection = amqp.connect(urls, {
      // A broker that goes silent without closing anything (a partition) is noticed after two to three
      // heartbeats; the connection is then dropped and the manager reconnects.
      heartbeatIntervalInSeconds: config.heartbeat,
      reconnectTimeInSeconds: RECONNECT_SECONDS,
      connectionOptions: {
        // Until the AMQP handshake completes, so a node that accepts TCP and then says nothing is given up too.
        timeout: config.connectTimeout,
        clientProperties: { connection_name: `karya${namePrefix ? ` ${namePrefix}` : ''}` },
      },
    });
    // Never log the `url` these events carry: it holds the password.
    this.connection.on('connect', () => {
      this.connectFailureLogged = false;
      this.logger.log(`Connected to RabbitMQ (${this.nodes.join(', ')})`);
    });
    this.connection.on('disconnect', ({ err }) => {
      if (!this.closing) this.logger.warn(`Disconnected from RabbitMQ: ${this.describe(err)}; reconnecting`);
    });
    this.connection.on('connectFailed', ({ err }) => {
      if (this.connectFailureLogged || this.closing) return;
      this.connectFailureLogged = true;
      this.logger.warn(`Cannot connect to RabbitMQ (${this.nodes.join(', ')}): ${this.describe(err)}; retrying`);
    });
    this.connection.on('blocked', ({ reason }) => this.logger.warn(`RabbitMQ blocked publishing: ${reason}`));
    this.connection.on('unblocked', () => this.logger.log('RabbitMQ unblocked publishing'));

    this.publisher = this.connection.createChannel({
      name: 'karya-publisher',
      // Waiting for a connection included: a caller (a scheduler's dispatch, an executor's dead letter)
      // gets an error it can act on instead of a promise that lasts as long as the outage.
      publishTimeout: config.publishTimeout,
      setup: (channel: ConfirmChannel) => this.setUpPublisher(channel),
    });
    // A ChannelWrapper emits 'error' when a setup fails; unhandled, EventEmitter would throw it.
    this.publisher.on('error', (err: Error) => {
      if (isRefusal(err)) this.logger.error(`RabbitMQ publisher channel setup failed: ${this.describe(err)}`);
      else this.logger.warn(`RabbitMQ publisher channel setup interrupted: ${this.describe(err)}`);
    });
  }

  async publish(queue: QueueName, message: QueueMessage): Promise<void> {
    this.assertOpen();
    const route = this.routes[queue];
    await this.publisher.publish(route.exchange, route.routingKey, encode(message), {
      persistent: true,
      contentType: JSON_CONTENT_TYPE,
    });
  }

  async publishBatch(queue: QueueName, messages: readonly QueueMessage[]): Promise<void> {
    this.assertOpen();
    const route = this.routes[queue];
    // Encode everything first: one unserialisable message rejects the batch before any is sent.
    const bodies = messages.map(encode);
    await Promise.all(
      bodies.map((body) =>
        this.publisher.publish(route.exchange, route.routingKey, body, {
          persistent: true,
          contentType: JSON_CONTENT_TYPE,
        }),
      ),
    );
  }

  async deadLetter(from: QueueName, message: QueueMessage, reason: string): Promise<void> {
    this.assertOpen();
    await this.publishDeadLetter(encode(message), from, reason, JSON_CONTENT_TYPE);
  }

  async consume(queue: QueueName, handler: DeliveryHandler, options: ConsumeOptions): Promise<QueueConsumer> {
    this.assertOpen();
    assertPrefetch(options.prefetch);
    const state = new ConsumerState(queue, handler, options.prefetch);
    state.wrapper = this.connection.createChannel({
      name: `karya-${queue}-consumer`,
      setup: (channel: ConfirmChannel) => this.setUpConsumer(state, channel),
    });
    state.wrapper.on('error', (err: Error) => {
      if (!isRefusal(err)) {
        // The connection went down mid-setup; the setup runs again on the next connection.
        this.logger.warn(`RabbitMQ ${queue} consumer setup interrupted: ${this.describe(err)}`);
      } else if (!state.registered.settled) {
        // The connection stays up, so no new attempt would come: fail consume() instead of hanging it.
        state.registered.reject(err);
      } else {
        this.logger.error(`RabbitMQ ${queue} consumer setup failed: ${this.describe(err)}`);
      }
    });
    this.consumers.add(state);
    try {
      // Waits for the broker's consume-ok, however long the connection takes to come up.
      await state.registered.promise;
    } catch (err) {
      await this.cancelConsumer(state);
      throw new Error(`Cannot consume from ${queue}: ${this.describe(err)}`);
    }
    return new QueueConsumer(
      () => this.cancelConsumer(state),
      () => this.abortConsumer(state),
    );
  }

  async ping(): Promise<void> {
    if (this.closing) throw new Error('RabbitMQ queue is closed');
    // Connected only means no heartbeat was missed yet: a round trip shows the broker answers now.
    if (this.publisherReady && this.connection.isConnected()) return this.roundTrip();
    // Give a connection that is coming up (just after start, or a reconnect) a moment before failing.
    const connected = await new Promise<boolean>((resolve) => {
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.publisher.removeListener('connect', onConnect);
        resolve(false);
      }, PING_WAIT_MS);
      this.publisher.once('connect', onConnect);
    });
    if (!connected) {
      throw new Error(`RabbitMQ is not connected, or its publisher channel is not set up (${this.nodes.join(', ')})`);
    }
  }

  private async roundTrip(): Promise<void> {
    const channel = this.publisherChannel;
    if (!channel) throw new Error(`RabbitMQ publisher channel is not set up (${this.nodes.join(', ')})`);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        channel.checkExchange(this.exchange),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`RabbitMQ did not answer within ${PING_ROUND_TRIP_MS} ms (${this.nodes.join(', ')})`)),
            PING_ROUND_TRIP_MS,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.consumers].map((c) => this.cancelConsumer(c)));
      try {
        // Also closes the publisher channel, rejecting publishes still waiting for a connection.
        await this.connection.close();
      } catch (err) {
        this.logger.warn(`Closing the RabbitMQ connection failed: ${this.describe(err)}`);
      }
    })();
    return this.closing;
  }

  private route(prefix: string, queue: QueueName): Route {
    const { queue: name, routingKey, deadLetter } = QUEUES[queue];
    return {
      exchange: prefix + (deadLetter ? DEAD_LETTER_EXCHANGE : EXCHANGE),
      routingKey,
      queue: prefix + name,
    };
  }

  private assertOpen(): void {
    // A ChannelWrapper of a closed manager queues publishes forever instead of failing them.
    if (this.closing) throw new Error('RabbitMQ queue is closed');
  }

  /** Idempotent, so every channel runs it: no channel has to wait for another to declare what it uses. */
  private async declareTopology(channel: ConfirmChannel): Promise<void> {
    await channel.assertExchange(this.exchange, 'direct', { durable: true });
    await channel.assertExchange(this.deadLetterExchange, 'direct', { durable: true });
    for (const queue of [QueueName.Executor, QueueName.ExecutorBatch, QueueName.Hooks]) {
      const route = this.routes[queue];
      await channel.assertQueue(route.queue, {
        durable: true,
        deadLetterExchange: this.deadLetterExchange,
        deadLetterRoutingKey: DEAD_LETTER_ROUTING_KEY,
      });
      await channel.bindQueue(route.queue, route.exchange, route.routingKey);
    }
    const deadLetter = this.routes[QueueName.DeadLetter];
    await channel.assertQueue(deadLetter.queue, { durable: true });
    await channel.bindQueue(deadLetter.queue, deadLetter.exchange, deadLetter.routingKey);
  }

  private async setUpPublisher(channel: ConfirmChannel): Promise<void> {
    const watched = this.watch(channel, 'publisher');
    await this.declareTopology(channel);
    this.publisherChannel = channel;
    this.publisherReady = true;
    void watched.closed.then(() => {
      this.publisherReady = false;
      if (!this.closing) this.recoverChannel(watched, 'publisher');
    });
  }

  private async setUpConsumer(state: ConsumerState, channel: ConfirmChannel): Promise<void> {
    if (!state.active) return;
    const watched = this.watch(channel, `${state.queue} consumer`);
    await this.declareTopology(channel);
    // In the setup, so that every channel made after a reconnect is limited before its consumer starts.
    await channel.prefetch(state.prefetch);
    const { consumerTag } = await channel.consume(
      this.routes[state.queue].queue,
      (msg) => this.onMessage(state, watched, msg),
      { noAck: false },
    );
    watched.consumerTag = consumerTag;
    state.current = watched;
    void watched.closed.then(() => {
      if (state.active) this.recoverChannel(watched, `${state.queue} consumer`);
    });
    state.registered.resolve();
  }

  private watch(channel: ConfirmChannel, what: string): WatchedChannel {
    // amqplib emits 'error' on a channel the broker closes, and ChannelWrapper listens only for 'close':
    // without this listener that 'error' is thrown out of amqplib's frame handling.
    channel.on('error', (err: Error) => this.logger.warn(`RabbitMQ closed the ${what} channel: ${this.describe(err)}`));
    return new WatchedChannel(channel, this.connection.connection);
  }

  /**
   * amqp-connection-manager recreates channels only when the whole connection comes back. A channel the
   * broker closed on its own while the connection stays up (an operation on a deleted exchange, a consumer
   * over the delivery-acknowledgement timeout) would otherwise stay dead behind a healthy-looking
   * connection, queueing publishes or starving a consumer forever. Cycling the connection recreates every
   * channel and re-runs its setup, which also re-declares the topology.
   */
  private recoverChannel(watched: WatchedChannel, what: string): void {
    // Deferred so that, when the whole connection is going down, its own close is seen first.
    setImmediate(() => {
      if (this.closing || !watched.owner || this.connection.connection !== watched.owner) return;
      this.logger.warn(`The ${what} channel closed while the connection is up; reconnecting to recover it`);
      this.connection.reconnect();
    });
  }

  private onMessage(state: ConsumerState, watched: WatchedChannel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled this consumer, typically because its queue was deleted.
      if (state.active) {
        this.logger.warn(`RabbitMQ cancelled the ${state.queue} consumer`);
        this.recoverChannel(watched, `${state.queue} consumer`);
      }
      return;
    }
    if (!state.active) {
      // Arrived between cancel and cancel-ok: hand it straight back for other consumers.
      nackQuietly(watched, msg, true);
      return;
    }
    const work = this.handle(state, watched, msg);
    state.running.add(work);
    void work.finally(() => state.running.delete(work));
  }

  /** Never rejects: every outcome ends in an ack, a dead-letter or (channel gone) the broker's redelivery. */
  private async handle(state: ConsumerState, watched: WatchedChannel, msg: ConsumeMessage): Promise<void> {
    try {
      let message = parseMessage(msg.content);
      if (message instanceof Error) {
        if (state.queue !== QueueName.DeadLetter) {
          await this.settleFailure(state, watched, msg, `Unparseable message: ${message.message}`);
          return;
        }
        // Dead-lettering from the dead-letter queue would loop; show the raw body instead.
        message = { unparseableBody: msg.content.toString('utf8') };
      }
      try {
        await state.handler(this.toDelivery(state.queue, msg, message));
      } catch (err) {
        await this.settleFailure(state, watched, msg, deadLetterReason(err));
        return;
      }
      ackQuietly(watched, msg);
    } catch (err) {
      this.logger.error(`Unexpected failure settling a ${state.queue} message: ${this.describe(err)}`);
    }
  }

  private async settleFailure(
    state: ConsumerState,
    watched: WatchedChannel,
    msg: ConsumeMessage,
    reason: string,
  ): Promise<void> {
    if (state.queue === QueueName.DeadLetter) {
      // The dead-letter queue is the end of the line: sending it back there would loop forever.
      this.logger.error(`Dropping dead-letter message whose handler failed: ${reason}`);
      ackQuietly(watched, msg);
      return;
    }
    // Once the delivering channel is gone the broker redelivers the message; dead-lettering it too would
    // make a duplicate.
    if (!watched.open) return;
    try {
      const published = this.publishDeadLetter(msg.content, state.queue, reason, msg.properties.contentType);
      const outcome = await Promise.race([
        published.then(() => 'published' as const),
        watched.closed.then(() => 'channel closed' as const),
      ]);
      if (outcome === 'channel closed') return;
    } catch (err) {
      // Still never requeue: reject to the queue's x-dead-letter-exchange, which records x-death.
      this.logger.warn(`Dead-lettering a ${state.queue} message failed (${this.describe(err)}); rejecting it instead`);
      nackQuietly(watched, msg, false);
      return;
    }
    ackQuietly(watched, msg);
  }

  private async publishDeadLetter(
    content: Buffer,
    from: QueueName,
    reason: string,
    contentType: string | undefined,
  ): Promise<void> {
    const route = this.routes[QueueName.DeadLetter];
    await this.publisher.publish(route.exchange, route.routingKey, content, {
      persistent: true,
      contentType: contentType ?? JSON_CONTENT_TYPE,
      headers: {
        [REASON_HEADER]: recordedReason(reason),
        [ORIGINAL_QUEUE_HEADER]: from,
      },
    });
  }

  private toDelivery(queue: QueueName, msg: ConsumeMessage, message: QueueMessage): Delivery {
    const base = { queue, message, redelivered: msg.fields.redelivered };
    if (queue !== QueueName.DeadLetter) return base;
    const headers: Record<string, unknown> = msg.properties.headers ?? {};
    const death = firstDeath(headers['x-death']);
    const reason =
      headerText(headers[REASON_HEADER]) ??
      (death?.reason !== undefined ? `Dead-lettered by RabbitMQ: ${death.reason}` : undefined);
    const originalQueue = this.queueNamed(headerText(headers[ORIGINAL_QUEUE_HEADER])) ?? this.queueNamed(death?.queue);
    return {
      ...base,
      ...(reason !== undefined && { deadLetterReason: reason }),
      ...(originalQueue !== undefined && { originalQueue }),
    };
  }

  /** Accepts a logical name (our header) or a broker queue name (x-death). */
  private queueNamed(name: string | undefined): QueueName | undefined {
    if (name === undefined) return undefined;
    for (const queue of Object.values(QueueName)) {
      if (name === queue || name === this.routes[queue].queue) return queue;
    }
    return undefined;
  }

  private async cancelConsumer(state: ConsumerState): Promise<void> {
    state.stopped ??= (async () => {
      state.active = false;
      state.registered.reject(new Error('consumer cancelled before the broker registered it'));
      const current = state.current;
      if (current?.open && current.consumerTag !== undefined) {
        try {
          await current.channel.cancel(current.consumerTag);
        } catch {
          // The channel died meanwhile: the broker requeues whatever it had not seen acked.
        }
      }
      await Promise.all([...state.running]);
      await this.closeWrapper(state);
    })();
    return state.stopped;
  }

  private async abortConsumer(state: ConsumerState): Promise<void> {
    state.stopped ??= (async () => {
      state.active = false;
      state.registered.reject(new Error('consumer aborted before the broker registered it'));
      // Closing the channel with handlers still running is the point: the broker requeues their messages,
      // and their late acks hit a closed channel and are dropped.
      await this.closeWrapper(state);
    })();
    return state.stopped;
  }

  private async closeWrapper(state: ConsumerState): Promise<void> {
    try {
      await state.wrapper.close();
    } catch (err) {
      // Already closed by the broker or the connection: nothing left to release.
      this.logger.debug(`Closing the ${state.queue} consumer channel: ${this.describe(err)}`);
    }
    this.consumers.delete(state);
  }

  /** Error text for logs and thrown errors, with the password masked should anything have echoed it. */
  private describe(err: unknown): string {
    let text = err instanceof Error ? err.message : String(err);
    for (const secret of this.secrets) text = text.split(secret).join('***');
    return text;
  }
}


class ConsumerState {
  active = true;
  /** Assigned right after construction: the wrapper's setup needs this state, and this state the wrapper. */
  wrapper!: ChannelWrapper;
  current: WatchedChannel | undefined;
  readonly running = new Set<Promise<void>>();
  readonly registered = new Deferred();
  stopped: Promise<void> | undefined;

  constructor(
    readonly queue: QueueName,
    readonly handler: DeliveryHandler,
    readonly prefetch: number,
  ) {}
}

/** One raw amqplib channel, with the connection it belongs to and whether it is still open. */
class WatchedChannel {
  open = true;
  consumerTag: string | undefined;
  readonly closed: Promise<void>;

  constructor(
    readonly channel: ConfirmChannel,
    readonly owner: object | undefined,
  ) {
    this.closed = new Promise((resolve) => {
      channel.once('close', () => {
        this.open = false;
        resolve();
      });
    });
  }
}

class Deferred {
  settled = false;
  readonly promise: Promise<void>;
  private settle!: (error?: unknown) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error === undefined ? resolve() : reject(error));
    });
    // Rejected only when nobody may be waiting any more (consume already failed or was abandoned).
    this.promise.catch(() => undefined);
  }

  resolve(): void {
    if (this.settled) return;
    this.settled = true;
    this.settle();
  }

  reject(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(error ?? new Error('rejected'));
  }
}

function ackQuietly(watched: WatchedChannel, msg: ConsumeMessage): void {
  if (!watched.open) return;
  try {
    watched.channel.ack(msg);
  } catch {
    // Closed between the check and the ack: the broker redelivers, which at-least-once allows.
  }
}

function nackQuietly(watched: WatchedChannel, msg: ConsumeMessage, requeue: boolean): void {
  if (!watched.open) return;
  try {
    watched.channel.nack(msg, false, requeue);
  } catch {
    // Closed between the check and the nack: the broker requeues it anyway.
  }
}

/**
 * True for an error the broker answered with (amqplib puts its reply code, 403, 404, 406…, on the error):
 * the connection survives it, so retrying on reconnect will not happen. Anything else during a setup
 * ("Channel ended, no reply will be forthcoming") means the connection is going, and a reconnect follows.
 */
function isRefusal(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null)?.code === 'number';
}

function encode(message: QueueMessage): Buffer {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

function parseMessage(content: Buffer): QueueMessage | Error {
  let value: unknown;
  try {
    value = JSON.parse(content.toString('utf8'));
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new Error(`expected a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`);
  }
  return value as QueueMessage;
}

function headerText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}

/** The most recent entry of RabbitMQ's x-death header (it lists newest first). */
function firstDeath(value: unknown): { reason?: string; queue?: string } | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  const entry: unknown = value[0];
  if (typeof entry !== 'object' || entry === null) return undefined;
  const record = entry as Record<string, unknown>;
  return { reason: headerText(record.reason), queue: headerText(record.queue) };
}
