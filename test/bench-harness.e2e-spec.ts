// The benchmark harness itself (bench/run.mjs), run as a user runs it, on its one-minute smoke profile: it
// must measure every deployment and the peers (BullMQ, graphile-worker, pg-boss), report, write its JSON,
// and fail loudly when a task is lost.
// It drives real Karya processes on the real services and purges Karya's queues: like every suite here it
// runs alone (--runInBand).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..');
/** Harness runs still going: a test that timed out must not leave its run purging queues under the next one. */
const running = new Set<ChildProcess>();

function runBench(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bench/run.mjs'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    running.add(child);
    child.on('error', reject);
    child.on('exit', (code) => {
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The parts of the harness's JSON this suite reads. */
interface Workload {
  expected: number;
  distinct: number;
  lost: number;
  duplicates: number;
  rate: number | null;
}
/** A PostgreSQL peer: its own worker process and database, its add call's submission figure. */
interface Peer {
  pid: number;
  database: string;
  burst: Workload;
  steady: Workload;
  submission: { rate: number };
}
interface BenchResults {
  karya: Record<string, {
    burst: Workload;
    steady: Workload;
    burstBacklog?: Workload & { backlog: number };
    burstHousekeeping?: Workload & { expired: { finished: boolean } };
    submission: { rate: number; non2xx: number };
    alive: boolean;
  }>;
  bullmq: { burst: Workload; steady: Workload };
  graphile: Peer;
  pgboss: Peer;
  tuning: Record<string, unknown>;
  limits: Record<string, { rate: number }>;
  machine: { cpus: number };
  goals: { lostTotal: number };
}

function onlyResult(dir: string): BenchResults {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  expect(files).toHaveLength(1);
  return JSON.parse(readFileSync(join(dir, files[0]), 'utf8'));
}

describe('benchmark harness (npm run bench), smoke profile', () => {
  const dirs: string[] = [];
  const resultsDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'karya-bench-test-'));
    dirs.push(d);
    return d;
  };
  // SIGTERM: the harness stops its processes and drops its databases before it exits.
  afterEach(async () => {
    await Promise.all([...running].map((c) => new Promise((r) => {
      c.once('exit', r);
      c.kill('SIGTERM');
    })));
  });
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('measures Karya split and all, BullMQ, graphile-worker, pg-boss, the limits and the backlog run in one run, prints the table and writes the JSON', async () => {
    const dir = resultsDir();
    const r = await runBench(['--profile', 'smoke'], { KARYA_BENCH_RESULTS_DIR: dir, KARYA_BENCH_SMOKE_BACKLOG: '20000' });
    expect({ code: r.code, tail: r.stderr.slice(-2000) }).toMatchObject({ code: 0 });
    const res = onlyResult(dir);
    for (const kind of ['split', 'all']) {
      const k = res.karya[kind];
      expect(k.burst).toMatchObject({ expected: 2000, distinct: 2000, lost: 0, duplicates: 0 });
      expect(k.burst.rate).toBeGreaterThan(0);
      expect(k.steady).toMatchObject({ expected: 1000, distinct: 1000, lost: 0, duplicates: 0 });
      expect(k.submission.rate).toBeGreaterThan(0);
      expect(k.submission.non2xx).toBe(0);
      expect(k.alive).toBe(true);
    }
    // Item 6: the burst again with future tasks already stored, compared with the empty-table run.
    expect(res.karya.split.burstBacklog).toMatchObject({ expected: 2000, distinct: 2000, lost: 0, duplicates: 0, backlog: 20000 });
    expect(r.stdout).toMatch(/\| burst \+ 20,000 stored future tasks, tasks\/s ↑ +\| +[\d,]+ \|/);
    // The burst drained while the housekeeper deleted as many expired rows, all of which it deleted.
    expect(res.karya.split.burstHousekeeping).toMatchObject({ expected: 2000, distinct: 2000, lost: 0, duplicates: 0 });
    expect(res.karya.split.burstHousekeeping?.expired.finished).toBe(true);
    expect(res.bullmq.burst).toMatchObject({ expected: 2000, distinct: 2000, lost: 0 });
    expect(res.bullmq.steady).toMatchObject({ expected: 1000, distinct: 1000, lost: 0 });
    // The PostgreSQL peers, each with its own worker process and database, on the smoke profile's smaller
    // workloads (burst 500, steady 200/s × 2 s), with the tuning they ran with stored and printed.
    for (const [key, name] of [['graphile', 'graphile-worker'], ['pgboss', 'pg-boss']] as const) {
      const p = res[key];
      expect(p.burst).toMatchObject({ expected: 500, distinct: 500, lost: 0, duplicates: 0 });
      expect(p.burst.rate).toBeGreaterThan(0);
      expect(p.steady).toMatchObject({ expected: 400, distinct: 400, lost: 0, duplicates: 0 });
      expect(p.submission.rate).toBeGreaterThan(0);
      expect(p.database).toMatch(new RegExp(`^karya_bench_.*_${key}$`));
      expect(res.tuning[key]).toBeDefined();
      expect(r.stdout).toContain(`- ${name} `);
    }
    for (const limit of ['pgClaim', 'pgCommit1', 'pgCommit8', 'rabbit', 'sink']) expect(res.limits[limit].rate).toBeGreaterThan(0);
    expect(res.machine.cpus).toBeGreaterThan(0);
    expect(res.goals.lostTotal).toBe(0);
    // The table on stdout: Karya split and all, BullMQ, graphile-worker, pg-boss, then split ÷ BullMQ and
    // split ÷ graphile-worker, and the fraction of the limits.
    expect(r.stdout).toMatch(/\| burst drain, tasks\/s \(2,000 due at T\) ↑ +(\| +[\d,]+ ){5}\| +[\d.]+× \| +[\d.]+× \|/);
    expect(r.stdout).toContain('graphile-worker and pg-boss ran smaller workloads in this profile: burst 500');
    expect(r.stdout).toMatch(/burst ≥ 2× graphile-worker \(split roles\)/);
    expect(r.stdout).toContain('limit (measured in this run)');
    expect(r.stdout).toContain('Targets (goals, not asserted):');
    // Progress while it runs: phase and tasks done/expected.
    expect(r.stderr).toMatch(/karya-split burst: \d+\/2000 tasks done/);
  }, 300_000);

  it('exits 1 and says how many tasks were lost when one never reached the sink', async () => {
    const dir = resultsDir();
    const r = await runBench(['--profile', 'smoke', '--only', 'split', '--skip-peers'], {
      KARYA_BENCH_RESULTS_DIR: dir,
      KARYA_BENCH_SINK_DROP: '1',
    });
    expect({ code: r.code, tail: r.stderr.slice(-2000) }).toMatchObject({ code: 1 });
    expect(r.stderr).toMatch(/FAILED: \d+ task\(s\) lost/);
    const res = onlyResult(dir);
    expect(res.karya.split.burst.lost).toBe(1);
    expect(res.goals.lostTotal).toBeGreaterThanOrEqual(1);
  }, 300_000);
});
