import { createParamDecorator, ExecutionContext, ForbiddenException } from '@nestjs/common';
import { shown } from '../common/params';

/**
 * Who is calling, as established by ApiGuard (auth.guard.ts) before any handler runs:
 * - `open`: auth mode `none` (the original's behaviour): anyone may act for any user;
 * - `admin`: the admin key, which acts for any user;
 * - `user`: a user key, which acts for its own user only.
 */
export type Caller = { kind: 'open' } | { kind: 'admin' } | { kind: 'user'; userId: string; keyId: string };

/** Where ApiGuard leaves the caller on the request object. */
export const CALLER = Symbol('karya.caller');

export interface RequestWithCaller {
  [CALLER]?: Caller;
}

/** The caller of this request; handlers of guarded routes always have one. */
export const CurrentCaller = createParamDecorator((_: unknown, ctx: ExecutionContext): Caller => {
  const caller = ctx.switchToHttp().getRequest<RequestWithCaller>()[CALLER];
  // A route without ApiGuard would be a wiring bug; refuse rather than act as anyone.
  if (!caller) throw new ForbiddenException('No caller established for this request');
  return caller;
});

/** May `caller` act for user `userId`? The open mode and the admin act for anyone. */
export function actsFor(caller: Caller, userId: string): boolean {
  return caller.kind !== 'user' || caller.userId === userId.toLowerCase();
}

/** The 403 for a user_id in a body or query that is not the caller's, naming the field. */
export function requireActsFor(caller: Caller, userId: string, field: string): void {
  if (!actsFor(caller, userId)) {
    throw new ForbiddenException(`${field}: a key may act only for its own user, got ${shown(userId)}`);
  }
}

/** The user whose data the caller is confined to, or undefined when it may see everyone's. */
export function ownerScope(caller: Caller): string | undefined {
  return caller.kind === 'user' ? caller.userId : undefined;
}

/** Who a call counts against in the per-user rate limits (src/rate-limit); `id` and `address` are raw input. */
export type RateLimitSubject = { kind: 'user'; id: string } | { kind: 'client'; address: string };

/** The parts of a request rateLimitSubject reads (an Express Request has them). */
export interface SubjectSource {
  query?: Record<string, unknown>;
  body?: unknown;
  ip?: string;
}

/**
 * What a call counts against; undefined = not limited.
 * - A user key: its user.
 * - The admin: exempt. It is the operator's single credential, shared by every admin tool; a bucket of
 *   its own would let one runaway script lock the operator out of the very calls (revoking keys,
 *   cancelling plans) that end an abuse, and the limits exist to contain users, not the operator.
 * - Open mode: the user the request names (query `user_id`, else a JSON body's `user_id`), else the
 *   client address (cancel and update name a plan, /v1/user a name), so "per user" still means
 *   something without keys. Only a brake on a runaway client: an open API lets anyone name any user.
 */
export function rateLimitSubject(caller: Caller, req: SubjectSource): RateLimitSubject | undefined {
  if (caller.kind === 'user') return { kind: 'user', id: caller.userId };
  if (caller.kind === 'admin') return undefined;
  const body = req.body;
  const named = req.query?.user_id ?? (typeof body === 'object' && body !== null ? (body as { user_id?: unknown }).user_id : undefined);
  if (typeof named === 'string' && named !== '') return { kind: 'user', id: named.toLowerCase() };
  // Without `trust proxy` this is the socket's peer, which a client cannot forge with X-Forwarded-For.
  return { kind: 'client', address: req.ip ?? 'unknown' };
}
