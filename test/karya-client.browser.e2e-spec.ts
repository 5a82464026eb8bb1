import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { Browser } from 'playwright-core';
import { DataSource } from 'typeorm';
import { launchChromium, watchedPage, WatchedPage } from './support/browser';
import { HttpSink } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { Exchange, RecordingProxy } from './support/karya-client-recorder';
import { PROJECT_ROOT } from './support/karya-process';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';

/*
 * The published JS client, karya-client@1.1.7 from npm, in a real browser on another origin, as karya-ui uses it:
 * the package bundled for the browser by Vite (it ships only ESM with a bare `axios` import), loaded by a page
 * served from 127.0.0.1 on one port, talking to Karya at http://localhost:<port> on another, so every call is
 * cross-origin (CORS, with preflights for the JSON writes) and goes to the client's `//v1/...` paths. The page
 * sends max_failure_retry quoted ("3", then "5"), as karya-ui's forms do: the server reads them as numbers.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CLIENT = join(PROJECT_ROOT, 'node_modules/karya-client');

/** The page's app: every step's result (or the error that stopped it) goes to window.karyaResults and the DOM. */
const APP_JS = `
import { KaryaRestClient } from ${JSON.stringify(join(CLIENT, 'client/karya-rest-client.js'))};
import { ClientConfig } from ${JSON.stringify(join(CLIENT, 'client/config.js'))};
import { CreateUserRequest, SubmitPlanRequest, UpdatePlanRequest } from ${JSON.stringify(join(CLIENT, 'client/requests.js'))};
import { RestApiRequest } from ${JSON.stringify(join(CLIENT, 'entities/actions.js'))};
import { OneTime } from ${JSON.stringify(join(CLIENT, 'entities/plan-types.js'))};

function show(step, value) {
  const el = document.createElement('pre');
  el.id = 'step-' + step;
  el.textContent = JSON.stringify(value);
  document.body.append(el);
}

async function run() {
  const params = new URLSearchParams(location.search);
  const client = new KaryaRestClient(new ClientConfig(new URL(params.get('api'))));
  const results = {};
  const step = async (name, call) => {
    const value = JSON.parse(JSON.stringify(await call()));
    results[name] = value;
    show(name, value);
    return value;
  };
  try {
    const user = await step('user', () => client.createUser(new CreateUserRequest(params.get('user'))));
    const action = new RestApiRequest('localhost:9/never-called');
    // karya-ui's form values are strings: the retry count goes through the client quoted.
    const plan = await step('submitted', () =>
      client.submitPlan(new SubmitPlanRequest(user.id, 'from the browser', 'PT1H', new OneTime(), action, [], '3')));
    await step('listed', () => client.listPlans(user.id, 0));
    await step('got', () => client.getPlan(plan.id));
    await step('updated', () => client.updatePlan(new UpdatePlanRequest(plan.id, undefined, '5', undefined)));
    await step('cancelled', () => client.cancelPlan(plan.id));
  } catch (e) {
    const r = e && e.response;
    results.error = String(e) + (r ? ' (' + r.status + ' ' + JSON.stringify(r.data) + ')' : '');
    show('error', results.error);
  }
  window.karyaResults = results;
  document.body.dataset.done = 'true';
}
run();
`;

const INDEX_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>karya-client from another origin</title></head>
<body><script type="module" src="./app.js"></script></body></html>
`;

/** Vite's build() in a child process: Vite 8 is ESM-only, and Jest's CommonJS transform must not touch it. */
const BUILD_JS = `
import { build } from 'vite';
const [root, outDir] = process.argv.slice(1);
await build({
  configFile: false,
  root,
  logLevel: 'warn',
  cacheDir: root + '/.vite-cache',
  build: { outDir, emptyOutDir: true, minify: false, sourcemap: false },
});
`;

function bundle(tmp: TempDir): Promise<string> {
  const src = join(tmp.path, 'page-src');
  const out = join(tmp.path, 'page-dist');
  mkdirSync(src);
  tmp.write('page-src/index.html', INDEX_HTML);
  tmp.write('page-src/app.js', APP_JS);
  return new Promise((resolve, reject) => {
    // Bare `vite` resolves from the cwd with --input-type=module -e: the project's own vite 8.
    execFile(process.execPath, ['--input-type=module', '-e', BUILD_JS, src, out], { cwd: PROJECT_ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`vite build failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(out);
    });
  });
}

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

