import { Module } from '@nestjs/common';
import { ApiKeysController } from './api-keys.controller';

/** `/v1/user/{user_id}/keys`: server role only (ApiKeysService itself is global, from AuthModule). */
@Module({ controllers: [ApiKeysController] })
export class ApiKeysModule {}
