import { createHash } from 'node:crypto';
import { HttpException, HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { ThrottlerStorage } from '@nestjs/throttler';
import type { Request } from 'express';
import { Caller, rateLimitSubject, RateLimitSubject } from '../auth/caller';
import { shown } from '../common/params';
import { ServerConfig } from '../config/karya-config';

/** Every key this writes starts with it, so the limits' keys never collide with the lock's (karya:lock:). */
export const RATE_LIMIT_KEY_PREFIX = 'karya:rl:';

const WINDOW_MS = 60_000;
/** An id this short and plain is stored as is; anything else (open mode takes user_id as sent) is hashed,
 * which bounds the key's size and keeps Redis hash-tag braces and control characters out of it. */
const PLAIN_ID = /^[0-9a-z.:-]{1,64}$/;
/** At most one warning per this many ms while the storage fails: every API call would otherwise log one. */
const WARN_EVERY_MS = 60_000;

interface Limit {
  /** Also the throttler name the storage keeps hits under. */
  name: 'requests' | 'submissions';
  perMinute: number;
}

/**
 * Per-user rate limits (server.yml application.rateLimit), counted in @nestjs/throttler's storage: Redis
 * shared by every server process when the lock provider is Redis, in memory otherwise (rate-limit.module.ts).
 * Called by ApiGuard (src/auth/api.guard.ts) once the caller is known, for every guarded HTTP call.
 *
 * The storage's semantics: a call that takes a user past `perMinute` calls in the current 60 s window
 * blocks that user for 60 s from then (throttler's default blockDuration = ttl); Retry-After says when
 * the block ends. A submission counts in both limits.
 *
 * A storage failure (Redis down or slow) lets the call through with a logged warning: failing closed
 * would turn a Redis outage into an outage of the whole API, and the limits protect capacity, not data.
 */
@Injectable()
export class RateLimiter {
  private readonly logger = new Logger(RateLimiter.name);
  private readonly requests: Limit;
  private readonly submissions: Limit;
  private lastWarning = 0;

  constructor(
    @Inject(ThrottlerStorage) private readonly storage: ThrottlerStorage,
    server: ServerConfig,
  ) {
    this.requests = { name: 'requests', perMinute: server.rateLimit.requestsPerMinute };
    this.submissions = { name: 'submissions', perMinute: server.rateLimit.submissionsPerMinute };
  }

  /**
   * Counts this call against the caller's limits. Throws a 429 HttpException (with Retry-After set on the
   * response) when a limit is exceeded; resolves otherwise.
   */
  async check(req: Request, caller: Caller, isSubmission: boolean): Promise<void> {
    const limits = [this.requests, ...(isSubmission ? [this.submissions] : [])].filter((l) => l.perMinute > 0);
    if (limits.length === 0) return;
    const subject = rateLimitSubject(caller, req);
    if (!subject) return;
    const bucket = storedSubject(subject);
    let records: Awaited<ReturnType<ThrottlerStorage['increment']>>[];
    try {
      records = await Promise.all(
        // One key per limit: the in-memory storage keeps one blocked flag per key, whatever the name.
        limits.map((l) => this.storage.increment(`${RATE_LIMIT_KEY_PREFIX}${l.name}:${bucket}`, WINDOW_MS, l.perMinute, WINDOW_MS, l.name)),
      );
    } catch (error) {
      this.warnStorageFailure(error);
      return;
    }
    let exceeded: { limit: Limit; retryAfter: number } | undefined;
    records.forEach((record, i) => {
      // The longest block wins: retrying when a shorter one ends would only be refused again.
      const retryAfter = Math.max(1, Math.ceil(record.timeToBlockExpire));
      if (record.isBlocked && (!exceeded || retryAfter > exceeded.retryAfter)) exceeded = { limit: limits[i], retryAfter };
    });
    if (!exceeded) return;
    req.res?.setHeader('Retry-After', String(exceeded.retryAfter));
    throw new HttpException(
      `Rate limit exceeded --- ${exceeded.limit.perMinute} ${exceeded.limit.name} per minute for ${describe(subject)} | retry after ${exceeded.retryAfter} s`,
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }

  private warnStorageFailure(error: unknown): void {
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    const message = error instanceof Error ? error.message : String(error);
    this.logger.warn(`Rate-limit storage unavailable, calls are not being limited: ${message}`);
  }
}

function storedSubject(subject: RateLimitSubject): string {
  const [kind, raw] = subject.kind === 'user' ? ['user', subject.id] : ['client', subject.address];
  const id = PLAIN_ID.test(raw) ? raw : `sha256-${createHash('sha256').update(raw).digest('hex').slice(0, 32)}`;
  return `${kind}:${id}`;
}

function describe(subject: RateLimitSubject): string {
  return subject.kind === 'user'
    ? `user ${PLAIN_ID.test(subject.id) ? subject.id : shown(subject.id)}`
    : `client ${PLAIN_ID.test(subject.address) ? subject.address : shown(subject.address)}`;
}
