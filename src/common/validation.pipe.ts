import { ArgumentMetadata, BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';

/** Deeper JSON than this is refused before class-transformer recurses into it (a stack overflow is a 500). */
const MAX_BODY_DEPTH = 64;

/** Flattens class-validator errors into "field: problem, got VALUE" lines (the contract wants both). */
export function describeValidationErrors(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    // List items come back as numeric properties: show them as `hooks[0]`.
    const field = /^\d+$/.test(e.property) ? `${prefix.replace(/\.$/, '')}[${e.property}]` : `${prefix}${e.property}`;
    if (e.constraints && e.value === undefined) {
      // Optional fields carry @IsOptional, so a constraint failing on a missing value means "required".
      out.push(`${field}: required, got nothing`);
    } else if (e.constraints) {
      const value = JSON.stringify(e.value) ?? String(e.value);
      const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
      out.push(`${field}: ${Object.values(e.constraints).join(', ')}, got ${shown}`);
    }
    if (e.children?.length) out.push(...describeValidationErrors(e.children, `${field}.`));
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
    return super.transform(value, metadata);
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
    exceptionFactory: (errors) => new BadRequestException(describeValidationErrors(errors).join('; ')),
  });
}
