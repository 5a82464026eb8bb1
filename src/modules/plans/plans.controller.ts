import { BadRequestException, Body, Controller, Get, HttpCode, Param, Patch, Post, Query, Req } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiConflictResponse,
  ApiConsumes,
  ApiExtraModels,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ApiKeyAuth } from '../../auth/auth-policy';
import { UNAUTHORIZED } from '../../auth/api.guard';
import { Caller, CurrentCaller, ownerScope, requireActsFor } from '../../auth/caller';
import { plainTextResponse as plainText } from '../../common/openapi-responses';
import { MAX_PAGE, PAGE_QUERY, pageIndex, requireUuid, shown } from '../../common/params';
import { REQUEST_MODELS, SubmitPlanRequestDto, UpdatePlanRequestDto } from './dto/plan-request.dto';
import {
  GetPlanResponseDto,
  GetSummaryResponseDto,
  ListErrorLogsResponseDto,
  ListPlansResponseDto,
  ListTasksResponseDto,
  mapErrorLog,
  mapPlan,
  mapPlanState,
  mapTask,
  PlanDto,
  PlanStateDto,
  RESPONSE_MODELS,
  TaskDto,
} from './dto/plan-response.dto';
import { PLAN_FILTERS, PlanFilter } from './plans.repository';
import { PlansService } from './plans.service';
import type { Request } from 'express';
import { traceSubmit } from '../../tracing/spans';
import { tracingOn } from '../../tracing/tracing';

/** GET /v1/plan's optional `status` filter, any case; a bad value is a 400 naming it. */
function planFilter(value: unknown): PlanFilter | undefined {
  if (value === undefined || value === '') return undefined;
  const upper = typeof value === 'string' ? value.toUpperCase() : value;
  if (typeof upper !== 'string' || !(PLAN_FILTERS as readonly string[]).includes(upper)) {
    throw new BadRequestException(`status: must be one of ${PLAN_FILTERS.join(', ')}, got ${shown(value)}`);
  }
  return upper as PlanFilter;
}

const PLAIN_TEXT = plainText('period_time: must not be negative, got "-PT5S"');

