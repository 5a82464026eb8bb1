import { existsSync, readFileSync } from 'node:fs';
import SwaggerParser from '@apidevtools/swagger-parser';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { PlanStatus } from '../src/connectors/repo/entities/plan.entity';
import { WIRE_TASK_STATUSES } from '../src/connectors/repo/entities/task.entity';
import { ACTION_TYPE, BODY_TYPE, METHODS, OVERLAP_POLICIES, PLAN_TYPE, PROTOCOLS, TRIGGERS } from '../src/modules/plans/dto/discriminators';
import { PLAN_FILTERS } from '../src/modules/plans/plans.repository';
import { Role } from '../src/role/role';
import { buildOpenApiDocument, OPENAPI_FILE, serializeOpenApiDocument } from '../src/openapi';
import { TempDir } from './support/temp-files';

/*
 * The committed OpenAPI document (openapi/karya-v1.json): fresh, valid OpenAPI 3, complete for the v1
 * wire contract (api-v1.md), and identical to what a running server serves.
 */

type Json = Record<string, unknown>;
const STALE = 'openapi/karya-v1.json is stale: run npm run openapi';
/** Why a document that builds under tsc (npm run openapi) can fail or differ under Jest. */
const SWC_HINT =
  'Jest compiles with swc, which emits no design:type metadata for a property without a type annotation ' +
  '(tsc emits Object): give such a property a TypeScript type and its @ApiProperty an explicit `type`';

function readCommitted(): { text: string; doc: Json } {
  if (!existsSync(OPENAPI_FILE)) throw new Error(`openapi/karya-v1.json is missing: run npm run openapi`);
  const text = readFileSync(OPENAPI_FILE, 'utf8');
  return { text, doc: JSON.parse(text) as Json };
}

const committed = readCommitted();
const doc = committed.doc as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; securitySchemes?: Record<string, unknown> };
};

interface Operation {
  summary?: string;
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema?: Schema }> }>;
  security?: Record<string, string[]>[];
}

interface Schema {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  additionalProperties?: unknown;
  items?: Schema;
  oneOf?: Schema[];
  allOf?: Schema[];
  anyOf?: Schema[];
  discriminator?: { propertyName: string; mapping?: Record<string, string> };
  required?: string[];
  nullable?: boolean;
  format?: string;
  example?: unknown;
  default?: unknown;
}

function schemaNamed(name: string): Schema {
  const s = doc.components.schemas[name];
  if (!s) throw new Error(`components.schemas.${name} is missing`);
  return s;
}

function resolve(ref: string): Schema {
  const prefix = '#/components/schemas/';
  if (!ref.startsWith(prefix)) throw new Error(`unexpected $ref ${ref}`);
  return schemaNamed(ref.slice(prefix.length));
}

/** A property's schema, looking through the `allOf: [$ref]` wrapper Nest emits for a described ref. */
function prop(schemaName: string, property: string): Schema {
  const s = schemaNamed(schemaName).properties?.[property];
  if (!s) throw new Error(`${schemaName}.${property} is missing`);
  return s;
}

function deref(s: Schema): Schema {
  if (s.$ref) return resolve(s.$ref);
  if (s.allOf?.length === 1 && s.allOf[0].$ref) return resolve(s.allOf[0].$ref);
  return s;
}

/** The first line where two texts differ, to say what changed without dumping both files. */
function firstDifference(a: string, b: string): string {
  const la = a.split('\n');
  const lb = b.split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `line ${i + 1}:\n  committed: ${la[i] ?? '(end of file)'}\n  fresh:     ${lb[i] ?? '(end of file)'}`;
  }
  return '(no difference)';
}

