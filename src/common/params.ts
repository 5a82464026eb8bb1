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
