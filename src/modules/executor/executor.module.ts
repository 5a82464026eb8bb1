import { Module } from '@nestjs/common';

/**
 * Consumes the executor queue and runs actions through their plugins. Executor role only; its consumer
 * arrives with the pipeline issue.
 */
@Module({})
export class ExecutorModule {}
