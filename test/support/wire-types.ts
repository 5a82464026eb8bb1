/**
 * The wire names of the API's polymorphic types (shared/spec/api-v1.md), written out literally rather than
 * imported from src: the tests check the contract, not the implementation's own constants.
 */
export const T = {
  OneTime: 'karya.core.entities.PlanType.OneTime',
  Recurring: 'karya.core.entities.PlanType.Recurring',
  Rest: 'karya.core.entities.Action.RestApiRequest',
  Slack: 'karya.core.entities.Action.SlackMessageRequest',
  Email: 'karya.core.entities.Action.EmailRequest',
  Kafka: 'karya.core.entities.Action.KafkaProducerRequest',
  Chained: 'karya.core.entities.Action.ChainedRequest',
  JsonBody: 'karya.core.entities.http.Body.JsonBody',
  EmptyBody: 'karya.core.entities.http.Body.EmptyBody',
} as const;
