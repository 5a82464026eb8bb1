import { ConflictException, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
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
import { PAGE_QUERY, pageIndex, requireUuid } from '../common/params';
import { DeadLetterDto, ListDeadLettersResponseDto, mapDeadLetter } from './dead-letter.dto';
import { DeadLetterEntity } from '../connectors/repo/entities/dead-letter.entity';
import { DEAD_LETTER_PAGE_SIZE, DeadLettersRepository, ReplayConflict } from './dead-letters.repository';

function notFound(id: string): NotFoundException {
  return new NotFoundException(`Dead letter not found --- ${id}`);
}

/**
 * Dead letters: tasks whose last attempt failed, hooks out of tries, messages no executor could read.
 * Scoped like plans: a user key sees and acts on its own user's dead letters only, another user's is a 404.
 */
@ApiTags('dead-letters')
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(plainText('Rate limit exceeded --- 6000 requests per minute for user ID | retry after 42 s'))
@ApiKeyAuth()
@Controller('v1/dead-letters')
export class DeadLettersController {
  constructor(private readonly letters: DeadLettersRepository) {}

  @Get()
  @ApiOperation({
    summary: `Dead letters, newest first, ${DEAD_LETTER_PAGE_SIZE} a page`,
    description:
      "Without user_id: a user key's own; the admin's (or an open API's) every dead letter, those of messages that named no known plan included.",
  })
  @ApiQuery({ name: 'user_id', type: String, format: 'uuid', required: false })
  @ApiQuery(PAGE_QUERY)
  @ApiOkResponse({ type: ListDeadLettersResponseDto, description: 'A page of dead letters' })
  @ApiBadRequestResponse(plainText('page: must be an integer from 0 to 100000000, got "-1"'))
  @ApiForbiddenResponse(plainText('user_id: a key may act only for its own user, got "…"'))
  async list(@CurrentCaller() caller: Caller, @Query('user_id') userId: unknown, @Query('page') page: unknown): Promise<ListDeadLettersResponseDto> {
    let owner = ownerScope(caller);
    if (userId !== undefined) {
      const id = requireUuid('user_id', userId);
      requireActsFor(caller, id, 'user_id');
      owner = id;
    }
    const index = pageIndex(page);
    const { deadLetters, total } = await this.letters.page(owner, index);
    return { dead_letters: deadLetters.map(mapDeadLetter), total, offset: index };
  }

  @Post(':id/replay')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Run one new attempt of the task or hook and remove the dead letter',
    description:
      'A task becomes due now as a retry: the scheduler dispatches it as its next attempt (X-Karya-Attempt), fenced like any dispatch. ' +
      'A hook gets its next try. If that fails too, a new dead letter is recorded with the new reason.',
  })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: DeadLetterDto, description: 'The dead letter that was replayed (now removed)' })
  @ApiBadRequestResponse(plainText('id: must be a UUID, got "x"'))
  @ApiNotFoundResponse(plainText('Dead letter not found --- ID'))
  @ApiConflictResponse(plainText('Task ID is SUCCESS: only a failed task with no attempt pending can run again'))
  async replay(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<DeadLetterDto> {
    const letterId = requireUuid('id', id);
    let replayed: DeadLetterEntity | null;
    try {
      replayed = await this.letters.replay(letterId, ownerScope(caller));
    } catch (e) {
      if (e instanceof ReplayConflict) throw new ConflictException(e.message);
      throw e;
    }
    if (!replayed) throw notFound(letterId);
    return mapDeadLetter(replayed);
  }

  @Delete(':id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Discard a dead letter' })
  @ApiParam({ name: 'id', format: 'uuid' })
  @ApiOkResponse({ type: DeadLetterDto, description: 'The discarded dead letter' })
  @ApiBadRequestResponse(plainText('id: must be a UUID, got "x"'))
  @ApiNotFoundResponse(plainText('Dead letter not found --- ID'))
  async discard(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<DeadLetterDto> {
    const letterId = requireUuid('id', id);
    const discarded = await this.letters.discard(letterId, ownerScope(caller));
    if (!discarded) throw notFound(letterId);
    return mapDeadLetter(discarded);
  }
}
