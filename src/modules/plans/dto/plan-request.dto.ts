import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  Equals,
  IsArray,
  IsObject,
  IsUUID,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { ACTION_TYPE, BODY_TYPE, METHODS, Method, OVERLAP_POLICIES, OverlapPolicy, PLAN_TYPE, PROTOCOLS, Protocol, TRIGGERS, Trigger } from './discriminators';
import { IsDiscriminated, IsPeriod, IsStringMap, QuotedInteger, UpperCase } from './validators';

/** Year 9999: later timestamps are not representable in Postgres' timestamptz range we use. */
const MAX_EPOCH_MS = 253_402_300_799_999;

/**
 * What class-transformer builds for a polymorphic value whose `type` is missing or unknown. It must have
 * no defaults of its own (a default `type` would make `{}` look valid); IsDiscriminated then rejects it
 * before any nested validation runs.
 */
class Unrecognized {}

/*
 * class-validator runs a property's stacked decorators bottom-up and, with stopAtFirstError, reports only the
 * first failure: so the type check sits lowest, then the finer rules above it. Inside applyDecorators(…) the
 * order is the reverse (listed order): there the type check comes first.
 */

const TYPE_IS = (name: string) => Equals(name, { message: `must be "${name}"` });

export class JsonBodyDto {
  @ApiProperty({ enum: [BODY_TYPE.Json], example: BODY_TYPE.Json })
  @TYPE_IS(BODY_TYPE.Json)
  type: typeof BODY_TYPE.Json = BODY_TYPE.Json;

  @ApiProperty({ description: 'The request body, sent verbatim', example: '{"hello":"world"}' })
  @IsString({ message: 'must be a string holding the serialized JSON body' })
  json_string!: string;
}

export class EmptyBodyDto {
  @ApiProperty({ enum: [BODY_TYPE.Empty], example: BODY_TYPE.Empty })
  @TYPE_IS(BODY_TYPE.Empty)
  type: typeof BODY_TYPE.Empty = BODY_TYPE.Empty;
}

export const BODY_SUBTYPES = [
  { value: JsonBodyDto, name: BODY_TYPE.Json },
  { value: EmptyBodyDto, name: BODY_TYPE.Empty },
];

/** `host[:port][/path]`, no scheme: the protocol is a separate field. The host may be a bracketed IPv6 literal. */
const BASE_URL = /^(?![a-zA-Z][a-zA-Z0-9+.-]*:\/\/)(\[[0-9a-fA-F:.]+\]|[^\s/:?#@[\]]+)(:\d{1,5})?([/?#]\S*)?$/;

export class RestApiRequestDto {
  @ApiProperty({ enum: [ACTION_TYPE.RestApi], example: ACTION_TYPE.RestApi })
  @TYPE_IS(ACTION_TYPE.RestApi)
  type: typeof ACTION_TYPE.RestApi = ACTION_TYPE.RestApi;

  @ApiProperty({ description: 'host[:port][/path], without a scheme', example: 'api.example.com:8443/hooks/run' })
  @Matches(BASE_URL, { message: 'must be host[:port][/path] without a scheme (the protocol field says HTTP or HTTPS)' })
  @MaxLength(2048, { message: 'must be at most 2048 characters' })
  @IsString({ message: 'must be a string' })
  base_url!: string;

  @ApiPropertyOptional({ enum: PROTOCOLS, default: 'HTTP' })
  @IsIn(PROTOCOLS, { message: `must be one of ${PROTOCOLS.join(', ')}` })
  @UpperCase()
  protocol: Protocol = 'HTTP';

  @ApiPropertyOptional({ enum: METHODS, default: 'GET' })
  @IsIn(METHODS, { message: `must be one of ${METHODS.join(', ')}` })
  @UpperCase()
  method: Method = 'GET';

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    default: { 'content-type': 'application/json' },
  })
  @IsStringMap()
  headers: Record<string, string> = { 'content-type': 'application/json' };

  @ApiPropertyOptional({
    oneOf: [{ $ref: getSchemaPath(JsonBodyDto) }, { $ref: getSchemaPath(EmptyBodyDto) }],
    discriminator: {
      propertyName: 'type',
      mapping: { [BODY_TYPE.Json]: getSchemaPath(JsonBodyDto), [BODY_TYPE.Empty]: getSchemaPath(EmptyBodyDto) },
    },
    default: { type: BODY_TYPE.Empty },
  })
  @ValidateNested()
  @Type(() => Unrecognized, { discriminator: { property: 'type', subTypes: BODY_SUBTYPES }, keepDiscriminatorProperty: true })
  @IsDiscriminated(Object.values(BODY_TYPE), 'body')
  body: JsonBodyDto | EmptyBodyDto = new EmptyBodyDto();

  @ApiPropertyOptional({ type: 'integer', description: 'Request timeout in ms', default: 2000, minimum: 1, maximum: 600000 })
  @Max(600_000, { message: 'must be at most 600000 ms' })
  @Min(1, { message: 'must be at least 1 ms' })
  @IsInt({ message: 'must be an integer number of milliseconds' })
  @QuotedInteger()
  timeout: number = 2000;
}

