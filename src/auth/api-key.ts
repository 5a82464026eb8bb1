import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * User keys look like `karya_<43 base64url characters>` (32 random bytes). The fixed prefix makes a leaked
 * key easy to spot by secret scanners; the first KEY_PREFIX_LENGTH characters are stored as the key's
 * visible prefix.
 */
export const KEY_PREFIX = 'karya_';
export const KEY_PREFIX_LENGTH = KEY_PREFIX.length + 6;

export function generateKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of two keys (through their digests, so the lengths need not match). */
export function sameKey(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
