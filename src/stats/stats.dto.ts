import { ApiProperty } from '@nestjs/swagger';

const P50 = 'Median start lateness (start − due), ms, estimated from a histogram; null when no task finished';
const P99 = '99th percentile of start lateness, ms, estimated from a histogram; null when no task finished';

export class StatsBucketDto {
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms: the start of this 10 s bucket (tasks counted by finish time)' }) at!: number;
  @ApiProperty({ type: 'integer', description: 'Attempts that succeeded' }) succeeded!: number;
  @ApiProperty({ type: 'integer', description: 'Attempts that failed (retries count each time)' }) failed!: number;
  @ApiProperty({ type: 'number', nullable: true, description: P50 }) lateness_p50_ms!: number | null;
  @ApiProperty({ type: 'number', nullable: true, description: P99 }) lateness_p99_ms!: number | null;
}

export class StatsTotalsDto {
  @ApiProperty({ type: 'integer' }) succeeded!: number;
  @ApiProperty({ type: 'integer' }) failed!: number;
  @ApiProperty({ type: 'number', nullable: true, description: P50 }) lateness_p50_ms!: number | null;
  @ApiProperty({ type: 'number', nullable: true, description: P99 }) lateness_p99_ms!: number | null;
}

export class StatsResponseDto {
  @ApiProperty({ type: 'integer', example: 10 }) bucket_seconds!: number;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms: the start of the first bucket' }) from!: number;
  @ApiProperty({ type: 'integer', format: 'int64', description: 'epoch ms: the end of the last bucket (the current one, still filling)' }) to!: number;
  @ApiProperty({ type: () => [StatsBucketDto], description: 'Every bucket of the window, oldest first (minutes × 6), empty ones as zeros' })
  buckets!: StatsBucketDto[];
  @ApiProperty({ type: () => StatsTotalsDto, description: 'The whole window' }) totals!: StatsTotalsDto;
}

export class WhoamiUserDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
}

export class WhoamiDto {
  @ApiProperty({ enum: ['none', 'apikey'], description: "server.yml application.auth.mode" }) auth_mode!: 'none' | 'apikey';
  @ApiProperty({ enum: ['open', 'admin', 'user'], description: 'open: auth mode none; admin: the admin key; user: a user key' })
  kind!: 'open' | 'admin' | 'user';
  @ApiProperty({ type: () => WhoamiUserDto, nullable: true, description: "A user key's user; null for open and admin callers" })
  user!: WhoamiUserDto | null;
}

export class PlanFiresDto {
  @ApiProperty({ format: 'uuid' }) plan_id!: string;
  @ApiProperty({ type: 'integer', format: 'int64', isArray: true, description: 'epoch ms of the next fires, ascending' }) fires!: number[];
}

export const STATS_MODELS = [StatsBucketDto, StatsTotalsDto, StatsResponseDto, WhoamiUserDto, WhoamiDto, PlanFiresDto];
