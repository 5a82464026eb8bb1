import { BadRequestException } from '@nestjs/common';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A value as sent, for an error message: JSON, cut to 80 characters. */
export function shown(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A path or query parameter that must be one UUID; the 400 names the parameter and the value. */
export function requireUuid(name: string, value: unknown): string {
  if (value === undefined || value === '') throw new BadRequestException(`${name}: required, got nothing`);
  if (typeof value !== 'string' || !UUID.test(value)) throw new BadRequestException(`${name}: must be a UUID, got ${shown(value)}`);
  return value.toLowerCase();
}

/** A non-negative integer query parameter with a default; bounded so offsets stay sane. */
export function optionalIndex(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value) || Number(value) > max) {
    throw new BadRequestException(`${name}: must be an integer from 0 to ${max}, got ${shown(value)}`);
  }
  return Number(value);
}

/** Page indexes past this would only ever return empty pages; refusing them keeps OFFSET arithmetic sane. */
export const MAX_PAGE = 100_000_000;

/** The `page` query parameter of every paged list: a page index (page 2 = rows 40-59), default 0. */
export function pageIndex(value: unknown): number {
  return optionalIndex('page', value, 0, MAX_PAGE);
}

/** The OpenAPI description of `page`, shared by every paged list. */
export const PAGE_QUERY = {
  name: 'page',
  required: false,
  description: `Page index (page 2 = rows 40-59), 0..${MAX_PAGE}`,
  schema: { type: 'integer', default: 0, minimum: 0 },
} as const;
