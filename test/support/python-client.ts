import { spawn } from 'node:child_process';
import { join } from 'node:path';

/**
 * Runs the published Python client's own response classes (vendored unchanged in
 * test/fixtures/python-client, see PROVENANCE.md) over JSON bodies, the way KaryaRestClient builds them:
 * `Cls(**response.json())`. A verdict of ok: false (e.g. "TypeError: ... unexpected keyword argument")
 * is what a client user would get as a crash.
 */

/** "ListPlansResponse" is this server's DTO name; the client spells the class ListPlanResponse. Both work. */
export type PythonClientKind =
  | 'Plan'
  | 'Task'
  | 'User'
  | 'GetPlanResponse'
  | 'GetSummaryResponse'
  | 'ListPlansResponse'
  | 'ListPlanResponse';

export interface PythonClientItem {
  kind: PythonClientKind;
  json: unknown;
}

export interface PythonClientResult {
  ok: boolean;
  /** str(obj) of the constructed object when ok */
  repr?: string;
  /** "ExceptionType: message" when not ok */
  error?: string;
}

const SCRIPT = join(__dirname, '..', 'fixtures', 'python-client', 'construct.py');
/** A cold python3 start plus a few dataclass constructions takes well under a second; 20 s means stuck. */
const DEADLINE_MS = 20_000;

export async function constructWithPythonClient(items: PythonClientItem[]): Promise<PythonClientResult[]> {
  return new Promise<PythonClientResult[]>((resolve, reject) => {
    // -B as well as the script's own dont_write_bytecode: no __pycache__ appears in the vendored tree.
    const child = spawn('python3', ['-B', SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONIOENCODING: 'utf-8' },
    });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      settle(() =>
        reject(new Error(`python3 ${SCRIPT} did not finish within ${DEADLINE_MS / 1000} s and was killed; stderr: ${stderr.trim()}`)),
      );
    }, DEADLINE_MS);

    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // ENOENT here means python3 is not installed (CI needs the Debian package python3).
    child.on('error', (err) => settle(() => reject(new Error(`cannot run python3 ${SCRIPT}: ${err.message}`))));
    // 'close' (not 'exit') so that stdout has been read to the end.
    child.on('close', (code, signal) =>
      settle(() => {
        if (code !== 0) {
          reject(new Error(`python3 ${SCRIPT} exited with ${code ?? signal}: ${stderr.trim()}`));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(stdout);
        } catch {
          reject(new Error(`python3 ${SCRIPT} printed no JSON: ${stdout.trim()} ${stderr.trim()}`));
          return;
        }
        if (!Array.isArray(parsed) || parsed.length !== items.length) {
          reject(new Error(`python3 ${SCRIPT} answered ${stdout.trim()} for ${items.length} items`));
          return;
        }
        resolve(parsed as PythonClientResult[]);
      }),
    );
    // EPIPE if python3 dies before reading stdin; the 'close' handler reports that exit.
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(items));
  });
}