export class SlackMessageRequestDto {
  @ApiProperty({ enum: [ACTION_TYPE.Slack], example: ACTION_TYPE.Slack })
  @TYPE_IS(ACTION_TYPE.Slack)
  type: typeof ACTION_TYPE.Slack = ACTION_TYPE.Slack;

  @ApiProperty({ description: 'Channel name or ID', example: '#alerts' })
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  channel!: string;

  @ApiProperty({ description: 'A string holding a JSON array of Slack Block Kit blocks', example: '[{"type":"section","text":{"type":"mrkdwn","text":"Export done"}}]' })
  @MaxLength(100_000, { message: 'must be at most 100000 characters' })
  @IsString({ message: 'must be a string holding a JSON array of Block Kit blocks' })
  message!: string;
}

export class EmailRequestDto {
  @ApiProperty({ enum: [ACTION_TYPE.Email], example: ACTION_TYPE.Email })
  @TYPE_IS(ACTION_TYPE.Email)
  type: typeof ACTION_TYPE.Email = ACTION_TYPE.Email;

  @ApiProperty({ example: 'ops@example.com' })
  @MaxLength(320, { message: 'must be at most 320 characters' })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  recipient!: string;

  @ApiProperty({ example: 'Nightly export finished' })
  @MaxLength(998, { message: 'must be at most 998 characters' })
  @IsString({ message: 'must be a string' })
  subject!: string;

  @ApiProperty({ description: 'HTML body' })
  @MaxLength(100_000, { message: 'must be at most 100000 characters' })
  @IsString({ message: 'must be a string' })
  message!: string;
}

export class KafkaProducerRequestDto {
  @ApiProperty({ enum: [ACTION_TYPE.Kafka], example: ACTION_TYPE.Kafka })
  @TYPE_IS(ACTION_TYPE.Kafka)
  type: typeof ACTION_TYPE.Kafka = ACTION_TYPE.Kafka;

  @ApiProperty({ example: 'orders' })
  @MaxLength(249, { message: 'must be at most 249 characters (Kafka topic limit)' })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  topic!: string;

  @ApiProperty()
  @MaxLength(100_000, { message: 'must be at most 100000 characters' })
  @IsString({ message: 'must be a string' })
  message!: string;

  @ApiPropertyOptional({ type: 'string', nullable: true, default: null })
  @IsOptional()
  @IsString({ message: 'must be a string or null' })
  key: string | null = null;
}

/**
 * Filled at the end of this file, once every class exists: the union is recursive (a chained action holds
 * a plan request, which holds an action), and class-transformer reads this list only when it transforms.
 */
export const ACTION_SUBTYPES: { value: new () => object; name: string }[] = [];
const ACTION_NAMES = Object.values(ACTION_TYPE);

/** OpenAPI for "any action": a oneOf over the five shapes with the `type` discriminator (refs by name,
 * since the classes are not all defined when decorators run). */
export function actionSchema(description: string) {
  const refs: Record<string, string> = {
    [ACTION_TYPE.RestApi]: getSchemaPath('RestApiRequestDto'),
    [ACTION_TYPE.Slack]: getSchemaPath('SlackMessageRequestDto'),
    [ACTION_TYPE.Email]: getSchemaPath('EmailRequestDto'),
    [ACTION_TYPE.Kafka]: getSchemaPath('KafkaProducerRequestDto'),
    [ACTION_TYPE.Chained]: getSchemaPath('ChainedRequestDto'),
  };
  return {
    description,
    oneOf: Object.values(refs).map(($ref) => ({ $ref })),
    discriminator: { propertyName: 'type', mapping: refs },
  };
}

const ActionProperty = (description: string) =>
  applyDecorators(
    ApiProperty(actionSchema(description)),
    ValidateNested(),
    Type(() => Unrecognized, { discriminator: { property: 'type', subTypes: ACTION_SUBTYPES }, keepDiscriminatorProperty: true }),
    IsDiscriminated(ACTION_NAMES, 'action'),
  );

export class OneTimeDto {
  @ApiProperty({ enum: [PLAN_TYPE.OneTime], example: PLAN_TYPE.OneTime })
  @TYPE_IS(PLAN_TYPE.OneTime)
  type: typeof PLAN_TYPE.OneTime = PLAN_TYPE.OneTime;
}

