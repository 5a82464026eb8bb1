// Child processes of the harness: Karya roles, the sink, the BullMQ worker. Every child is tracked so that
// the harness kills what it started, whatever happens (normal end, error, Ctrl-C).
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** @type {Set<Child>} */
const live = new Set();

export async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
  await new Promise((r) => s.close(r));
  return port;
}

/** The parent's environment without anything that would configure Karya. */
function cleanEnv(extra) {
  /** @type {Record<string, string>} */
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('KARYA_') && k !== 'PORT' && k !== 'NODE_OPTIONS' && !k.startsWith('npm_')) env[k] = v;
  }
  return { ...env, NODE_ENV: 'production', ...extra };
}

export class Child {
  /**
   * @param {string} name label used in logs
   * @param {string} script path to a node script
   * @param {Record<string, string>} env extra environment
   * @param {string} logDir where stdout+stderr go (`<name>.log`)
   * @param {string} cwd
   * @param {string[]} [nodeArgs] options for node itself (e.g. --cpu-prof, which NODE_OPTIONS refuses)
   */
  constructor(name, script, env, logDir, cwd, nodeArgs = []) {
    this.name = name;
    this.logFile = join(logDir, `${name}.log`);
    const log = createWriteStream(this.logFile);
    this.proc = spawn(process.execPath, [...nodeArgs, script], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.stdout = '';
    this.proc.stdout.on('data', (d) => {
      if (this.stdout.length < 4096) this.stdout += d.toString();
      log.write(d);
    });
    this.proc.stderr.on('data', (d) => log.write(d));
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => {
      live.delete(this);
      log.end();
      resolve({ code, signal });
    }));
    this.done = false;
    void this.exited.then(() => (this.done = true));
    live.add(this);
  }

  get pid() {
    return this.proc.pid;
  }

  /** Resolves with the first stdout match of `re`, or rejects when the child exits or time runs out. */
  async waitForStdout(re, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.done) {
      const m = re.exec(this.stdout);
      if (m) return m;
      await sleep(20);
    }
    throw new Error(`${this.name}: no ${re} on stdout (${this.done ? 'exited' : 'timed out'})\n${this.tail()}`);
  }

  async waitForHealthy(port, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.done) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(200);
    }
    throw new Error(`${this.name} on port ${port} did not become healthy (${this.done ? 'exited' : 'timed out'})\n${this.tail()}`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000) {
    if (this.done) return this.exited;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }

  tail(lines = 30) {
    try {
      return `--- ${this.logFile}\n` + readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

/** pid → name of every running child (for CPU accounting). */
export function childNames() {
  return Object.fromEntries([...live].map((c) => [c.pid, c.name]));
}

/** Kills every child still running (used on the way out). */
export async function killAll() {
  await Promise.all([...live].map((c) => {
    c.proc.kill('SIGKILL');
    return c.exited;
  }));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
