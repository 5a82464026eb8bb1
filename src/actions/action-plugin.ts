import { ConnectorType } from '../config/karya-config';
import { JsonObject } from '../connectors/repo/entities/plan.entity';

/** What a plugin knows about the occurrence it runs (REST sends these as X-Karya-* headers). */
export interface ActionContext {
  planId: string;
  taskId: string;
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: number;
}

/** A plugin never throws for a failed action: it returns the failure text recorded in the error log. */
export type ActionResult = { ok: true } | { ok: false; error: string };

/**
 * One plugin per action type (the `type` discriminator of the action JSON), enabled per executor by
 * executor.yml's `connectors`. Registered in the executor's ActionRegistry.
 */
export abstract class ActionPlugin {
  /** The action's `type` discriminator this plugin runs. */
  abstract readonly actionType: string;
  /** The executor.yml connector key that enables it. */
  abstract readonly connector: ConnectorType;
  abstract run(action: JsonObject, context: ActionContext): Promise<ActionResult>;
  /** Releases pooled connections at shutdown. */
  async close(): Promise<void> {}
}
