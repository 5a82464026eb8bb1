import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** House rules (design/architecture.md) that a reviewer would otherwise have to catch by eye. */
const SRC = join(__dirname, '../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const sources = files(SRC).map((path) => ({ path: relative(SRC, path), text: readFileSync(path, 'utf8') }));

/** The code without comments, so prose about a rule does not break it. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

describe('source rules', () => {
  it('has no barrel index.ts files', () => {
    expect(sources.filter((s) => /(^|\/)index\.ts$/.test(s.path)).map((s) => s.path)).toEqual([]);
  });

  it('never uses forwardRef', () => {
    expect(sources.filter((s) => /\bforwardRef\b/.test(code(s.text))).map((s) => s.path)).toEqual([]);
  });

  it('has no `any` type without a comment on the same or previous line saying why', () => {
    const offenders: string[] = [];
    for (const s of sources) {
      const lines = s.text.split('\n');
      lines.forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, '').replace(/'[^']*'|"[^"]*"|`[^`]*`/g, '');
        if (/(:\s*any\b|<any>|\bas any\b|any\[\])/.test(code)) {
          const why = /\/\/|\/\*/.test(line) || /\/\/|\*/.test(lines[i - 1] ?? '');
          if (!why) offenders.push(`${s.path}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    expect(offenders).toEqual([]);
  });

  it('reads process.env only in the config loader and the entry points', () => {
    const allowed = new Set(['config/config.loader.ts', 'main.ts', 'migrate.ts']);
    const readers = sources
      .filter((s) => !s.path.endsWith('.spec.ts') && !s.path.endsWith('.contract.ts'))
      .filter((s) => /process\.env/.test(code(s.text)) && !allowed.has(s.path))
      .map((s) => s.path);
    expect(readers).toEqual([]);
  });
});
