import { ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';

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

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
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

/** Nest's ValidationPipe with Karya's rules for request bodies: a JSON object, not absurdly deep. */
class KaryaValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && metadata.metatype && metadata.metatype !== Object) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new BadRequestException(`request body: must be a JSON object, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
      }
      if (depthOf(value) > MAX_BODY_DEPTH) {
        throw new BadRequestException(`request body: nested more than ${MAX_BODY_DEPTH} levels deep`);
      }
    }
    try {
      return await super.transform(value, metadata);
    } catch (e) {
      if (e instanceof ValidationFailure) throw new BadRequestException(describeValidationErrors(e.errors, value).join('; '));
      throw e;
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
