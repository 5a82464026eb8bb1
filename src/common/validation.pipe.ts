import { ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { shown } from './params';

/** Deeper JSON than this is refused before class-transformer recurses into it (a stack overflow is a 500). */
const MAX_BODY_DEPTH = 64;

/** Carries class-validator's errors from the exception factory back to the pipe, which has the raw input. */
class ValidationFailure extends Error {
  constructor(readonly errors: ValidationError[]) {
    super('validation failed');
  }
}

function child(raw: unknown, key: string): unknown {
  return typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[key] : undefined;
}


/**
 * Flattens class-validator errors into "field: problem, got VALUE" lines (the contract wants both). The
 * value is looked up in the raw input: class-transformer may have turned `{}` into an instance with
 * defaults, and the client must see what it sent.
 */
export function describeValidationErrors(errors: ValidationError[], raw: unknown, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    // List items come back as numeric properties: show them as `hooks[0]`.
    const field = /^\d+$/.test(e.property) ? `${prefix.replace(/\.$/, '')}[${e.property}]` : `${prefix}${e.property}`;
    const sent = child(raw, e.property);
    if (e.constraints && sent === undefined) {
      // Optional fields carry @IsOptional, so a constraint failing on a missing value means "required".
      out.push(`${field}: required, got nothing`);
    } else if (e.constraints) {
      out.push(`${field}: ${Object.values(e.constraints).join(', ')}, got ${shown(sent)}`);
    }
    if (e.children?.length) out.push(...describeValidationErrors(e.children, sent, `${field}.`));
  }
  return out;
}

function depthOf(value: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) max = d;
    if (max > MAX_BODY_DEPTH) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/**
 * The first string in `value` that PostgreSQL cannot store: text columns refuse NUL, and jsonb refuses
 * NUL escapes and unpaired UTF-16 surrogates. Returns its path and what is wrong with it.
 */
export function unstorableString(value: unknown, path: string): { path: string; why: string } | null {
  const stack: [unknown, string][] = [[value, path]];
  while (stack.length > 0) {
    const [v, p] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\u0000')) return { path: p, why: 'must not contain NUL (\\u0000) characters' };
      if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(v)) {
        return { path: p, why: 'must be valid Unicode (it holds an unpaired surrogate)' };
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, child] of Object.entries(v)) stack.push([child, Array.isArray(v) ? `${p}[${k}]` : p ? `${p}.${k}` : k]);
    }
  }
  return null;
}

/** Keys holding one polymorphic object (a `type` discriminator); class-transformer crashes on a list there. */
const OBJECT_KEYS = new Set(['action', 'plan_type', 'body', 'request']);

function listWhereObjectBelongs(value: unknown, path: string): string | null {
  const stack: [unknown, string][] = [[value, path]];
  while (stack.length > 0) {
    const [v, p] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    for (const [k, child] of Object.entries(v)) {
      const childPath = Array.isArray(v) ? `${p}[${k}]` : p ? `${p}.${k}` : k;
      if (!Array.isArray(v) && OBJECT_KEYS.has(k) && Array.isArray(child)) return childPath;
      stack.push([child, childPath]);
    }
  }
  return null;
}

/**
 * Nest's ValidationPipe with Karya's rules: a body is a JSON object, not absurdly deep; no input holds text
 * PostgreSQL cannot store; and nothing about a malformed input ever surfaces as a 500.
 */
class KaryaValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const isDto = metadata.type === 'body' && metadata.metatype && metadata.metatype !== Object;
    if (isDto) {
      if (value === undefined) {
        throw new BadRequestException('request body: missing; send a JSON object with Content-Type: application/json');
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new BadRequestException(`request body: must be a JSON object, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
      }
      if (depthOf(value) > MAX_BODY_DEPTH) {
        throw new BadRequestException(`request body: nested more than ${MAX_BODY_DEPTH} levels deep`);
      }
      const list = listWhereObjectBelongs(value, '');
      if (list) throw new BadRequestException(`${list}: must be an object with a "type", got a list`);
    }
    // Path and query parameters are checked by their handlers (common/params.ts), in their declared order.
    const bad = metadata.type === 'body' ? unstorableString(value, '') : null;
    if (bad) throw new BadRequestException(`${bad.path || 'request body'}: ${bad.why}`);
    try {
      return await super.transform(value, metadata);
    } catch (e) {
      if (e instanceof ValidationFailure) throw new BadRequestException(describeValidationErrors(e.errors, value).join('; '));
      if (e instanceof BadRequestException) throw e;
      // class-transformer can trip over shapes the DTO never expected (e.g. [null] where an object belongs).
      throw new BadRequestException(`request body: not the expected shape (${e instanceof Error ? e.message : String(e)})`);
    }
  }
}

export function karyaValidationPipe(): ValidationPipe {
  return new KaryaValidationPipe({
    transform: true,
    // Unknown input keys are ignored (the wire contract), so they are stripped, not rejected.
    whitelist: true,
    forbidUnknownValues: true,
    // One problem per field: a number given for a string needs "must be a string", not a length complaint too.
    stopAtFirstError: true,
    transformOptions: { exposeDefaultValues: true },
    exceptionFactory: (errors) => new ValidationFailure(errors),
  });
}
