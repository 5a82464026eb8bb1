import { ConnectorType } from '../config/karya-config';
import { JsonObject } from '../connectors/repo/entities/plan.entity';

/** What a plugin knows about the occurrence it runs (REST sends these as X-Karya-* headers). */
export interface ActionContext {
  planId: string;
  taskId: string;
  /** 1 for the first attempt, 2 for the first retry, … (of the hook itself when running as a hook) */
  attempt: number;
  /** Set when the action runs as a hook: what happened to the task, and a key unique to this hook call. */
  hook?: HookContext;
}

export interface HookContext {
  trigger: 'ON_FAILURE' | 'ON_COMPLETION';
  /** The task's status when the hook fired (FAILURE or SUCCESS). */
  taskStatus: string;
  /** Idempotency key of this hook firing (the task id alone would be shared by all hooks of the task). */
  key: string;
}

/**
 * A plugin never throws for a failed action: it returns the failure text recorded in the error log.
 * `permanent` says no retry can succeed (an egress denial): the executor and the hooks runner then skip
 * every remaining try and dead-letter at once, with `error` as the reason.
 */
export type ActionResult = { ok: true } | { ok: false; error: string; permanent?: true };

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
