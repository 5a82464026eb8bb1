import * as configModule from 'karya-client/client/config.js';
import * as restClientModule from 'karya-client/client/karya-rest-client.js';
import * as requestsModule from 'karya-client/client/requests.js';
import * as responsesModule from 'karya-client/client/responses.js';
import * as actionsModule from 'karya-client/entities/actions.js';
import * as constantsModule from 'karya-client/entities/constants.js';
import * as modelsModule from 'karya-client/entities/models.js';
import * as planTypesModule from 'karya-client/entities/plan-types.js';

/*
 * A typed facade over the published JS client, karya-client@1.1.7 from npm. The package is ESM-only (Jest's
 * @swc/jest transform turns it into CommonJS, node_modules included) and has no typings, so its deep imports
 * are untyped (see karya-client-modules.d.ts). The interfaces below describe the slice of its API the
 * compatibility test uses, as read from node_modules/karya-client/{client,entities}/*.js; the untyped
 * modules are cast to them exactly once, at the bottom of this file.
 */

export type TriggerName = 'ON_FAILURE' | 'ON_COMPLETION';
export type ProtocolName = 'HTTP' | 'HTTPS';
/** The client's Method enum has no PUT. */
export type MethodName = 'GET' | 'POST' | 'PATCH' | 'DELETE';
export type PlanStatusName = 'CREATED' | 'RUNNING' | 'COMPLETED' | 'CANCELLED';
export type TaskStatusName = 'CREATED' | 'PROCESSING' | 'SUCCESS' | 'FAILURE' | 'CANCELLED';

export interface OneTime {
  type: 'karya.core.entities.PlanType.OneTime';
}
/** `new Recurring()` leaves `end_at` out entirely; the server answers it as `null`. */
export interface Recurring {
  type: 'karya.core.entities.PlanType.Recurring';
  end_at?: number | null;
}
export type PlanType = OneTime | Recurring;
/**
 * Karya's Cron plan type (issue 13). The client has no class for it and cannot submit one, but reads it back:
 * its Plan constructor copies `type` as it came, so a cron plan's `type` is this plain JSON.
 */
export interface Cron {
  type: 'karya.core.entities.PlanType.Cron';
  expression: string;
  time_zone: string;
  end_at: number | null;
  /** Present only when the plan was submitted with one. */
  overlap?: 'ALLOW' | 'SKIP' | 'BUFFER_ONE';
}

export interface EmptyBody {
  type: 'karya.core.entities.http.Body.EmptyBody';
}
export interface JsonBody {
  type: 'karya.core.entities.http.Body.JsonBody';
  json_string: string;
}

export interface RestApiRequest {
  type: 'karya.core.entities.Action.RestApiRequest';
  base_url: string;
  body: EmptyBody | JsonBody;
  protocol: ProtocolName;
  method: MethodName;
  headers: Record<string, string>;
  timeout: number;
}
/** `new KafkaProducerRequest(topic, message)` leaves `key` out; the server answers it as `null`. */
export interface KafkaProducerRequest {
  type: 'karya.core.entities.Action.KafkaProducerRequest';
  topic: string;
  message: string;
  key?: string | null;
}
export interface EmailRequest {
  type: 'karya.core.entities.Action.EmailRequest';
  recipient: string;
  subject: string;
  message: string;
}
export interface SlackMessageRequest {
  type: 'karya.core.entities.Action.SlackMessageRequest';
  channel: string;
  message: string;
}
export interface ChainedRequest {
  type: 'karya.core.entities.Action.ChainedRequest';
  request: SubmitPlanRequest;
}
export type Action = RestApiRequest | KafkaProducerRequest | EmailRequest | SlackMessageRequest | ChainedRequest;

export interface Hook {
  trigger: TriggerName;
  action: Action;
  max_retry: number;
}

export interface CreateUserRequest {
  name: string;
}
export interface SubmitPlanRequest {
  user_id: string;
  description: string;
  period_time: string;
  plan_type: PlanType;
  action: Action;
  hooks: Hook[];
  max_failure_retry: number;
}
/** Fields left undefined are dropped by JSON.stringify, so the client sends only the ones given. */
export interface UpdatePlanRequest {
  plan_id: string;
  period_time?: string;
  max_failure_retry?: number;
  hooks?: Hook[];
}

export interface User {
  id: string;
  name: string;
  created_at: number;
}
export interface Plan {
  id: string;
  user_id: string;
  description: string;
  period_time: string;
  /** What the server answers: one of the client's own types, or a Cron type it has no class for. */
  type: PlanType | Cron;
  status: PlanStatusName;
  max_failure_retry: number;
  action: Action;
  hook: Hook[];
  parent_plan_id?: string | null;
  created_at: number;
  updated_at: number;
}
export interface Task {
  id: string;
  plan_id: string;
  partition_key: number;
  status: TaskStatusName;
  created_at: number;
  executed_at?: number | null;
  next_execution_at?: number | null;
}
export interface ErrorLog {
  plan_id: string;
  error: string;
  type: { type?: string; task_id?: string };
  timestamp: number;
}
export interface GetPlanResponse {
  plan: Plan;
  latest_task: Task;
}
export interface GetSummaryResponse {
  plan: Plan;
  tasks: Task[];
  error_logs: ErrorLog[];
}
export interface ListPlanResponse {
  plans: Plan[];
  total: number;
  offset: number;
}

