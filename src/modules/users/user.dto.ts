import { ApiProperty } from '@nestjs/swagger';
import { IsNotEmpty, IsString, MaxLength } from 'class-validator';
import { UserEntity } from '../../connectors/repo/entities/user.entity';

export class CreateUserRequestDto {
  @ApiProperty({ example: 'alice', maxLength: 255 })
  // class-validator checks the bottom decorator first and stops at the first failure: type first.
  @MaxLength(255, { message: 'must be at most 255 characters' })
  @IsNotEmpty({ message: 'must not be empty' })
  @IsString({ message: 'must be a string' })
  name!: string;
}

export class UserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'alice' }) name!: string;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch milliseconds', example: 1732300000000 }) created_at!: number;
}

export function mapUser(entity: UserEntity): UserDto {
  return { id: entity.id, name: entity.name, created_at: entity.createdAt.getTime() };
}
