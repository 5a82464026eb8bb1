import 'reflect-metadata';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { BASIC_SCHEME, BEARER_SCHEME } from './auth/auth-policy';
import { loadConfig } from './config/config.loader';
import { KaryaConfig } from './config/karya-config';
import { Role } from './role/role';

/**
 * Karya's OpenAPI document: one builder for what the server role serves at /docs-json (app.factory.ts)
 * and for the committed openapi/karya-v1.json (`npm run openapi`), so the two cannot drift apart;
 * test/openapi.spec.ts fails when the committed file is stale.
 */

/** The committed document, relative to the project root (this file runs from src/ under Jest, dist/ otherwise). */
export const OPENAPI_FILE = join(__dirname, '..', 'openapi', 'karya-v1.json');

export function openApiConfig(): Omit<OpenAPIObject, 'paths'> {
  return new DocumentBuilder()
    .setTitle('Karya')
    .setDescription("Karya's v1 REST API, wire-compatible with Karya's published clients")
    .setVersion('1')
    // Either scheme carries the same key (README "Security"); with auth.mode none neither is needed.
    .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'An API key (admin or user) as a bearer token' }, BEARER_SCHEME)
    .addBasicAuth(
      { type: 'http', scheme: 'basic', description: 'An API key as the Basic password, any user name (karya-client: http://name:KEY@host:8080)' },
      BASIC_SCHEME,
    )
    .build();
}

/** The document of an application's controllers, in canonical key order. */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  return canonicalOrder(SwaggerModule.createDocument(app, openApiConfig()));
}

/**
 * The server role's document, built without starting anything: Nest's preview mode registers the modules
 * and controllers (all Swagger needs) but instantiates no provider, so no factory runs (no data source,
 * PGlite directory, lock or queue client), and nothing listens. The connector settings are the embedded
 * defaults only because the config needs some; they are never used.
 */
export async function buildOpenApiDocument(): Promise<OpenAPIObject> {
  const app = await NestFactory.create(AppModule.forConfig(serverRoleConfig()), {
    preview: true,
    logger: false,
    abortOnError: false,
  });
  try {
    return createOpenApiDocument(app);
  } finally {
    await app.close();
  }
}

/** The file's exact text: 2-space JSON with a trailing newline. */
export function serializeOpenApiDocument(doc: OpenAPIObject): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function serverRoleConfig(): KaryaConfig {
  // KARYA_ROLE=server with embedded providers is refused by loadConfig (they cannot be shared between
  // processes); irrelevant here since nothing connects, so load `all` and narrow the roles.
  const { config } = loadConfig({ KARYA_ROLE: 'all' });
  return { ...config, roles: new Set([Role.Server]) };
}

const TOP_LEVEL_ORDER = ['openapi', 'info', 'servers', 'tags', 'security', 'externalDocs', 'paths', 'webhooks', 'components'];

/**
 * Nest emits paths and schemas in discovery order (module import order, first reference), so an unrelated
 * change could reshuffle the committed file. Sort the document's top level into a fixed order and the
 * paths and component maps by name; everything inside an operation or a schema keeps its declared order.
 */
function canonicalOrder(doc: OpenAPIObject): OpenAPIObject {
  const source = doc as unknown as Record<string, unknown>;
  const keys = Object.keys(source).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const value = source[key];
    if (key === 'paths' || key === 'webhooks') out[key] = sortedByKey(value);
    else if (key === 'components' && isRecord(value)) {
      out[key] = Object.fromEntries(Object.entries(sortedByKey(value)).map(([k, v]) => [k, sortedByKey(v)]));
    } else out[key] = value;
  }
  return out as unknown as OpenAPIObject;
}

function rank(key: string): number {
  const i = TOP_LEVEL_ORDER.indexOf(key);
  return i === -1 ? TOP_LEVEL_ORDER.length : i;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sortedByKey(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) return value as Record<string, unknown>;
  // Code-point order, not localeCompare: the same on every machine.
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

async function main(): Promise<void> {
  const doc = await buildOpenApiDocument();
  mkdirSync(dirname(OPENAPI_FILE), { recursive: true });
  writeFileSync(OPENAPI_FILE, serializeOpenApiDocument(doc));
  const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).filter((k) => HTTP_METHODS.has(k)).length, 0);
  process.stdout.write(`wrote ${relative(process.cwd(), OPENAPI_FILE)} (${operations} operations)\n`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`openapi: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
