import { Module } from '@nestjs/common';
import { DeadLetterRecorder } from './dead-letter-recorder';
import { DeadLettersRepository } from './dead-letters.repository';

/** Drains the broker's dead-letter queue into the dead_letters table (executor role). */
@Module({ providers: [DeadLetterRecorder, DeadLettersRepository] })
export class DeadLetterRecorderModule {}
