import { DEFAULT_MAX_ERROR_TEXT_BYTES, storableText } from './storable-text';

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
/** Whether every surrogate in `s` is part of a pair (what a UTF-8 encoder can represent). */
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

describe('storableText', () => {
  it('leaves ordinary text alone, multi-byte characters and surrogate pairs included', () => {
    for (const s of ['', 'REST call failed --- [500 | http://x] | bad gateway', 'é ü 漢字 😀 \t\n\r', '\u0001\u001f\u007f']) {
      expect(storableText(s)).toBe(s);
    }
  });

  it('replaces NUL, which PostgreSQL refuses in text, with U+FFFD', () => {
    expect(storableText('bad\u0000gateway')).toBe('bad\uFFFDgateway');
    expect(storableText('\u0000\u0000')).toBe('\uFFFD\uFFFD');
  });

  it('replaces unpaired surrogates (leading, trailing, reversed) and keeps real pairs', () => {
    expect(storableText('a\uD83Db')).toBe('a\uFFFDb');
    expect(storableText('a\uDE00b')).toBe('a\uFFFDb');
    expect(storableText('end\uD83D')).toBe('end\uFFFD');
    expect(storableText('\uDE00\uD83D')).toBe('\uFFFD\uFFFD');
    expect(storableText('\uD83D\uDE00\uD83D')).toBe('\uD83D\uDE00\uFFFD');
  });

  it('caps the UTF-8 size at 10 KiB by default, saying how long the text was', () => {
    const long = 'x'.repeat(50_000);
    const out = storableText(long);
    expect(utf8(out)).toBeLessThanOrEqual(DEFAULT_MAX_ERROR_TEXT_BYTES);
    expect(utf8(out)).toBeGreaterThan(DEFAULT_MAX_ERROR_TEXT_BYTES - 64);
    expect(out).toMatch(/^x+… \[truncated, 50000 bytes in all\]$/);
    expect(storableText('x'.repeat(DEFAULT_MAX_ERROR_TEXT_BYTES))).toHaveLength(DEFAULT_MAX_ERROR_TEXT_BYTES);
    expect(storableText('x'.repeat(DEFAULT_MAX_ERROR_TEXT_BYTES + 1))).toMatch(/truncated, 10241 bytes in all/);
  });

  it('takes the cap it is given and never cuts a character in half', () => {
    for (const unit of ['é', '漢', '😀']) {
      for (let max = 40; max < 60; max++) {
        const out = storableText(unit.repeat(100), max);
        expect(utf8(out)).toBeLessThanOrEqual(max);
        expect(wellFormed(out)).toBe(true);
        expect(out).not.toContain('\uFFFD');
        expect(out).toMatch(/… \[truncated, \d+ bytes in all\]$/);
      }
    }
  });

  it('cuts bare when the cap is smaller than the note', () => {
    expect(storableText('abcdefghij'.repeat(10), 5)).toBe('abcde');
    expect(utf8(storableText('😀'.repeat(10), 6))).toBe(4);
  });

  it('replaces before measuring: a NUL-laden body over the cap comes out storable and capped', () => {
    const body = 'bad\u0000gateway\uD800'.repeat(2000);
    const out = storableText(body, 1000);
    expect(out).not.toContain('\u0000');
    expect(wellFormed(out)).toBe(true);
    expect(utf8(out)).toBeLessThanOrEqual(1000);
  });
});
