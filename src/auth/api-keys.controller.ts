import { Controller, Delete, Get, HttpCode, NotFoundException, Param, Post } from '@nestjs/common';
import {
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { plainTextResponse as plainText } from '../common/openapi-responses';
import { requireUuid } from '../common/params';
import { AuthConfig } from '../config/karya-config';
import { ApiKeyDto, CreatedApiKeyDto, mapApiKey } from './api-key.dto';
import { ApiKeysService } from './api-keys.service';
import { ApiKeyAuth } from './auth-policy';
import { UNAUTHORIZED } from './api.guard';
import { Caller, CurrentCaller, requireActsFor } from './caller';

/** User key management: the admin for any user, a user for itself (README "Security"). */
@ApiTags('keys')
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(plainText('Rate limit exceeded --- 6000 requests per minute for user ID | retry after 42 s'))
@ApiForbiddenResponse(plainText('user_id: a key may act only for its own user, got "…"'))
@ApiParam({ name: 'user_id', format: 'uuid' })
@ApiKeyAuth()
@Controller('v1/user/:user_id/keys')
export class ApiKeysController {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly auth: AuthConfig,
  ) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Issue a key for the user; the key is in this answer only' })
  @ApiOkResponse({ type: CreatedApiKeyDto, description: 'The new key, in clear this once' })
  @ApiNotFoundResponse(plainText('User (ID) not found'))
  async create(@CurrentCaller() caller: Caller, @Param('user_id') userIdParam: string): Promise<CreatedApiKeyDto> {
    const userId = this.scope(caller, userIdParam);
    const created = await this.keys.create(userId);
    if (!created) throw new NotFoundException(`User (${userId}) not found`);
    return { id: created.entity.id, key: created.key, created_at: created.entity.createdAt.getTime() };
  }

  @Get()
  @ApiOperation({ summary: "The user's keys (prefix only), oldest first" })
  @ApiOkResponse({ type: ApiKeyDto, isArray: true, description: "The user's keys" })
  async list(@CurrentCaller() caller: Caller, @Param('user_id') userIdParam: string): Promise<ApiKeyDto[]> {
    return (await this.keys.list(this.scope(caller, userIdParam))).map(mapApiKey);
  }

  @Delete(':key_id')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a key; every server process refuses it within 5 s' })
  @ApiParam({ name: 'key_id', format: 'uuid' })
  @ApiOkResponse({ type: ApiKeyDto, description: 'The revoked key' })
  @ApiNotFoundResponse(plainText('API key not found --- ID'))
  async revoke(
    @CurrentCaller() caller: Caller,
    @Param('user_id') userIdParam: string,
    @Param('key_id') keyIdParam: string,
  ): Promise<ApiKeyDto> {
    const userId = this.scope(caller, userIdParam);
    return mapApiKey(await this.keys.revoke(userId, requireUuid('key_id', keyIdParam)));
  }

  private scope(caller: Caller, userIdParam: string): string {
    // Keys mean nothing while the API is open; issuing them then would only pre-arm keys for later.
    if (this.auth.mode !== 'apikey') throw new NotFoundException('API keys are disabled: server.yml application.auth.mode is none');
    const userId = requireUuid('user_id', userIdParam);
    requireActsFor(caller, userId, 'user_id');
    return userId;
  }
}
