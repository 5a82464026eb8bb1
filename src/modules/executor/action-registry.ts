import { Injectable, OnApplicationShutdown } from '@nestjs/common';
import { ChainedPlugin } from '../../actions/chained/chained.plugin';
import { ActionPlugin } from '../../actions/action-plugin';
import { RestApiPlugin } from '../../actions/restapi/restapi.plugin';
import { ExecutorConfig } from '../../config/karya-config';
import { PlansService } from '../plans/plans.service';

/** The plugins this executor has enabled (executor.yml `connectors`; chained is always on), by action type. */
@Injectable()
export class ActionRegistry implements OnApplicationShutdown {
  private readonly plugins = new Map<string, ActionPlugin>();

  constructor(config: ExecutorConfig, plans: PlansService) {
    for (const connector of config.connectors) {
      const plugin = this.build(connector.type, connector.configs, plans);
      if (plugin) this.plugins.set(plugin.actionType, plugin);
    }
  }

  /** The plugin for an action type, or undefined when this executor has none enabled for it. */
  get(actionType: unknown): ActionPlugin | undefined {
    return typeof actionType === 'string' ? this.plugins.get(actionType) : undefined;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.plugins.values()].map((p) => p.close()));
  }

  private build(type: string, configs: Record<string, unknown>, plans: PlansService): ActionPlugin | undefined {
    switch (type) {
      case 'restapi':
        return new RestApiPlugin(configs);
      case 'chained':
        return new ChainedPlugin(plans);
      default:
        // slack, email and kafka arrive with the hooks issue; until then their actions are dead-lettered
        // with "No connector configured for <type>".
        return undefined;
    }
  }
}
