import { BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';

/** Flattens class-validator errors into "field: problem, got VALUE" lines (the contract wants both). */
export function describeValidationErrors(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const field = `${prefix}${e.property}`;
    if (e.constraints) {
      const value = e.value === undefined ? 'nothing' : JSON.stringify(e.value);
      const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
      out.push(`${field}: ${Object.values(e.constraints).join(', ')}, got ${shown}`);
    }
    if (e.children?.length) out.push(...describeValidationErrors(e.children, `${field}.`));
  }
  return out;
}

export function karyaValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidUnknownValues: true,
    // One problem per field: a number given for a string needs "must be a string", not a length complaint too.
    stopAtFirstError: true,
    exceptionFactory: (errors) => new BadRequestException(describeValidationErrors(errors).join('; ')),
  });
}
