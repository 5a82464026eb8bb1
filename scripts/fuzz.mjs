// The API mutation fuzzer at scale: `npm run fuzz` (10,000 cases against a real server process on a fresh
// PostgreSQL database), or `npm run fuzz -- --cases 50000 --seed 0x1234 --targets postgres,pglite`.
//
// It runs the fuzz suite (test/api-fuzz.e2e-spec.ts, which CI runs with 1,000 cases on both targets) with
// these settings: every case is one valid request with one mutation, over every v1 plan and user endpoint,
// issue 13's included (Cron plan types and overlap; pause, resume, run now and the schedule state on live,
// paused, cancelled and completed plans; the list's status filter). Every answer must be the contract's (never
// a 5xx, never a hang; exact key sets of Plan, Task and PlanState; a 409 naming the plan and its status; what
// the run's earlier answers imply, e.g. PAUSED in the state of a paused plan whose v1 Plan still says CREATED),
// and afterwards the database must hold exactly what was acknowledged (every plan a 200 answered, once, as last
// echoed by POST, PATCH or cancel, paused as pause and resume answered, with its first task and one more per
// run now; no plan or user that no 200 acknowledged). Prints a summary per target and exits non-zero on any
// violation. The same seed gives the same requests (up to the ids the server assigns).
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const { values: args } = parseArgs({
  options: {
    cases: { type: 'string', default: '10000' },
    /** Decimal or 0x-hex; the suite's own default seed when left out. */
    seed: { type: 'string' },
    /** pglite (embedded, in process), postgres (a `node dist/main.js` server on a fresh database), or both. */
    targets: { type: 'string', default: 'postgres' },
    /** A file to append every case and its answer to, one JSON line each. */
    dump: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write('usage: npm run fuzz -- [--cases 10000] [--seed N|0xN] [--targets postgres|pglite|postgres,pglite] [--dump file.jsonl]\n');
  process.exit(0);
}
const cases = Number(args.cases);
if (!Number.isInteger(cases) || cases < 1) {
  process.stderr.write(`--cases: expected a positive whole number, got "${args.cases}"\n`);
  process.exit(2);
}
if (args.seed !== undefined && !/^(0x[0-9a-f]+|\d+)$/i.test(args.seed.trim())) {
  process.stderr.write(`--seed: expected a decimal or 0x-hex number, got "${args.seed}"\n`);
  process.exit(2);
}

const env = {
  ...process.env,
  KARYA_FUZZ_CASES: String(cases),
  KARYA_FUZZ_TARGETS: args.targets,
  ...(args.seed !== undefined ? { KARYA_FUZZ_SEED: args.seed.trim() } : {}),
  ...(args.dump !== undefined ? { KARYA_FUZZ_DUMP: args.dump } : {}),
};
const started = Date.now();
// --experimental-vm-modules: PGlite (the embedded target) loads WebAssembly modules through it, as in `npm test`.
const child = spawn(
  process.execPath,
  ['--experimental-vm-modules', '--no-warnings', join(ROOT, 'node_modules/jest/bin/jest.js'), '--runInBand', '--runTestsByPath', 'test/api-fuzz.e2e-spec.ts'],
  { cwd: ROOT, env, stdio: 'inherit' },
);
child.on('exit', (code, signal) => {
  const verdict = code === 0 ? 'no violations' : `FAILED (${signal ?? `exit ${code}`}): see the report above`;
  process.stdout.write(`fuzz: ${cases} cases on ${args.targets} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${verdict}\n`);
  process.exit(code ?? 1);
});
