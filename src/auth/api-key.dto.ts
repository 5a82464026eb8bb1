import { ApiProperty } from '@nestjs/swagger';
import { ApiKeyEntity } from '../connectors/repo/entities/api-key.entity';

export class CreatedApiKeyDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ description: 'The key itself. Shown this once: only its hash is stored.', example: 'karya_Jq3…' }) key!: string;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch milliseconds' }) created_at!: number;
}

export class ApiKeyDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ description: "The key's first characters, to tell keys apart", example: 'karya_Jq3xQ0' }) prefix!: string;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch milliseconds' }) created_at!: number;
  @ApiProperty({ type: 'integer', format: 'int64', nullable: true, description: 'epoch milliseconds, to the minute; null when never used' })
  last_used_at!: number | null;
}

export function mapApiKey(entity: ApiKeyEntity): ApiKeyDto {
  return {
    id: entity.id,
    prefix: entity.prefix,
    created_at: entity.createdAt.getTime(),
    last_used_at: entity.lastUsedAt ? entity.lastUsedAt.getTime() : null,
  };
}
