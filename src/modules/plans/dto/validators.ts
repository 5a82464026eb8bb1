import { Transform } from 'class-transformer';
import { registerDecorator, ValidationArguments, ValidationOptions } from 'class-validator';
import { parsePeriod, PeriodError } from '../period';

/**
 * Checks the `type` discriminator of a polymorphic nested object before class-validator descends into it,
 * so an unknown or missing type is reported as such (not as "an unknown value was passed").
 */
export function IsDiscriminated(names: readonly string[], what: string, options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isDiscriminated',
      target: target.constructor,
      propertyName: propertyName as string,
      options,
      validator: {
        validate(value: unknown): boolean {
          return typeof value === 'object' && value !== null && !Array.isArray(value) &&
            names.includes((value as { type?: unknown }).type as string);
        },
        defaultMessage(args: ValidationArguments): string {
          const v = args.value as unknown;
          if (typeof v !== 'object' || v === null || Array.isArray(v)) return `must be an object with a "type" naming the ${what}`;
          const t = (v as { type?: unknown }).type;
          if (t === undefined) return `must carry a "type" naming the ${what}, one of ${names.join(', ')}`;
          return `unknown ${what} type ${JSON.stringify(t)}; expected one of ${names.join(', ')}`;
        },
      },
    });
}

/** A map of string keys to string values (HTTP headers). */
export function IsStringMap(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isStringMap',
      target: target.constructor,
      propertyName: propertyName as string,
      options,
      validator: {
        validate(value: unknown): boolean {
          return typeof value === 'object' && value !== null && !Array.isArray(value) &&
            Object.values(value).every((v) => typeof v === 'string');
        },
        defaultMessage(): string {
          return 'must be an object of string values';
        },
      },
    });
}

/** Enum strings are accepted in any case on input (spec), stored and returned upper-case. */
export function UpperCase(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.toUpperCase() : value));
}

/** A period_time that parsePeriod accepts; the message is parsePeriod's own. */
export function IsPeriod(options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({
      name: 'isPeriod',
      target: target.constructor,
      propertyName: propertyName as string,
      options,
      validator: {
        validate(value: unknown): boolean {
          if (typeof value !== 'string') return false;
          try {
            parsePeriod(value);
            return true;
          } catch {
            return false;
          }
        },
        defaultMessage(args: ValidationArguments): string {
          try {
            parsePeriod(String(args.value));
          } catch (e) {
            if (e instanceof PeriodError) return e.message;
          }
          return 'must be an ISO-8601 duration';
        },
      },
    });
}

/** A decimal integer written as a JSON string: what karya-ui's forms send for numeric fields (`"5"`). */
const QUOTED_INTEGER = /^-?[0-9]+$/;

/**
 * The original server (kotlinx.serialization) read `"5"` as 5 for an integer field, and karya-ui relies on it
 * (the create wizard and the Update dialog send every number quoted). A string holding a decimal integer becomes
 * that number, so the range checks and the stored and echoed value are the number's; any other value, "5.5" or
 * " 5" included, is left as sent for IsInt to refuse with the value shown.
 */
export function parseQuotedInteger(value: unknown): unknown {
  return typeof value === 'string' && QUOTED_INTEGER.test(value) ? Number(value) : value;
}

/** Accepts a quoted decimal integer where a number belongs (see parseQuotedInteger). */
export function QuotedInteger(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) => parseQuotedInteger(value));
}
