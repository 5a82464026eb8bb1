import { Module } from '@nestjs/common';

/**
 * Hooks (ON_FAILURE / ON_COMPLETION): validation on the server side, dispatch on the executor side,
 * which is why both the server and executor roles load it. Implemented by the hooks issue.
 */
@Module({})
export class HooksModule {}
