import { Module } from '@nestjs/common';
import { TaskStatsRecorder } from './task-stats.recorder';

/** The executor's task counts for the dashboard (executor role; ExecutorService records into it). */
@Module({ providers: [TaskStatsRecorder], exports: [TaskStatsRecorder] })
export class TaskStatsRecorderModule {}
