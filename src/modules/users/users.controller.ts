import { BadRequestException, Body, Controller, Get, HttpCode, Post, Query } from '@nestjs/common';
import { ApiBadRequestResponse, ApiNotFoundResponse, ApiOkResponse, ApiQuery, ApiTags } from '@nestjs/swagger';
import { CreateUserRequestDto, mapUser, UserDto } from './user.dto';
import { UsersService } from './users.service';

@ApiTags('users')
@Controller('v1/user')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @HttpCode(200)
  @ApiOkResponse({ type: UserDto })
  @ApiBadRequestResponse({ description: 'Plain-text message naming the bad field and value' })
  async create(@Body() body: CreateUserRequestDto): Promise<UserDto> {
    return mapUser(await this.users.create(body.name));
  }

  @Get()
  @ApiQuery({ name: 'username', required: true })
  @ApiOkResponse({ type: UserDto })
  @ApiNotFoundResponse({ description: 'User (NAME) not found' })
  async get(@Query('username') username: unknown): Promise<UserDto> {
    if (typeof username !== 'string') {
      throw new BadRequestException(`username: must be given once as a query parameter, got ${JSON.stringify(username ?? null)}`);
    }
    return mapUser(await this.users.getByName(username));
  }
}