describe('openapi/karya-v1.json', () => {
  it('equals a freshly built document (npm run openapi)', async () => {
    let fresh: string;
    try {
      fresh = serializeOpenApiDocument(await buildOpenApiDocument());
    } catch (e) {
      throw new Error(`building the OpenAPI document failed: ${(e as Error).message}\n${SWC_HINT}`);
    }
    if (committed.text !== fresh) throw new Error(`${STALE}\nfirst difference at ${firstDifference(committed.text, fresh)}`);
  });

  it('validates as OpenAPI 3', async () => {
    expect(doc).toHaveProperty('openapi', expect.stringMatching(/^3\./));
    await expect(SwaggerParser.validate(structuredClone(committed.doc) as never)).resolves.toBeDefined();
  });

  describe('lists every /v1 operation of the wire contract', () => {
    /** Operation -> the error statuses api-v1.md documents for it, plus 400 where the handler answers one too. */
    const OPERATIONS: Record<string, string[]> = {
      'POST /v1/user': ['400', '401', '403'],
      'GET /v1/user': ['400', '401', '404'],
      'POST /v1/plan': ['400', '401', '403', '404'],
      'GET /v1/plan': ['400', '401', '403'],
      'PATCH /v1/plan': ['400', '401', '404', '503'],
      'GET /v1/plan/{plan_id}': ['400', '401', '404'],
      'GET /v1/plan/{plan_id}/summary': ['400', '401', '404'],
      'POST /v1/plan/{plan_id}': ['400', '401', '404', '503'],
      // Bounded history: the summary's rest, a page at a time.
      'GET /v1/plan/{plan_id}/tasks': ['400', '401', '404'],
      'GET /v1/plan/{plan_id}/error-logs': ['400', '401', '404'],
      // Schedules (docs/schedules.md): the richer state, pause, resume, run now. 409 for a COMPLETED or
      // CANCELLED plan (and run now of a paused plan or a OneTime plan that has run); 503 for the plan lock.
      'GET /v1/plan/{plan_id}/state': ['400', '401', '404'],
      'POST /v1/plan/{plan_id}/pause': ['400', '401', '404', '409', '503'],
      'POST /v1/plan/{plan_id}/resume': ['400', '401', '404', '409', '503'],
      'POST /v1/plan/{plan_id}/run': ['400', '401', '404', '409', '503'],
      // Dead letters.
      'GET /v1/dead-letters': ['400', '401', '403'],
      'POST /v1/dead-letters/{id}/replay': ['400', '401', '404', '409'],
      'DELETE /v1/dead-letters/{id}': ['400', '401', '404'],
      // Key management (apikey mode).
      'POST /v1/user/{user_id}/keys': ['401', '403', '404'],
      'GET /v1/user/{user_id}/keys': ['401', '403'],
      'DELETE /v1/user/{user_id}/keys/{key_id}': ['401', '403', '404'],
      // Dashboard (issue 14): figures of the last hour, who the caller is, a plan's next fires.
      'GET /v1/stats': ['400', '401', '403'],
      'GET /v1/whoami': ['401'],
      'GET /v1/plan/{plan_id}/fires': ['400', '401', '404'],
    };
    const HTTP = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

    function operation(key: string): Operation {
      const [method, path] = key.split(' ');
      const op = doc.paths[path]?.[method.toLowerCase()];
      if (!op) throw new Error(`${key} is not in the document`);
      return op;
    }

    it('has exactly the contract operations under /v1', () => {
      const listed = Object.entries(doc.paths)
        .filter(([path]) => path.startsWith('/v1/'))
        .flatMap(([path, item]) => Object.keys(item).filter((m) => HTTP.includes(m)).map((m) => `${m.toUpperCase()} ${path}`));
      expect(listed.sort()).toEqual(Object.keys(OPERATIONS).sort());
    });

    it.each(Object.keys(OPERATIONS))('%s: a JSON 200 response with a schema', (key) => {
      const ok = operation(key).responses['200'];
      expect(ok).toBeDefined();
      const schema = ok.content?.['application/json']?.schema;
      // The key listing is the one array answer; its items are a named schema like every other answer.
      expect(schema?.type === 'array' ? schema.items : schema).toEqual(expect.objectContaining({ $ref: expect.any(String) }));
      expect(Object.keys(operation(key).responses).filter((s) => /^2/.test(s))).toEqual(['200']);
    });

    it.each(Object.entries(OPERATIONS))('%s: documents its plain-text errors %j', (key, statuses) => {
      const responses = operation(key).responses;
      for (const status of statuses) {
        const res = responses[status];
        expect({ status, documented: res !== undefined }).toEqual({ status, documented: true });
        expect({ status, content: Object.keys(res.content ?? {}) }).toEqual({ status, content: ['text/plain'] });
        expect({ status, schema: res.content?.['text/plain']?.schema?.type }).toEqual({ status, schema: 'string' });
      }
    });

    it.each(Object.keys(OPERATIONS))('%s: has a summary and described responses', (key) => {
      const op = operation(key);
      expect({ key, summary: op.summary?.trim() || undefined }).toEqual({ key, summary: expect.any(String) });
      const undescribed = Object.entries(op.responses).filter(([, r]) => !r.description?.trim()).map(([s]) => s);
      expect({ key, undescribed }).toEqual({ key, undescribed: [] });
    });

    it.each(Object.keys(OPERATIONS))('%s: every parameter has a typed schema', (key) => {
      const untyped = (operation(key).parameters ?? []).filter((p) => !p.schema?.type).map((p) => `${p.in} ${p.name}`);
      expect({ key, untyped }).toEqual({ key, untyped: [] });
    });

    it.each(Object.keys(OPERATIONS))('%s: takes an API key as a bearer token or as the Basic password', (key) => {
      expect(operation(key).security).toEqual([{ apiKey: [] }, { apiKeyAsBasicPassword: [] }]);
    });

    it('declares the two security schemes', () => {
      expect(doc.components?.securitySchemes).toEqual({
        apiKey: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
        apiKeyAsBasicPassword: expect.objectContaining({ type: 'http', scheme: 'basic' }),
      });
    });

    it('describes the request bodies and parameters', () => {
      const json = (key: string) => operation(key).requestBody?.content['application/json']?.schema?.$ref;
      expect(json('POST /v1/user')).toBe('#/components/schemas/CreateUserRequestDto');
      expect(json('POST /v1/plan')).toBe('#/components/schemas/SubmitPlanRequestDto');
      expect(json('PATCH /v1/plan')).toBe('#/components/schemas/UpdatePlanRequestDto');
      const params = (key: string) => (operation(key).parameters ?? []).map((p) => `${p.in} ${p.name}${p.required ? '' : '?'}`).sort();
      expect(params('GET /v1/user')).toEqual(['query username']);
      expect(params('GET /v1/plan')).toEqual(['query page?', 'query status?', 'query user_id']);
      const status = (operation('GET /v1/plan').parameters ?? []).find((p) => p.name === 'status');
      expect(status?.schema).toEqual(expect.objectContaining({ type: 'string', enum: [...PLAN_FILTERS] }));
      expect([...PLAN_FILTERS].sort()).toEqual(['CANCELLED', 'COMPLETED', 'CREATED', 'PAUSED', 'RUNNING']);
      const byPlanId = [
        'GET /v1/plan/{plan_id}',
        'GET /v1/plan/{plan_id}/summary',
        'POST /v1/plan/{plan_id}',
        'GET /v1/plan/{plan_id}/state',
        'POST /v1/plan/{plan_id}/pause',
        'POST /v1/plan/{plan_id}/resume',
        'POST /v1/plan/{plan_id}/run',
      ];
      for (const key of byPlanId) expect({ key, params: params(key) }).toEqual({ key, params: ['path plan_id'] });
    });

    it('answers the schedule endpoints with PlanState, and run now with the Task it created', () => {
      const ok = (key: string) => operation(key).responses['200'].content?.['application/json']?.schema?.$ref;
      for (const key of ['GET /v1/plan/{plan_id}/state', 'POST /v1/plan/{plan_id}/pause', 'POST /v1/plan/{plan_id}/resume']) {
        expect({ key, ref: ok(key) }).toEqual({ key, ref: '#/components/schemas/PlanStateDto' });
      }
      expect(ok('POST /v1/plan/{plan_id}/run')).toBe('#/components/schemas/TaskDto');
      // pause, resume and run take no body: a client sends none.
      for (const key of ['POST /v1/plan/{plan_id}/pause', 'POST /v1/plan/{plan_id}/resume', 'POST /v1/plan/{plan_id}/run']) {
        expect({ key, body: operation(key).requestBody }).toEqual({ key, body: undefined });
      }
    });
  });

  describe('schemas', () => {
    /** A union is a oneOf whose discriminator `type` maps every Kotlin class name to the branch carrying it. */
    function expectUnion(where: string, union: Schema, names: readonly string[]): void {
      expect({ where, propertyName: union.discriminator?.propertyName }).toEqual({ where, propertyName: 'type' });
      const mapping = union.discriminator?.mapping ?? {};
      expect({ where, mapped: Object.keys(mapping).sort() }).toEqual({ where, mapped: [...names].sort() });
      expect({ where, branches: (union.oneOf ?? []).map((b) => b.$ref).sort() }).toEqual({ where, branches: Object.values(mapping).sort() });
      for (const [name, ref] of Object.entries(mapping)) {
        const branch = resolve(ref);
        expect({ where, ref, type: branch.properties?.type?.enum }).toEqual({ where, ref, type: [name] });
        expect({ where, ref, required: branch.required ?? [] }).toEqual({ where, ref, required: expect.arrayContaining(['type']) });
      }
    }

    const ACTIONS = Object.values(ACTION_TYPE);
    it.each([
      ['SubmitPlanRequestDto', 'action', ACTIONS],
      ['SubmitPlanRequestDto', 'plan_type', Object.values(PLAN_TYPE)],
      ['RestApiRequestDto', 'body', Object.values(BODY_TYPE)],
      ['HookDto', 'action', ACTIONS],
      ['PlanDto', 'action', ACTIONS],
      ['PlanDto', 'type', Object.values(PLAN_TYPE)],
    ] as const)('%s.%s is a oneOf with the `type` discriminator and the Kotlin class names', (schema, property, names) => {
      expectUnion(`${schema}.${property}`, prop(schema, property), names);
    });

    it('maps the Cron plan type to CronDto wherever a plan type appears (submit and the returned Plan)', () => {
      for (const [schema, property] of [['SubmitPlanRequestDto', 'plan_type'], ['PlanDto', 'type']] as const) {
        const union = prop(schema, property);
        expect({ where: `${schema}.${property}`, cron: union.discriminator?.mapping?.[PLAN_TYPE.Cron] }).toEqual({
          where: `${schema}.${property}`,
          cron: '#/components/schemas/CronDto',
        });
        expect(union.oneOf?.map((b) => b.$ref)).toContain('#/components/schemas/CronDto');
      }
      expect(PLAN_TYPE.Cron).toBe('karya.core.entities.PlanType.Cron');
    });

    it('ErrorLogDto.type is a oneOf with the `type` discriminator and the Kotlin class names', () => {
      expectUnion('ErrorLogDto.type', prop('ErrorLogDto', 'type'), [
        'karya.core.entities.ErrorLogType.HookErrorLog',
        'karya.core.entities.ErrorLogType.ExecutorErrorLog',
      ]);
    });

    it('every oneOf in the document carries a discriminator mapping', () => {
      const missing: string[] = [];
      const walk = (s: unknown, path: string): void => {
        if (Array.isArray(s)) s.forEach((x, i) => walk(x, `${path}[${i}]`));
        else if (s && typeof s === 'object') {
          const o = s as Schema;
          if (o.oneOf && !(o.discriminator?.propertyName === 'type' && o.discriminator.mapping)) missing.push(path);
          for (const [k, v] of Object.entries(o)) walk(v, `${path}.${k}`);
        }
      };
      walk(doc.components.schemas, 'components.schemas');
      expect(missing).toEqual([]);
    });

    it('has the enums of the contract', () => {
      expect(deref(prop('RestApiRequestDto', 'protocol')).enum).toEqual([...PROTOCOLS]);
      expect(deref(prop('RestApiRequestDto', 'method')).enum).toEqual([...METHODS]);
      expect(deref(prop('HookDto', 'trigger')).enum).toEqual([...TRIGGERS]);
      expect(schemaNamed('PlanStatus').enum).toEqual(Object.values(PlanStatus));
      // The v1 Task shows exactly the 5 statuses of the published clients' enum; Karya's own PAUSED and
      // BUFFERED task states are stored but answered as CREATED (wireTaskStatus).
      expect(schemaNamed('TaskStatus').enum).toEqual(['CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED']);
      expect([...WIRE_TASK_STATUSES]).toEqual(['CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED']);
      expect(deref(prop('PlanDto', 'status'))).toBe(schemaNamed('PlanStatus'));
      expect(deref(prop('TaskDto', 'status'))).toBe(schemaNamed('TaskStatus'));
      expect(['CREATED', 'RUNNING', 'COMPLETED', 'CANCELLED']).toEqual(Object.values(PlanStatus));
      // Only PlanState, a new shape, says PAUSED.
      expect(prop('PlanStateDto', 'status').enum).toEqual(['CREATED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED']);
      expect(prop('PlanStateDto', 'overlap').enum).toEqual([...OVERLAP_POLICIES]);
      expect(OVERLAP_POLICIES).toEqual(['ALLOW', 'SKIP', 'BUFFER_ONE']);
      for (const type of ['RecurringDto', 'CronDto']) {
        expect({ type, overlap: deref(prop(type, 'overlap')).enum }).toEqual({ type, overlap: [...OVERLAP_POLICIES] });
      }
    });

    it('response schemas have exactly the contract key sets, all required', () => {
      const KEYS: Record<string, string[]> = {
        UserDto: ['id', 'name', 'created_at'],
        PlanDto: ['id', 'user_id', 'description', 'period_time', 'type', 'status', 'max_failure_retry', 'action', 'hook', 'parent_plan_id', 'created_at', 'updated_at'],
        TaskDto: ['id', 'plan_id', 'partition_key', 'status', 'created_at', 'executed_at', 'next_execution_at'],
        ErrorLogDto: ['plan_id', 'error', 'type', 'timestamp'],
        GetPlanResponseDto: ['plan', 'latest_task'],
        GetSummaryResponseDto: ['plan', 'tasks', 'error_logs'],
        ListPlansResponseDto: ['plans', 'total', 'offset'],
        PlanStateDto: ['plan_id', 'status', 'paused_at', 'overlap', 'next_execution_at'],
      };
      for (const [name, keys] of Object.entries(KEYS)) {
        const s = schemaNamed(name);
        expect({ name, keys: Object.keys(s.properties ?? {}).sort() }).toEqual({ name, keys: [...keys].sort() });
        expect({ name, required: [...(s.required ?? [])].sort() }).toEqual({ name, required: [...keys].sort() });
      }
    });

    it('request schemas require only what the contract requires', () => {
      expect(schemaNamed('SubmitPlanRequestDto').required?.sort()).toEqual(['action', 'description', 'period_time', 'plan_type', 'user_id']);
      expect(schemaNamed('UpdatePlanRequestDto').required).toEqual(['plan_id']);
      expect(schemaNamed('CreateUserRequestDto').required).toEqual(['name']);
      // time_zone defaults to UTC, end_at to null, overlap to ALLOW.
      expect(schemaNamed('CronDto').required?.sort()).toEqual(['expression', 'type']);
      expect(prop('CronDto', 'time_zone').default).toBe('UTC');
    });

    it('declares integers as integers (epoch ms, counts, retries, timeouts)', () => {
      const INTEGERS: [string, string][] = [
        ['UserDto', 'created_at'],
        ['PlanDto', 'max_failure_retry'],
        ['PlanDto', 'created_at'],
        ['PlanDto', 'updated_at'],
        ['TaskDto', 'partition_key'],
        ['TaskDto', 'created_at'],
        ['TaskDto', 'executed_at'],
        ['TaskDto', 'next_execution_at'],
        ['ErrorLogDto', 'timestamp'],
        ['ListPlansResponseDto', 'total'],
        ['ListPlansResponseDto', 'offset'],
        ['SubmitPlanRequestDto', 'max_failure_retry'],
        ['UpdatePlanRequestDto', 'max_failure_retry'],
        ['HookDto', 'max_retry'],
        ['RestApiRequestDto', 'timeout'],
        ['RecurringDto', 'end_at'],
        ['CronDto', 'end_at'],
        ['PlanStateDto', 'paused_at'],
        ['PlanStateDto', 'next_execution_at'],
      ];
      const wrong = INTEGERS.filter(([s, p]) => prop(s, p).type !== 'integer').map(([s, p]) => `${s}.${p}: ${prop(s, p).type}`);
      expect(wrong).toEqual([]);
    });

    it('marks the nullable values nullable', () => {
      const NULLABLE: [string, string][] = [
        ['PlanDto', 'parent_plan_id'],
        ['TaskDto', 'executed_at'],
        ['TaskDto', 'next_execution_at'],
        ['GetPlanResponseDto', 'latest_task'],
        ['RecurringDto', 'end_at'],
        ['CronDto', 'end_at'],
        ['PlanStateDto', 'paused_at'],
        ['PlanStateDto', 'overlap'],
        ['PlanStateDto', 'next_execution_at'],
        ['KafkaProducerRequestDto', 'key'],
        ['UpdatePlanRequestDto', 'period_time'],
        ['UpdatePlanRequestDto', 'max_failure_retry'],
        ['UpdatePlanRequestDto', 'hooks'],
      ];
      expect(NULLABLE.filter(([s, p]) => prop(s, p).nullable !== true).map(([s, p]) => `${s}.${p}`)).toEqual([]);
    });

    it('has no untyped property (a TypeScript union or inferred type that Swagger shows as a bare object)', () => {
      const untyped: string[] = [];
      for (const [name, schema] of Object.entries(doc.components.schemas)) {
        for (const [key, p] of Object.entries(schema.properties ?? {})) {
          const composed = p.$ref || p.oneOf || p.allOf || p.anyOf;
          const bareObject = p.type === 'object' && !p.properties && !p.additionalProperties && !composed;
          if (bareObject || (!p.type && !composed)) untyped.push(`${name}.${key}`);
        }
      }
      expect(untyped).toEqual([]);
    });

    it('gives examples for the values a client must get right', () => {
      const EXAMPLES: [string, string][] = [
        ['SubmitPlanRequestDto', 'period_time'],
        ['SubmitPlanRequestDto', 'description'],
        ['RestApiRequestDto', 'base_url'],
        ['JsonBodyDto', 'json_string'],
        ['SlackMessageRequestDto', 'message'],
        ['CreateUserRequestDto', 'name'],
        ['CronDto', 'expression'],
        ['CronDto', 'time_zone'],
      ];
      expect(EXAMPLES.filter(([s, p]) => prop(s, p).example === undefined).map(([s, p]) => `${s}.${p}`)).toEqual([]);
    });
  });
});

describe('the served /docs-json', () => {
  const tmp = new TempDir();
  const apps: INestApplication[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    tmp.cleanup();
  });

  it.each([
    ['all-in-one (KARYA_ROLE=all)', null],
    ['server role only', [Role.Server]],
  ] as const)('of a running %s app equals the committed file', async (_label, roles) => {
    const providers = tmp.write('providers.yml', 'repo:\n  provider: pglite\n  properties:\n    dataDir: memory\n');
    const { config } = loadConfig({ KARYA_PROVIDERS_CONFIG_PATH: providers });
    const app = await createApp(roles ? { ...config, roles: new Set(roles) } : config, { logger: false });
    apps.push(app);
    const res = await request(app.getHttpServer()).get('/docs-json');
    if (res.status !== 200) throw new Error(`GET /docs-json answered ${res.status}: ${res.text}\n${SWC_HINT}`);
    if (serializeOpenApiDocument(res.body) !== committed.text) {
      throw new Error(`${STALE} (the served /docs-json differs)\nfirst difference at ${firstDifference(committed.text, serializeOpenApiDocument(res.body))}`);
    }
  });
});
