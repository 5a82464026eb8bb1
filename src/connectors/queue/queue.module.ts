import { DynamicModule, Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { QueueConfig } from '../../config/karya-config';
import { MemoryQueue } from './memory.queue';
import { RabbitMqQueue } from './rabbitmq.queue';
import { TaskQueue } from './queue.port';

/** Closes the queue when Nest shuts down, so consumers settle their messages before the process exits. */
@Injectable()
class QueueShutdown implements OnApplicationShutdown {
  constructor(@Inject(TaskQueue) private readonly queue: TaskQueue) {}

  async onApplicationShutdown(): Promise<void> {
    await this.queue.close();
  }
}

@Global()
@Module({})
export class QueueModule {
  static forRoot(config: QueueConfig): DynamicModule {
    const create = adapterFactory(config);
    return {
      module: QueueModule,
      providers: [{ provide: TaskQueue, useFactory: create }, QueueShutdown],
      exports: [TaskQueue],
    };
  }
}

/** Chosen when the module is built, so a misconfigured provider fails at boot, not at first use. */
function adapterFactory(config: QueueConfig): () => TaskQueue {
  const provider: string = config.provider;
  switch (provider) {
    case 'rabbitmq':
      return () => new RabbitMqQueue(config);
    case 'memory':
      return () => new MemoryQueue();
    default:
      throw new Error(`Unknown queue provider "${provider}" (expected "rabbitmq" or "memory")`);
  }
}