export interface ClientConfig {
  url: URL;
}
export interface KaryaRestClient {
  readonly baseUrl: string;
  createUser(request: CreateUserRequest): Promise<User>;
  getUser(username: string): Promise<User>;
  submitPlan(request: SubmitPlanRequest): Promise<Plan>;
  getPlan(planId: string): Promise<GetPlanResponse>;
  updatePlan(request: UpdatePlanRequest): Promise<Plan>;
  cancelPlan(planId: string): Promise<Plan>;
  getSummary(planId: string): Promise<GetSummaryResponse>;
  listPlans(userId: string, page: number): Promise<ListPlanResponse>;
  close(): Promise<void>;
}

/** The exports of the client's modules that the tests use, as constructors and enum objects. */
interface KaryaClientExports {
  ClientConfig: new (url: URL) => ClientConfig;
  KaryaRestClient: new (config: ClientConfig) => KaryaRestClient;
  CreateUserRequest: new (name: string) => CreateUserRequest;
  SubmitPlanRequest: new (
    user_id: string,
    description: string,
    period_time: string,
    plan_type: PlanType,
    action: Action,
    hooks?: Hook[],
    max_failure_retry?: number,
  ) => SubmitPlanRequest;
  UpdatePlanRequest: new (plan_id: string, period_time?: string, max_failure_retry?: number, hooks?: Hook[]) => UpdatePlanRequest;
  GetPlanResponse: new (data: GetPlanResponse) => GetPlanResponse;
  GetSummaryResponse: new (data: GetSummaryResponse) => GetSummaryResponse;
  ListPlanResponse: new (data: ListPlanResponse) => ListPlanResponse;
  OneTime: new () => OneTime;
  Recurring: new (end_at?: number) => Recurring;
  RestApiRequest: {
    new (
      base_url: string,
      body?: EmptyBody | JsonBody,
      protocol?: ProtocolName,
      method?: MethodName,
      headers?: Record<string, string>,
      timeout?: number,
    ): RestApiRequest;
    JsonBody: new (data: unknown) => JsonBody;
    EmptyBody: new () => EmptyBody;
  };
  KafkaProducerRequest: new (topic: string, message: string, key?: string) => KafkaProducerRequest;
  EmailRequest: new (recipient: string, subject: string, message: string) => EmailRequest;
  SlackMessageRequest: new (channel: string, message: string) => SlackMessageRequest;
  ChainedRequest: new (request: SubmitPlanRequest) => ChainedRequest;
  Hook: new (trigger: TriggerName, action: Action, max_retry?: number) => Hook;
  User: new (data: User) => User;
  Plan: new (data: Plan) => Plan;
  Protocol: { readonly [K in ProtocolName]: K };
  Method: { readonly [K in MethodName]: K };
  PlanStatus: { readonly [K in PlanStatusName]: K };
  TaskStatus: { readonly [K in TaskStatusName]: K };
  Trigger: { readonly [K in TriggerName]: K };
}

// The single cast from the untyped modules (no typings ship with karya-client) to the facade above.
const untypedExports: unknown = {
  ...configModule,
  ...restClientModule,
  ...requestsModule,
  ...responsesModule,
  ...actionsModule,
  ...constantsModule,
  ...modelsModule,
  ...planTypesModule,
};
const karya = untypedExports as KaryaClientExports;

export const {
  ClientConfig,
  KaryaRestClient,
  CreateUserRequest,
  SubmitPlanRequest,
  UpdatePlanRequest,
  GetPlanResponse,
  GetSummaryResponse,
  ListPlanResponse,
  OneTime,
  Recurring,
  RestApiRequest,
  KafkaProducerRequest,
  EmailRequest,
  SlackMessageRequest,
  ChainedRequest,
  Hook,
  User,
  Plan,
  Protocol,
  Method,
  PlanStatus,
  TaskStatus,
  Trigger,
} = karya;

/** What a failed call throws: axios' AxiosError, carrying the server's status and plain-text message. */
export interface ClientHttpError {
  name: string;
  isAxiosError: boolean;
  response: { status: number; data: unknown; headers: Record<string, unknown> };
}

/** Runs a client call that must fail and returns what it threw (failing the test if it succeeded). */
export async function clientError(call: Promise<unknown>): Promise<ClientHttpError> {
  let thrown: unknown;
  try {
    await call;
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error('expected the karya-client call to fail, but it succeeded');
  // Shape-checked by the callers' expectations; the cast only names what axios documents.
  return thrown as ClientHttpError;
}