/** A static file server on 127.0.0.1 for the built page: the page's origin, not the API's. */
async function serveStatic(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = normalize(join(dir, path === '/' ? 'index.html' : path));
    if (!file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

type Json = Record<string, unknown>;

describe('karya-client (npm) in Chromium, from another origin', () => {
  const stack = stacks()[0];
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication | undefined;
  let ds: DataSource;
  let proxy: RecordingProxy | undefined;
  let pageServer: Server | undefined;
  let browser: Browser | undefined;
  let watched: WatchedPage;
  let pageOrigin: string;
  let apiOrigin: string;

  beforeAll(async () => {
    const [dist] = await Promise.all([
      bundle(tmp),
      (async () => {
        await sink.start();
        ({ app, ds } = await startInProcessKarya(stack, tmp, { executorYml: 'application:\n  concurrency: 2\n', userName: 'browser-suite' }));
        await app.listen(0, '127.0.0.1');
      })(),
    ]);
    const apiPort = (app!.getHttpServer().address() as AddressInfo).port;
    // Records the browser's requests (preflights included) on their way to the app.
    proxy = await new RecordingProxy(apiPort).start();
    pageServer = await serveStatic(dist);
    pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
    // As an app configures the client: a base URL with no path, which the client turns into `//v1/...` paths.
    apiOrigin = `http://localhost:${proxy.port}`;
    browser = await launchChromium();
    watched = await watchedPage(browser);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    if (pageServer) {
      pageServer.closeAllConnections();
      await new Promise<void>((resolve) => pageServer!.close(() => resolve()));
    }
    await proxy?.stop();
    await stopInProcessKarya(app, sink, stack, tmp);
  });

  it('creates a user, submits with a quoted retry count, lists, gets, updates (quoted) and cancels, all cross-origin', async () => {
    const { page, problems } = watched;
    const userName = `browser-${Date.now()}`;
    await page.goto(`${pageOrigin}/?api=${encodeURIComponent(apiOrigin)}&user=${encodeURIComponent(userName)}`);
    // Strings, not functions: they run in the page, and the test code has no DOM types.
    await page.waitForFunction('document.body.dataset.done === "true"', undefined, { timeout: 20_000 });
    const results = (await page.evaluate('window.karyaResults')) as Record<string, Json>;

    expect(results.error).toBeUndefined();
    expect(problems).toEqual([]);

    const user = results.user;
    expect(user.id).toMatch(UUID);
    expect(user.name).toBe(userName);

    const submitted = results.submitted;
    expect(submitted.id).toMatch(UUID);
    expect(submitted).toMatchObject({ user_id: user.id, description: 'from the browser', period_time: 'PT1H', status: 'CREATED', max_failure_retry: 3 });
    const planId = submitted.id as string;

    const listed = results.listed as { plans: Json[]; total: number; offset: number };
    expect(listed.total).toBe(1);
    expect(listed.offset).toBe(0);
    expect(listed.plans.map((p) => [p.id, p.max_failure_retry])).toEqual([[planId, 3]]);

    const got = results.got as { plan: Json; latest_task: Json };
    expect(got.plan).toMatchObject({ id: planId, status: 'CREATED', max_failure_retry: 3 });
    expect(got.latest_task).toMatchObject({ plan_id: planId, status: 'CREATED' });

    expect(results.updated).toMatchObject({ id: planId, status: 'CREATED', max_failure_retry: 5 });
    expect(results.cancelled).toMatchObject({ id: planId, status: 'CANCELLED', max_failure_retry: 5 });

    // Stored as numbers, whatever the page sent.
    const [row] = await ds.query('SELECT status, max_failure_retry FROM plans WHERE id = $1', [planId]);
    expect(row).toEqual({ status: 'CANCELLED', max_failure_retry: 5 });

    // On the wire: every call to a `//v1` path, from the page's origin, the JSON writes preflighted and allowed.
    const seen: Exchange[] = proxy!.take();
    const calls = seen.filter((e) => e.method !== 'OPTIONS');
    expect(calls.map((e) => `${e.method} ${e.url.replace(planId, '{id}').replace(user.id as string, '{user}')}`)).toEqual([
      'POST //v1/user',
      'POST //v1/plan',
      'GET //v1/plan?user_id={user}&page=0',
      'GET //v1/plan/{id}',
      'PATCH //v1/plan',
      'POST //v1/plan/{id}',
    ]);
    for (const e of seen) {
      expect(e.requestHeaders.origin).toBe(pageOrigin);
      expect(e.status).toBe(200);
      expect(e.responseHeaders['access-control-allow-origin']).toBe(pageOrigin);
    }
    // JSON bodies make POST and PATCH non-simple: Chromium asked first (it may reuse a preflight for a few seconds).
    const preflights = seen.filter((e) => e.method === 'OPTIONS');
    const firstAt = (method: string, url: string) => seen.findIndex((e) => e.method === method && e.url === url);
    for (const url of ['//v1/user', '//v1/plan']) {
      expect(firstAt('OPTIONS', url)).toBeGreaterThanOrEqual(0);
      expect(firstAt('OPTIONS', url)).toBeLessThan(firstAt('POST', url));
    }
    for (const pre of preflights) {
      expect(String(pre.requestHeaders['access-control-request-headers'])).toMatch(/content-type/i);
      expect(String(pre.responseHeaders['access-control-allow-methods'])).toContain(String(pre.requestHeaders['access-control-request-method']));
      expect(String(pre.responseHeaders['access-control-allow-methods'])).toContain('PATCH');
    }
    // The quoted retry counts really went out as strings.
    expect(JSON.parse(calls[1].requestBody).max_failure_retry).toBe('3');
    expect(JSON.parse(calls[4].requestBody).max_failure_retry).toBe('5');
  });
});
