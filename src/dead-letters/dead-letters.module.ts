import { Module } from '@nestjs/common';
import { DeadLettersController } from './dead-letters.controller';
import { DeadLettersRepository } from './dead-letters.repository';

/** The dead-letters API (server role): list, replay and discard, scoped to the caller. */
@Module({ controllers: [DeadLettersController], providers: [DeadLettersRepository] })
export class DeadLettersModule {}
