import { ChildProcess, spawn } from 'node:child_process';
import { createServer, AddressInfo } from 'node:net';
import { join } from 'node:path';

export const PROJECT_ROOT = join(__dirname, '../..');
export const MAIN_JS = join(PROJECT_ROOT, 'dist/main.js');

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The parent's environment without anything that would configure Karya, so each test says it all. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('KARYA_') && k !== 'PORT' && !k.startsWith('JEST') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  return { ...env, ...extra };
}

/** A real Karya process (`node dist/main.js`), as a user deploys it. */
export class KaryaProcess {
  private child: ChildProcess | undefined;
  stdout = '';
  stderr = '';
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

  constructor(
    private readonly env: Record<string, string>,
    private readonly cwd: string = PROJECT_ROOT,
    private readonly script: string = MAIN_JS,
  ) {}

  start(): this {
    const child = spawn(process.execPath, [this.script], { cwd: this.cwd, env: cleanEnv(this.env), stdio: 'pipe' });
    child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child = child;
    return this;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Resolves with the exit status, or rejects if the process is still running after `timeoutMs`. */
  async waitForExit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exited) throw new Error('not started');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms\n${this.output()}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async waitForHealthy(port: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited?.then(() => (exited = true));
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`Karya on port ${port} did not become healthy (${exited ? 'exited' : 'timed out'})\n${this.output()}`);
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Ends the process whatever it is doing; used in afterAll so no test leaves a process behind. */
  async kill(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  output(): string {
    return `--- stdout\n${this.stdout}\n--- stderr\n${this.stderr}`;
  }
}
