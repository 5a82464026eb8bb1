import { BadRequestException, Body, Controller, ForbiddenException, Get, HttpCode, Post, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ApiKeyAuth } from '../../auth/auth-policy';
import { UNAUTHORIZED } from '../../auth/api.guard';
import { Caller, CurrentCaller } from '../../auth/caller';
import { plainTextResponse as plainText } from '../../common/openapi-responses';
import { unstorableString } from '../../common/validation.pipe';
import { CreateUserRequestDto, mapUser, UserDto } from './user.dto';
import { UsersService } from './users.service';

@ApiTags('users')
@ApiUnauthorizedResponse(plainText(UNAUTHORIZED))
@ApiTooManyRequestsResponse(plainText('Rate limit exceeded --- 6000 requests per minute for user ID | retry after 42 s'))
@ApiKeyAuth()
@Controller('v1/user')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create a user (names are not unique)' })
  @ApiOkResponse({ type: UserDto, description: 'The new user' })
  @ApiBadRequestResponse(plainText('name: must be a string, got 42'))
  @ApiForbiddenResponse(plainText('Only the admin key may create users'))
  async create(@CurrentCaller() caller: Caller, @Body() body: CreateUserRequestDto): Promise<UserDto> {
    if (caller.kind === 'user') throw new ForbiddenException('Only the admin key may create users');
    return mapUser(await this.users.create(body.name));
  }

  @Get()
  @ApiOperation({ summary: 'The first user with exactly this name (with a user key: only the caller itself)' })
  @ApiQuery({ name: 'username', required: true, type: String, example: 'alice' })
  @ApiOkResponse({ type: UserDto, description: 'The user' })
  @ApiBadRequestResponse(plainText('username: must be given once as a query parameter, got null'))
  @ApiNotFoundResponse(plainText('User (NAME) not found'))
  async get(@CurrentCaller() caller: Caller, @Query('username') username: unknown): Promise<UserDto> {
    if (typeof username !== 'string') {
      throw new BadRequestException(`username: must be given once as a query parameter, got ${JSON.stringify(username ?? null)}`);
    }
    const bad = unstorableString(username, 'username');
    if (bad) throw new BadRequestException(`${bad.path}: ${bad.why}`);
    // A user key learns nothing about other users, not even whether a name exists.
    if (caller.kind === 'user') return mapUser(await this.users.getOwnByName(caller.userId, username));
    return mapUser(await this.users.getByName(username));
  }
}
