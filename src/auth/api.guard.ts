import { CanActivate, ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AuthConfig } from '../config/karya-config';
import { RateLimiter } from '../rate-limit/rate-limiter';
import { sameKey } from './api-key';
import { ApiKeysService } from './api-keys.service';
import { AUTH_POLICY, AuthPolicy } from './auth-policy';
import { CALLER, Caller, RequestWithCaller } from './caller';
import { keyFromAuthorization } from './credentials';

/**
 * The one answer to every authentication failure (missing, malformed, wrong or revoked key), so a caller
 * learns nothing about which it was. No WWW-Authenticate header: a Basic challenge would make browsers
 * cache the credentials and attach them to cross-site form posts (cancel accepts a form-encoded POST).
 */
export const UNAUTHORIZED = 'Unauthorized: a valid API key is required (Authorization: Bearer <key>, or Basic with the key as password)';

/**
 * Global guard of every HTTP route: establishes the caller (auth.mode none: open; apikey: the admin or the
 * key's user), then applies the caller's rate limits. Scoping to the caller's own data is done by the
 * handlers with the caller this leaves on the request (caller.ts).
 */
@Injectable()
export class ApiGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly config: AuthConfig,
    private readonly keys: ApiKeysService,
    private readonly limits: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    // Queue consumers (the executor's @EventPattern handlers) are not HTTP: nothing to authenticate.
    if (context.getType() !== 'http') return true;
    const policy = this.reflector.getAllAndOverride<AuthPolicy | undefined>(AUTH_POLICY, [context.getHandler(), context.getClass()]);
    if (policy === 'public') return true;
    const req = context.switchToHttp().getRequest<Request & RequestWithCaller>();
    if (policy === 'metrics') {
      if (this.config.mode === 'apikey' && this.config.protectMetrics) await this.authenticate(req);
      return true;
    }
    const caller = this.config.mode === 'apikey' ? await this.authenticate(req) : ({ kind: 'open' } as const);
    req[CALLER] = caller;
    await this.limits.check(req, caller, req.method === 'POST' && req.path.replace(/\/+$/, '') === '/v1/plan');
    return true;
  }

  private async authenticate(req: Request): Promise<Caller> {
    const key = keyFromAuthorization(req.headers.authorization);
    if (key === undefined) throw new UnauthorizedException(UNAUTHORIZED);
    if (this.config.adminKey !== undefined && sameKey(key, this.config.adminKey)) return { kind: 'admin' };
    const owner = await this.keys.resolve(key);
    if (!owner) throw new UnauthorizedException(UNAUTHORIZED);
    return { kind: 'user', userId: owner.userId, keyId: owner.keyId };
  }
}
