import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { ExecutorConfig } from '../config/karya-config';
import { EgressPolicy } from '../egress/egress-policy';
import { PlansService } from '../modules/plans/plans.service';
import { ActionPlugin } from './action-plugin';
import { ChainedPlugin } from './chained/chained.plugin';
import { EmailPlugin } from './email/email.plugin';
import { KafkaPlugin } from './kafka/kafka.plugin';
import { RestApiPlugin } from './restapi/restapi.plugin';
import { SlackPlugin } from './slack/slack.plugin';

/** The plugins this executor has enabled (executor.yml `connectors`; chained is always on), by action type. */
@Injectable()
export class ActionRegistry implements OnApplicationShutdown {
  private readonly plugins = new Map<string, ActionPlugin>();

  constructor(config: ExecutorConfig, plans: PlansService) {
    const egress = new EgressPolicy(config.egress);
    for (const connector of config.connectors) {
      const plugin = this.build(connector.type, connector.configs, plans, egress);
      if (plugin) this.register(plugin);
    }
  }

  /**
   * Enables a plugin for its action type, replacing any other. Besides the constructor, only tests call it:
   * a plugin that misbehaves as no real target can make one (throwing after the claim, for instance) is the
   * only way to prove what the executor does then, and registering it on the running app tests the app
   * as it ships rather than a copy with a swapped module.
   */
  register(plugin: ActionPlugin): void {
    this.plugins.set(plugin.actionType, plugin);
  }

  /** The plugin for an action type, or undefined when this executor has none enabled for it. */
  get(actionType: unknown): ActionPlugin | undefined {
    return typeof actionType === 'string' ? this.plugins.get(actionType) : undefined;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.plugins.values()].map((p) => p.close()));
  }

  private build(type: string, configs: Record<string, unknown>, plans: PlansService, egress: EgressPolicy): ActionPlugin | undefined {
    // Every ConnectorType has a plugin; the config loader refuses any other type at start-up.
    switch (type) {
      case 'restapi':
        return new RestApiPlugin(configs, egress);
      case 'chained':
        return new ChainedPlugin(plans);
      case 'slack':
        return new SlackPlugin(configs);
      case 'kafka':
        return new KafkaPlugin(configs);
      case 'email':
        return new EmailPlugin(configs);
      default:
        return undefined;
    }
  }
}
