/**
 * The `type` discriminators of the wire format: the original's Kotlin class names, which the published
 * clients send and expect verbatim.
 */
export const ACTION_TYPE = {
  RestApi: 'karya.core.entities.Action.RestApiRequest',
  Slack: 'karya.core.entities.Action.SlackMessageRequest',
  Email: 'karya.core.entities.Action.EmailRequest',
  Kafka: 'karya.core.entities.Action.KafkaProducerRequest',
  Chained: 'karya.core.entities.Action.ChainedRequest',
} as const;

export const BODY_TYPE = {
  Json: 'karya.core.entities.http.Body.JsonBody',
  Empty: 'karya.core.entities.http.Body.EmptyBody',
} as const;

export const PLAN_TYPE = {
  OneTime: 'karya.core.entities.PlanType.OneTime',
  Recurring: 'karya.core.entities.PlanType.Recurring',
  /** Karya's addition (not in the original): a cron expression in an IANA time zone. */
  Cron: 'karya.core.entities.PlanType.Cron',
} as const;

/**
 * What a recurring or cron plan does when an occurrence comes due while its previous task is still running
 * (PROCESSING, or waiting for a retry): run anyway, skip the new one, or let one wait and run when it ends.
 */
export const OVERLAP_POLICIES = ['ALLOW', 'SKIP', 'BUFFER_ONE'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

export const ERROR_LOG_TYPE = {
  Hook: 'karya.core.entities.ErrorLogType.HookErrorLog',
  Executor: 'karya.core.entities.ErrorLogType.ExecutorErrorLog',
} as const;

export const PROTOCOLS = ['HTTP', 'HTTPS'] as const;
export const METHODS = ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'] as const;
export const TRIGGERS = ['ON_FAILURE', 'ON_COMPLETION'] as const;

export type Protocol = (typeof PROTOCOLS)[number];
export type Method = (typeof METHODS)[number];
export type Trigger = (typeof TRIGGERS)[number];
