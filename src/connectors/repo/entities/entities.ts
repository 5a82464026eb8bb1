import { ApiKeyEntity } from './api-key.entity';
import { DeadLetterEntity } from './dead-letter.entity';
import { ErrorLogEntity } from './error-log.entity';
import { PlanEntity } from './plan.entity';
import { TaskEntity } from './task.entity';
import { UserEntity } from './user.entity';

/** Every entity TypeORM must know about; the one list the data source and tests share. */
export const KARYA_ENTITIES = [UserEntity, PlanEntity, TaskEntity, ErrorLogEntity, ApiKeyEntity, DeadLetterEntity];
