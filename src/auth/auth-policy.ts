import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiBasicAuth, ApiBearerAuth } from '@nestjs/swagger';

/**
 * Which credential a route needs. Routes without a policy need a key in apikey mode: the default is
 * closed, so a new controller can never be open by accident.
 * - `public`: never (`/health`, `GET /`);
 * - `metrics`: a key only when `application.auth.protectMetrics` is true.
 */
export type AuthPolicy = 'public' | 'metrics';
export const AUTH_POLICY = 'karya.authPolicy';

export const Public = () => SetMetadata(AUTH_POLICY, 'public' satisfies AuthPolicy);
export const MetricsRoute = () => SetMetadata(AUTH_POLICY, 'metrics' satisfies AuthPolicy);

/** OpenAPI security scheme names (src/openapi.ts). */
export const BEARER_SCHEME = 'apiKey';
export const BASIC_SCHEME = 'apiKeyAsBasicPassword';

/** Documents that a controller's routes take a key in apikey mode, by either scheme. */
export const ApiKeyAuth = () => applyDecorators(ApiBearerAuth(BEARER_SCHEME), ApiBasicAuth(BASIC_SCHEME));