/** `end_at` of the recurring plan types. */
const EndAtProperty = (description: string) =>
  applyDecorators(
    ApiPropertyOptional({ type: 'integer', format: 'int64', nullable: true, default: null, description }),
    IsInt({ message: 'must be an integer epoch ms or null' }),
    Min(0, { message: 'must be a non-negative epoch ms' }),
    Max(MAX_EPOCH_MS, { message: `must be at most ${MAX_EPOCH_MS} (epoch ms)` }),
    IsOptional(),
    QuotedInteger(),
  );

/** `overlap` of the recurring plan types; missing means ALLOW, and is stored as missing (old plans have none). */
const OverlapProperty = () =>
  applyDecorators(
    ApiPropertyOptional({
      enum: OVERLAP_POLICIES,
      default: 'ALLOW',
      description:
        'When an occurrence comes due while the previous task still runs (PROCESSING or waiting for a retry): ' +
        'ALLOW runs it anyway; SKIP records it as skipped (a CANCELLED task with an error log); BUFFER_ONE lets ' +
        'one occurrence wait and runs it as soon as the previous one ends (further ones are skipped)',
    }),
    IsIn(OVERLAP_POLICIES, { message: `must be one of ${OVERLAP_POLICIES.join(', ')}` }),
    IsOptional(),
    UpperCase(),
  );

export class RecurringDto {
  @ApiProperty({ enum: [PLAN_TYPE.Recurring], example: PLAN_TYPE.Recurring })
  @TYPE_IS(PLAN_TYPE.Recurring)
  type: typeof PLAN_TYPE.Recurring = PLAN_TYPE.Recurring;

  @EndAtProperty('Epoch ms; the plan completes after its first run at or after this time. Missing or null: never ends.')
  end_at: number | null = null;

  @OverlapProperty()
  overlap?: OverlapPolicy;
}

/**
 * Karya's cron plan type. The plan's `period_time` holds the expression (the v1 Plan keeps its exact key set);
 * on submit it may be left out, or must repeat the expression.
 */
export class CronDto {
  @ApiProperty({ enum: [PLAN_TYPE.Cron], example: PLAN_TYPE.Cron })
  @TYPE_IS(PLAN_TYPE.Cron)
  type: typeof PLAN_TYPE.Cron = PLAN_TYPE.Cron;

  @ApiProperty({
    description: '5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first; see README "Cron plans and DST"',
    example: '0 9 * * 1-5',
    maxLength: 255,
  })
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @IsString({ message: 'must be a string holding a cron expression such as "0 9 * * 1-5"' })
  expression!: string;

  @ApiPropertyOptional({ description: 'IANA time zone the expression is read in', default: 'UTC', example: 'Europe/Berlin', maxLength: 64 })
  @MaxLength(64, { message: 'must be at most 64 characters' })
  @IsString({ message: 'must be an IANA time zone name such as UTC or Europe/Berlin' })
  time_zone: string = 'UTC';

  @EndAtProperty('Epoch ms; the plan completes after its first fire at or after this time. Missing or null: never ends.')
  end_at: number | null = null;

  @OverlapProperty()
  overlap?: OverlapPolicy;
}

function isCronType(planType: unknown): boolean {
  return typeof planType === 'object' && planType !== null && (planType as { type?: unknown }).type === PLAN_TYPE.Cron;
}

/** OpenAPI for "any plan type": a oneOf over the three shapes with the `type` discriminator (submit and Plan). */
export function planTypeSchema() {
  const refs: Record<string, string> = {
    [PLAN_TYPE.OneTime]: getSchemaPath(OneTimeDto),
    [PLAN_TYPE.Recurring]: getSchemaPath(RecurringDto),
    [PLAN_TYPE.Cron]: getSchemaPath(CronDto),
  };
  return { oneOf: Object.values(refs).map(($ref) => ({ $ref })), discriminator: { propertyName: 'type', mapping: refs } };
}

export const PLAN_TYPE_SUBTYPES = [
  { value: OneTimeDto, name: PLAN_TYPE.OneTime },
  { value: RecurringDto, name: PLAN_TYPE.Recurring },
  { value: CronDto, name: PLAN_TYPE.Cron },
];

export class HookDto {
  @ApiProperty({ enum: TRIGGERS, example: 'ON_FAILURE' })
  @IsIn(TRIGGERS, { message: `must be one of ${TRIGGERS.join(', ')}` })
  @UpperCase()
  trigger!: Trigger;

  @ActionProperty('What to do when the hook fires')
  action!: ActionDto;

  @ApiPropertyOptional({ type: 'integer', default: 3, minimum: 0, maximum: 100 })
  @Max(100, { message: 'must be at most 100' })
  @Min(0, { message: 'must be at least 0' })
  @IsInt({ message: 'must be an integer' })
  @QuotedInteger()
  max_retry: number = 3;
}

/** The validation of a period_time, shared by submit and update (documentation is per use). */
const PeriodRules = () =>
  applyDecorators(
    IsString({ message: 'must be an ISO-8601 duration string such as PT30S' }),
    MaxLength(64, { message: 'must be at most 64 characters' }),
    IsPeriod(),
  );
