import { BadRequestException, Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiBadRequestResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { plainTextResponse as plainText } from '../../common/openapi-responses';
import { unstorableString } from '../../common/validation.pipe';
import { CreateUserRequestDto, mapUser, UserDto } from './user.dto';
import { UsersService } from './users.service';

@ApiTags('users')
@Controller('v1/user')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({ summary: 'Create a user (names are not unique)' })
  @ApiOkResponse({ type: UserDto, description: 'The new user' })
  @ApiBadRequestResponse(plainText('name: must be a string, got 42'))
  async create(@Body() body: CreateUserRequestDto): Promise<UserDto> {
    return mapUser(await this.users.create(body.name));
  }

  @Get()
  @ApiOperation({ summary: 'The first user with exactly this name' })
  @ApiQuery({ name: 'username', required: true, type: String, example: 'alice' })
  @ApiOkResponse({ type: UserDto, description: 'The user' })
  @ApiBadRequestResponse(plainText('username: must be given once as a query parameter, got null'))
  @ApiNotFoundResponse(plainText('User (NAME) not found'))
  async get(@Query('username') username: unknown): Promise<UserDto> {
    if (typeof username !== 'string') {
      throw new BadRequestException(`username: must be given once as a query parameter, got ${JSON.stringify(username ?? null)}`);
    }
    const bad = unstorableString(username, 'username');
    if (bad) throw new BadRequestException(`${bad.path}: ${bad.why}`);
    return mapUser(await this.users.getByName(username));
  }
}
