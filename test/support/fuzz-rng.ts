/**
 * A seeded, deterministic PRNG for the API fuzz test (mulberry32): the same seed always yields the same
 * sequence, so every generated request can be reproduced from the seed printed with a failure.
 */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[this.int(0, items.length - 1)];
  }

  /** Picks by relative weight. */
  weighted<T>(entries: readonly (readonly [T, number])[]): T {
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    let r = this.next() * total;
    for (const [value, w] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    return entries[entries.length - 1][0];
  }

  hex(length: number): string {
    let out = '';
    for (let i = 0; i < length; i++) out += '0123456789abcdef'[this.int(0, 15)];
    return out;
  }

  /** A well-formed (version 4 shaped) UUID that no server row will ever have. */
  uuid(): string {
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${this.pick(['8', '9', 'a', 'b'])}${this.hex(3)}-${this.hex(12)}`;
  }

  /** Random capitalisation of each letter. */
  oddCase(text: string): string {
    let out = '';
    for (const ch of text) out += this.chance(0.5) ? ch.toLowerCase() : ch.toUpperCase();
    return out === text && text.toLowerCase() !== text ? text.toLowerCase() : out;
  }
}

/** Parses a seed given as decimal or 0x-hex; the fallback when unset or blank. */
export function seedFrom(text: string | undefined, fallback: number): number {
  const t = (text ?? '').trim();
  if (t === '') return fallback >>> 0;
  const n = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t.slice(2), 16) : Number(t);
  if (!Number.isFinite(n)) throw new Error(`KARYA_FUZZ_SEED: expected a number, got "${t}"`);
  return n >>> 0;
}