const PERIOD_DOC = 'ISO-8601 duration (PnDTnHnMn.nS, or PnW); months and years are not accepted';

const HooksProperty = (description: string) =>
  applyDecorators(
    ApiPropertyOptional({ type: () => [HookDto], description }),
    IsArray({ message: 'must be a list of hooks' }),
    ArrayMaxSize(50, { message: 'must have at most 50 hooks' }),
    IsObject({ each: true, message: 'must be a list of hook objects' }),
    ValidateNested({ each: true }),
    Type(() => HookDto),
  );

const MaxFailureRetryProperty = () =>
  applyDecorators(
    ApiPropertyOptional({ type: 'integer', default: 3, minimum: 0, maximum: 100, description: 'Retries after a failed attempt' }),
    IsInt({ message: 'must be an integer' }),
    Min(0, { message: 'must be at least 0' }),
    Max(100, { message: 'must be at most 100' }),
    QuotedInteger(),
  );

export class SubmitPlanRequestDto {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('all', { message: 'must be a UUID' })
  @IsString({ message: 'must be a UUID string' })
  user_id!: string;

  @ApiProperty({ maxLength: 255, example: 'Nightly export' })
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @IsString({ message: 'must be a string' })
  description!: string;

  @ApiProperty({
    description:
      `${PERIOD_DOC}, at most 64 characters. Required except for a Cron plan, which may leave it out or repeat its ` +
      'expression here (up to 255 characters): it is stored and returned as the expression',
    example: 'PT30S',
  })
  @PeriodRules()
  // A Cron plan's period_time is its expression, checked with it (plan-request.rules checkCron).
  @ValidateIf((req: SubmitPlanRequestDto) => !isCronType(req.plan_type))
  period_time!: string;

  @ApiProperty(planTypeSchema())
  @ValidateNested()
  @Type(() => Unrecognized, { discriminator: { property: 'type', subTypes: PLAN_TYPE_SUBTYPES }, keepDiscriminatorProperty: true })
  @IsDiscriminated(Object.values(PLAN_TYPE), 'plan type')
  plan_type!: OneTimeDto | RecurringDto | CronDto;

  @ActionProperty('What to do at each occurrence')
  action!: ActionDto;

  @HooksProperty('Hooks fired on failure or completion')
  @IsOptional()
  hooks: HookDto[] = [];

  @MaxFailureRetryProperty()
  @IsOptional()
  max_failure_retry: number = 3;
}

export class ChainedRequestDto {
  @ApiProperty({ enum: [ACTION_TYPE.Chained], example: ACTION_TYPE.Chained })
  @TYPE_IS(ACTION_TYPE.Chained)
  type: typeof ACTION_TYPE.Chained = ACTION_TYPE.Chained;

  @ApiProperty({ type: () => SubmitPlanRequestDto, description: 'The plan to create when this action runs' })
  @ValidateNested()
  @Type(() => SubmitPlanRequestDto)
  @IsObject({ message: 'must be a plan request object' })
  request!: SubmitPlanRequestDto;
}

export type ActionDto =
  | RestApiRequestDto
  | SlackMessageRequestDto
  | EmailRequestDto
  | KafkaProducerRequestDto
  | ChainedRequestDto;

ACTION_SUBTYPES.push(
  { value: RestApiRequestDto, name: ACTION_TYPE.RestApi },
  { value: SlackMessageRequestDto, name: ACTION_TYPE.Slack },
  { value: EmailRequestDto, name: ACTION_TYPE.Email },
  { value: KafkaProducerRequestDto, name: ACTION_TYPE.Kafka },
  { value: ChainedRequestDto, name: ACTION_TYPE.Chained },
);

/** Every schema referenced by name above, for @ApiExtraModels. */
export const REQUEST_MODELS = [
  ...ACTION_SUBTYPES.map((s) => s.value),
  JsonBodyDto,
  EmptyBodyDto,
  OneTimeDto,
  RecurringDto,
  CronDto,
  HookDto,
];

export class UpdatePlanRequestDto {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('all', { message: 'must be a UUID' })
  @IsString({ message: 'must be a UUID string' })
  plan_id!: string;

  @ApiPropertyOptional({ type: 'string', nullable: true, maxLength: 64, description: `${PERIOD_DOC}; null or missing keeps the period. A Cron plan answers 400 (its schedule is plan_type.expression)`, example: 'PT30S' })
  @PeriodRules()
  @IsOptional()
  period_time?: string | null;

  @MaxFailureRetryProperty()
  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  max_failure_retry?: number | null;

  @HooksProperty('Replaces all hooks; [] clears them; null or missing keeps them')
  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  hooks?: HookDto[] | null;
}
