import { BadRequestException, Controller, Get, Param, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiExtraModels,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ApiKeyAuth } from '../auth/auth-policy';
import { UNAUTHORIZED } from '../auth/api.guard';
import { Caller, CurrentCaller, ownerScope, requireActsFor } from '../auth/caller';
import { plainTextResponse as plainText } from '../common/openapi-responses';
import { requireUuid, shown } from '../common/params';
import { AuthConfig } from '../config/karya-config';
import { planNotFound } from '../modules/plans/plans.service';
import { addCounts, LATENESS_SLOTS, latenessPercentileMs } from './lateness-histogram';
import { planFires } from './plan-fires';
import { PlanFiresDto, STATS_MODELS, StatsBucketDto, StatsResponseDto, WhoamiDto } from './stats.dto';
import { StatsRepository } from './stats.repository';
import { BUCKET_MS, bucketOf } from './task-stats';

export const MAX_STATS_MINUTES = 60;
export const MAX_FIRES = 20;

/**
 * An integer query parameter from `min` to `max`, `fallback` when absent. A quoted number ("15", as some
 * clients send integers) is taken too; anything else is a 400 naming the parameter and the value.
 */
export function boundedInt(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const text = typeof value === 'string' ? value.replace(/^"(\d{1,3})"$/, '$1') : value;
  if (typeof text !== 'string' || !/^\d{1,3}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new BadRequestException(`${name}: must be an integer from ${min} to ${max}, got ${shown(value)}`);
  }
  return Number(text);
}

const RATE_LIMITED = plainText('Rate limit exceeded --- 6000 requests per minute for user ID | retry after 42 s');

/** The dashboard's reads (issue 14): figures of the last hour and who the caller is. Server role. */
@ApiTags('dashboard')
@ApiExtraModels(...STATS_MODELS)
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(RATE_LIMITED)
@ApiKeyAuth()
@Controller('v1')
export class StatsController {
  constructor(
    private readonly stats: StatsRepository,
    private readonly auth: AuthConfig,
  ) {}

  @Get('stats')
  @ApiOperation({
    summary: 'Finished task attempts and start lateness per 10 s over the last minutes, from the executors\' counts',
    description:
      "Without user_id: a user key's own tasks; the admin's (or an open API's) every user's. Counts reach the table up to " +
      'about 2 s after a task finishes; kept for an hour.',
  })
  @ApiQuery({ name: 'minutes', required: false, description: `1..${MAX_STATS_MINUTES}`, schema: { type: 'integer', default: 15, minimum: 1, maximum: MAX_STATS_MINUTES } })
  @ApiQuery({ name: 'user_id', type: String, format: 'uuid', required: false })
  @ApiOkResponse({ type: StatsResponseDto, description: 'Every bucket of the window and the totals' })
  @ApiBadRequestResponse(plainText(`minutes: must be an integer from 1 to ${MAX_STATS_MINUTES}, got "x"`))
  @ApiForbiddenResponse(plainText('user_id: a key may act only for its own user, got "…"'))
  async get(@CurrentCaller() caller: Caller, @Query('minutes') minutesParam: unknown, @Query('user_id') userId: unknown): Promise<StatsResponseDto> {
    const minutes = boundedInt('minutes', minutesParam, 15, 1, MAX_STATS_MINUTES);
    let owner = ownerScope(caller);
    if (userId !== undefined && userId !== '') {
      const id = requireUuid('user_id', userId);
      requireActsFor(caller, id, 'user_id');
      owner = id;
    }
    // The window ends with the current bucket (still filling), so the newest counts show at once.
    const to = bucketOf(Date.now()) + BUCKET_MS;
    const from = to - minutes * 60_000;
    const found = await this.stats.buckets(from, to, owner);
    const total = { succeeded: 0, failed: 0, lateness: new Array<number>(LATENESS_SLOTS).fill(0) };
    const buckets: StatsBucketDto[] = [];
    for (let at = from; at < to; at += BUCKET_MS) {
      const c = found.get(at) ?? { succeeded: 0, failed: 0, lateness: [] };
      total.succeeded += c.succeeded;
      total.failed += c.failed;
      addCounts(total.lateness, c.lateness);
      buckets.push({
        at, succeeded: c.succeeded, failed: c.failed,
        lateness_p50_ms: latenessPercentileMs(c.lateness, 0.5), lateness_p99_ms: latenessPercentileMs(c.lateness, 0.99),
      });
    }
    return {
      bucket_seconds: BUCKET_MS / 1000,
      from,
      to,
      buckets,
      totals: {
        succeeded: total.succeeded, failed: total.failed,
        lateness_p50_ms: latenessPercentileMs(total.lateness, 0.5), lateness_p99_ms: latenessPercentileMs(total.lateness, 0.99),
      },
    };
  }

  @Get('whoami')
  @ApiOperation({
    summary: 'Who the credentials are: the auth mode, the kind of caller, and a user key\'s user',
    description: 'In apikey mode without a valid key: the 401 every route answers (a client learns that it must ask for a key).',
  })
  @ApiOkResponse({ type: WhoamiDto, description: 'The caller' })
  async whoami(@CurrentCaller() caller: Caller): Promise<WhoamiDto> {
    const user = caller.kind === 'user' ? await this.stats.user(caller.userId) : null;
    return { auth_mode: this.auth.mode, kind: caller.kind, user };
  }
}

/** GET /v1/plan/{plan_id}/fires: scoped like the plan's other sub-paths (another user's plan is a 404). */
@ApiTags('plans')
@ApiExtraModels(...STATS_MODELS)
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(RATE_LIMITED)
@ApiKeyAuth()
@Controller('v1/plan')
export class PlanFiresController {
  constructor(private readonly stats: StatsRepository) {}

  @Get(':plan_id/fires')
  @ApiOperation({
    summary: 'The next times the plan fires, from now on',
    description:
      'Recurring and Cron plans: the pending occurrence, then their schedule (Cron: its time zone and DST policy), up to ' +
      'and including the first fire at or after end_at. OneTime: its due time until it has run. COMPLETED or CANCELLED: none. ' +
      'A paused plan: the fires it would have if resumed now.',
  })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiQuery({ name: 'count', required: false, description: `1..${MAX_FIRES}`, schema: { type: 'integer', default: 5, minimum: 1, maximum: MAX_FIRES } })
  @ApiOkResponse({ type: PlanFiresDto, description: 'The fires, ascending (fewer than count when the plan ends sooner)' })
  @ApiBadRequestResponse(plainText(`count: must be an integer from 1 to ${MAX_FIRES}, got "0"`))
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async fires(@CurrentCaller() caller: Caller, @Param('plan_id') planIdParam: string, @Query('count') countParam: unknown): Promise<PlanFiresDto> {
    const id = requireUuid('plan_id', planIdParam);
    const count = boundedInt('count', countParam, 5, 1, MAX_FIRES);
    const owner = ownerScope(caller);
    const plan = await this.stats.plan(id);
    if (!plan || (owner !== undefined && plan.userId !== owner)) throw planNotFound(id);
    const head = await this.stats.scheduleHead(plan);
    return { plan_id: id, fires: planFires(plan, head, Date.now(), count) };
  }
}