@ApiTags('plans')
@ApiExtraModels(...REQUEST_MODELS, ...RESPONSE_MODELS)
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(plainText('Rate limit exceeded --- 6000 requests per minute for user ID | retry after 42 s'))
@ApiKeyAuth()
@Controller('v1/plan')
export class PlansController {
  constructor(private readonly plans: PlansService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Submit a plan; its first task is due one period from now' })
  @ApiOkResponse({ type: PlanDto, description: 'The plan, status CREATED' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('User (ID) not found'))
  @ApiForbiddenResponse(plainText('user_id: a key may act only for its own user, got "…"'))
  async submit(@CurrentCaller() caller: Caller, @Body() body: SubmitPlanRequestDto, @Req() req: Request): Promise<PlanDto> {
    // The request's `traceparent` is continued when tracing is on (README "Traces"); off, no closure is built.
    return tracingOn() ? traceSubmit(req.headers, () => this.submitAs(caller, body), req.res) : this.submitAs(caller, body);
  }

  private async submitAs(caller: Caller, body: SubmitPlanRequestDto): Promise<PlanDto> {
    requireActsFor(caller, body.user_id, 'user_id');
    return mapPlan(await this.plans.submit(body));
  }

  @Get()
  @ApiOperation({ summary: "A user's plans, newest first, 20 a page; `status` narrows the page and the total" })
  @ApiQuery({ name: 'user_id', type: String, format: 'uuid', required: true })
  @ApiQuery(PAGE_QUERY)
  @ApiQuery({
    name: 'status',
    required: false,
    enum: PLAN_FILTERS,
    description: 'Only plans with this v1 status (any case); PAUSED: the paused ones, which the v1 status shows as CREATED or RUNNING',
  })
  @ApiOkResponse({ type: ListPlansResponseDto, description: 'A page of plans' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiForbiddenResponse(plainText('user_id: a key may act only for its own user, got "…"'))
  async list(
    @CurrentCaller() caller: Caller,
    @Query('user_id') userId: unknown,
    @Query('page') page: unknown,
    @Query('status') status: unknown,
  ): Promise<ListPlansResponseDto> {
    const id = requireUuid('user_id', userId);
    requireActsFor(caller, id, 'user_id');
    const index = pageIndex(page);
    const { plans, total } = await this.plans.list(id, index, planFilter(status));
    return { plans: plans.map(mapPlan), total, offset: index };
  }

  @Patch()
  @ApiOperation({ summary: 'Update period, max_failure_retry or hooks (plan id in the body); null or missing keeps a value' })
  @ApiOkResponse({ type: PlanDto, description: 'The updated plan' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  @ApiServiceUnavailableResponse(plainText('Unable to acquire lock on --- ID | Try again later'))
  async update(@CurrentCaller() caller: Caller, @Body() body: UpdatePlanRequestDto): Promise<PlanDto> {
    return mapPlan(await this.plans.update(body, ownerScope(caller)));
  }

  @Get(':plan_id')
  @ApiOperation({ summary: 'A plan and its most recently created task' })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: GetPlanResponseDto, description: 'The plan and its latest task' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async get(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<GetPlanResponseDto> {
    const { plan, latestTask } = await this.plans.get(requireUuid('plan_id', planId), ownerScope(caller));
    return { plan: mapPlan(plan), latest_task: latestTask ? mapTask(latestTask) : null };
  }

  @Get(':plan_id/summary')
  @ApiOperation({
    summary:
      'A plan, its newest summaryLimit (server.yml, default 1000) tasks and its newest summaryLimit error logs, each oldest first; ' +
      'GET /v1/plan/{plan_id}/tasks and /error-logs page through all of them',
  })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: GetSummaryResponseDto, description: 'The plan, its newest tasks and error logs' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async summary(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<GetSummaryResponseDto> {
    const { plan, tasks, errorLogs } = await this.plans.summary(requireUuid('plan_id', planId), ownerScope(caller));
    return { plan: mapPlan(plan), tasks: tasks.map(mapTask), error_logs: errorLogs.map(mapErrorLog) };
  }

  // GET-only sub-paths: `:plan_id` matches a single path segment, so neither GET :plan_id nor the cancel
  // (POST :plan_id) can take them.
  @Get(':plan_id/tasks')
  @ApiOperation({ summary: "All a plan's tasks, oldest first (a running plan's new tasks come after the last page), 20 a page" })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiQuery(PAGE_QUERY)
  @ApiOkResponse({ type: ListTasksResponseDto, description: 'A page of tasks' })
  @ApiBadRequestResponse(plainText(`page: must be an integer from 0 to ${MAX_PAGE}, got "-1"`))
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async tasks(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string, @Query('page') page: unknown): Promise<ListTasksResponseDto> {
    const id = requireUuid('plan_id', planId);
    const index = pageIndex(page);
    const { tasks, total } = await this.plans.tasksPage(id, index, ownerScope(caller));
    return { tasks: tasks.map(mapTask), total, offset: index };
  }

  @Get(':plan_id/error-logs')
  @ApiOperation({ summary: "All a plan's executor and hook error logs, oldest first (new ones come after the last page), 20 a page" })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiQuery(PAGE_QUERY)
  @ApiOkResponse({ type: ListErrorLogsResponseDto, description: 'A page of error logs' })
  @ApiBadRequestResponse(plainText(`page: must be an integer from 0 to ${MAX_PAGE}, got "-1"`))
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async errorLogs(
    @CurrentCaller() caller: Caller,
    @Param('plan_id') planId: string,
    @Query('page') page: unknown,
  ): Promise<ListErrorLogsResponseDto> {
    const id = requireUuid('plan_id', planId);
    const index = pageIndex(page);
    const { errorLogs, total } = await this.plans.errorLogsPage(id, index, ownerScope(caller));
    return { error_logs: errorLogs.map(mapErrorLog), total, offset: index };
  }

  @Post(':plan_id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a plan and all its descendants (the published clients send an empty form body)' })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiConsumes('application/x-www-form-urlencoded', 'application/json')
  @ApiBody({ required: false, schema: { type: 'object' } })
  @ApiOkResponse({ type: PlanDto, description: 'The plan, CANCELLED (or unchanged when it was already COMPLETED or CANCELLED)' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  @ApiServiceUnavailableResponse(plainText('Unable to acquire lock on --- ID | Try again later'))
  async cancel(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<PlanDto> {
    return mapPlan(await this.plans.cancel(requireUuid('plan_id', planId), ownerScope(caller)));
  }

  @Get(':plan_id/state')
  @ApiOperation({ summary: "A plan's schedule state: PAUSED or its status, its overlap policy and when it next runs" })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: PlanStateDto, description: 'The state' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  async state(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<PlanStateDto> {
    return mapPlanState(await this.plans.state(requireUuid('plan_id', planId), ownerScope(caller)));
  }

  @Post(':plan_id/pause')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Pause a plan: it starts no new occurrence until resumed (one already running, or waiting for a retry, finishes). ' +
      'Pausing a paused plan changes nothing',
  })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: PlanStateDto, description: 'The state after the pause (status PAUSED)' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  @ApiConflictResponse(plainText('Plan ID is CANCELLED --- it cannot be paused'))
  @ApiServiceUnavailableResponse(plainText('Unable to acquire lock on --- ID | Try again later'))
  async pause(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<PlanStateDto> {
    return mapPlanState(await this.plans.pause(requireUuid('plan_id', planId), ownerScope(caller)));
  }

  @Post(':plan_id/resume')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Resume a paused plan from now: occurrences missed while paused are skipped, not caught up (a OneTime plan whose time ' +
      'passed runs at once). Resuming a plan that is not paused changes nothing',
  })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: PlanStateDto, description: 'The state after the resume' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  @ApiConflictResponse(plainText('Plan ID is CANCELLED --- it cannot be resumed'))
  @ApiServiceUnavailableResponse(plainText('Unable to acquire lock on --- ID | Try again later'))
  async resume(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<PlanStateDto> {
    return mapPlanState(await this.plans.resume(requireUuid('plan_id', planId), ownerScope(caller)));
  }

  @Post(':plan_id/run')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Run now: one extra task due now, under the overlap policy; the regular schedule does not move. ' +
      'A OneTime plan that has not run yet has its task brought forward instead',
  })
  @ApiParam({ name: 'plan_id', format: 'uuid' })
  @ApiOkResponse({ type: TaskDto, description: 'The task that runs now' })
  @ApiBadRequestResponse(PLAIN_TEXT)
  @ApiNotFoundResponse(plainText('Plan not found --- ID'))
  @ApiConflictResponse(plainText('Plan ID is paused --- resume it before running it now'))
  @ApiServiceUnavailableResponse(plainText('Unable to acquire lock on --- ID | Try again later'))
  async run(@CurrentCaller() caller: Caller, @Param('plan_id') planId: string): Promise<TaskDto> {
    return mapTask(await this.plans.runNow(requireUuid('plan_id', planId), ownerScope(caller)));
  }
}
