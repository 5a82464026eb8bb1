import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { Browser, Page, Request } from 'playwright-core';
import request from 'supertest';
import { launchChromium, watchedPage, WatchedPage } from './support/browser';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { PROJECT_ROOT } from './support/karya-process';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';

/*
 * The built-in dashboard (issue 14) in headless Chromium against an in-process Karya in apikey mode on real
 * PostgreSQL, Redis and RabbitMQ, with REST plans aimed at a local sink: sign in with a key, a form error from
 * the API shown at its field, a recurring plan created through the form and its successful tasks in the
 * timeline, pause (no calls while paused), resume, cancel, a failing plan's error text and dead letter,
 * replay from the dead-letters page, and the overview charts drawn with data. Any console error, page error,
 * failed request or unexpected HTTP status fails the suite. Needs `npm run build` (dist/ui) first.
 * Screenshots go to test-artifacts/ui/, and to docs/screenshots/ with KARYA_UPDATE_SCREENSHOTS=1.
 */

const DIST_UI = join(PROJECT_ROOT, 'dist/ui/index.html');
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts/ui');
const DOCS = join(PROJECT_ROOT, 'docs/screenshots');
const ADMIN_KEY = `admin-${randomUUID()}`;
const EGRESS = '  egress:\n    allowPrivateNetworks: true\n';
const SERVER_YML = `application:\n  auth:\n    mode: apikey\n${EGRESS}`;
const EXECUTOR_YML = `application:\n${EGRESS}`;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const REST = 'karya.core.entities.Action.RestApiRequest';
const CHAINED = 'karya.core.entities.Action.ChainedRequest';
const RECURRING = 'karya.core.entities.PlanType.Recurring';
const ONE_TIME = 'karya.core.entities.PlanType.OneTime';

describe('dashboard in Chromium (apikey mode, real PostgreSQL, Redis and RabbitMQ)', () => {
  const stack = stacks()[1];
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let base: string;
  let userName: string;
  let userId: string;
  let key: string;
  let browser: Browser;
  let wp: WatchedPage;
  let page: Page;
  let recurringId: string;
  let failingId: string;

  beforeAll(async () => {
    if (!existsSync(DIST_UI)) throw new Error(`${DIST_UI} is missing: run \`npm run build\` (it builds the dashboard into dist/ui) before this suite`);
    await sink.start();
    userName = `dash-${randomUUID().slice(0, 8)}`;
    ({ app, http, userId } = await startInProcessKarya(stack, tmp, { executorYml: EXECUTOR_YML, serverYml: SERVER_YML, userName, adminKey: ADMIN_KEY }));
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
    key = (await request(http).post(`/v1/user/${userId}/keys`).set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200)).body.key;
    browser = await launchChromium();
    wp = await watchedPage(browser, { viewport: { width: 1360, height: 900 } });
    page = wp.page;
    // Expected by design: the page asks /v1/whoami without a key to learn that it needs one.
    wp.expectStatus((url, status) => status === 401 && url === `${base}/v1/whoami`);
    mkdirSync(ARTIFACTS, { recursive: true });
  }, 60_000);

  afterAll(async () => {
    await wp?.context.close();
    await browser?.close();
    await stopInProcessKarya(app, sink, stack, tmp);
  });

  afterEach(() => {
    const problems = wp ? wp.problems.splice(0) : [];
    expect(problems).toEqual([]);
  });

  const callsTo = (planId: string) => sink.hits.filter((h) => h.planId === planId).length;

  /** Saved as a test artefact; the five documented pages also to docs/screenshots when asked. */
  async function screenshot(name: string, docs = true): Promise<void> {
    // A full-page shot of a scrolled page would draw the sticky top bar mid-page.
    await page.evaluate('window.scrollTo(0, 0)');
    const png = await page.screenshot({ fullPage: true, animations: 'disabled' });
    writeFileSync(join(ARTIFACTS, `${name}.png`), png);
    if (docs && process.env.KARYA_UPDATE_SCREENSHOTS === '1') {
      mkdirSync(DOCS, { recursive: true });
      writeFileSync(join(DOCS, `${name}.png`), png);
    }
  }

  /** Resolves after the plan page has loaded its summary `n` more times (it refreshes every 2 s). */
  async function refreshes(planId: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) await page.waitForResponse((r) => r.url() === `${base}/v1/plan/${planId}/summary` && r.status() === 200, { timeout: 10_000 });
  }

  async function stateBadge(): Promise<string | null> {
    return page.getByTestId('plan-state').getAttribute('data-status');
  }

  it('serves /ui without a key, with its CSP and caching, while /v1 needs one', async () => {
    const index = await request(http).get('/ui/').expect(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['content-security-policy']).toMatch(/^default-src 'self'; script-src 'self'; style-src 'self'/);
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect(index.headers['cache-control']).toBe('no-cache');
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(index.text)?.[1];
    expect(script).toBeDefined();
    const asset = await request(http).get(script!).expect(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(asset.headers['content-type']).toMatch(/javascript/);
    await request(http).get('/ui/plans/anything').expect(200);
    await request(http).get('/v1/whoami').expect(401);
    await request(http).get('/v1/stats').expect(401);
  });

  it('asks for an API key and signs in with it', async () => {
    await page.goto(`${base}/ui/`);
    await page.getByTestId('key-form').waitFor();
    await page.fill('input[name="apiKey"]', key);
    await page.click('button[type="submit"]');
    await page.getByTestId('signed-in-as').filter({ hasText: userName }).waitFor();
    await page.locator('#chart-throughput').waitFor();
  });

  it('shows an API validation error next to its field, then creates a recurring plan whose successful tasks fill the timeline', async () => {
    await page.goto(`${base}/ui/#/new`);
    await page.fill('input[name="description"]', 'Ping the sink every second');
    await page.selectOption('select[name="plan_type"]', 'recurring');
    await page.fill('input[name="period_time"]', 'PT1S');
    await page.selectOption('select[name="method"]', 'POST');
    // A scheme in base_url: the API answers 400 naming action.base_url.
    await page.fill('input[name="base_url"]', `http://${sink.baseUrl}/ok`);
    await page.fill('textarea[name="body"]', '{"hello":"dashboard"}');
    await page.fill('input[name="max_failure_retry"]', '0');
    wp.expectStatus((url, status) => status === 400 && url === `${base}/v1/plan`);
    await page.getByTestId('create').click();
    const fieldError = page.locator('[data-field-error="action.base_url"]');
    await fieldError.waitFor();
    expect(await fieldError.textContent()).toMatch(/^action\.base_url: /);
    expect(await page.getByTestId('form-error').count()).toBe(0);
    await screenshot('create-plan');

    await page.fill('input[name="base_url"]', `${sink.baseUrl}/ok`);
    await page.getByTestId('create').click();
    await page.waitForURL(new RegExp(`#/plans/${UUID}$`));
    recurringId = new URL(page.url()).hash.slice('#/plans/'.length);
    await page.getByTestId('plan-detail').waitFor();
    await page.locator('[data-testid="timeline"] tr[data-status="SUCCESS"]').nth(2).waitFor({ timeout: 15_000 });
    expect(callsTo(recurringId)).toBeGreaterThanOrEqual(3);
    expect(sink.hits.find((h) => h.planId === recurringId)?.body).toBe('{"hello":"dashboard"}');
    expect(await page.getByTestId('schedule').textContent()).toContain('PT1S');
    expect(await page.getByTestId('fires').locator('li').count()).toBe(5);
    expect(await stateBadge()).toMatch(/^(CREATED|RUNNING)$/);
    await screenshot('plan-detail');
  });

  it('pauses the plan: no calls while paused; resume brings them back', async () => {
    await page.getByTestId('pause').click();
    await waitFor(async () => (await stateBadge()) === 'PAUSED', 5000, 'the PAUSED badge');
    // A call already under way when the pause landed may still arrive: count from the next refresh on.
    await refreshes(recurringId, 1);
    const paused = callsTo(recurringId);
    await refreshes(recurringId, 2);
    expect(callsTo(recurringId)).toBe(paused);
    expect(await stateBadge()).toBe('PAUSED');
    expect(await page.getByTestId('fires').textContent()).not.toContain('none');

    await page.getByTestId('resume').click();
    await waitFor(async () => (await stateBadge()) !== 'PAUSED', 5000, 'the badge to leave PAUSED');
    await waitFor(() => callsTo(recurringId) > paused, 10_000, 'calls after resume');
    await page.getByTestId('run-now').click();
    await page.getByTestId('notice').filter({ hasText: 'Started a run now.' }).waitFor();
  });

  it('edits the period and retries, showing the API\'s refusal of a bad value', async () => {
    await page.getByTestId('edit').click();
    await page.fill('[data-testid="edit-form"] input[name="period_time"]', 'PT5X');
    await page.click('[data-testid="edit-form"] button[type="submit"]');
    await page.getByTestId('edit-error').filter({ hasText: /^period_time: / }).waitFor();
    await page.fill('[data-testid="edit-form"] input[name="period_time"]', 'PT2S');
    await page.fill('[data-testid="edit-form"] input[name="max_failure_retry"]', '2');
    await page.click('[data-testid="edit-form"] button[type="submit"]');
    await page.getByTestId('notice').filter({ hasText: 'Saved.' }).waitFor();
    await page.getByTestId('schedule').filter({ hasText: 'PT2S' }).filter({ hasText: '2 after a failed attempt' }).waitFor();
  });

  it('cancels the plan', async () => {
    await page.getByTestId('cancel').click();
    await page.getByTestId('cancel-confirm').click();
    await waitFor(async () => (await stateBadge()) === 'CANCELLED', 5000, 'the CANCELLED badge');
    await page.getByTestId('fires').filter({ hasText: 'none' }).waitFor();
    expect(await page.getByTestId('pause').isDisabled()).toBe(true);
  });

  it("shows a failing plan's error text and calls its failure hook, and replays its dead letter", async () => {
    const failures = () => sink.hitsFor('/fail').length;
    await page.goto(`${base}/ui/#/new`);
    await page.fill('input[name="description"]', 'Fails once');
    await page.selectOption('select[name="plan_type"]', 'oneTime');
    await page.fill('input[name="period_time"]', 'PT0.5S');
    await page.fill('input[name="base_url"]', `${sink.baseUrl}/fail`);
    await page.fill('input[name="max_failure_retry"]', '0');
    await page.getByTestId('add-hook').click();
    await page.selectOption('select[name="hooks[0].trigger"]', 'ON_FAILURE');
    await page.fill('input[name="hooks[0].base_url"]', `${sink.baseUrl}/on-failure-hook`);
    await page.fill('input[name="hooks[0].max_retry"]', '0');
    await page.getByTestId('create').click();
    await page.waitForURL(new RegExp(`#/plans/${UUID}$`));
    failingId = new URL(page.url()).hash.slice('#/plans/'.length);
    const failed = page.locator('[data-testid="timeline"] tr[data-status="FAILURE"]');
    await failed.first().waitFor({ timeout: 15_000 });
    await failed.first().getByTestId('task-error').filter({ hasText: /500/ }).waitFor();
    expect(failures()).toBe(1);
    expect(await page.getByTestId('action').textContent()).toContain('/fail');
    await page.getByTestId('hook').filter({ hasText: `ON_FAILURE` }).filter({ hasText: `${sink.baseUrl}/on-failure-hook` }).waitFor();
    await waitFor(() => sink.hitsFor('/on-failure-hook').length === 1, 10_000, 'the ON_FAILURE hook call');
    await screenshot('plan-detail-failed', false);

    await page.goto(`${base}/ui/#/dead-letters`);
    const row = page.locator(`[data-testid="dead-letters-table"] tr[data-plan-id="${failingId}"]`);
    // The executor drains the broker's dead-letter queue into the table; the page refreshes every 5 s.
    await row.waitFor({ timeout: 20_000 });
    expect(await row.textContent()).toMatch(/500/);
    await screenshot('dead-letters');
    await row.getByTestId('replay').click();
    await page.getByTestId('notice').filter({ hasText: 'Replayed' }).waitFor();
    // The replayed attempt reaches the sink (and fails again, as /fail always does).
    await waitFor(() => failures() === 2, 15_000, 'the replayed call at the sink');
  });

  it('lists the plans, filters them by status and opens one by id', async () => {
    await page.goto(`${base}/ui/#/plans`);
    const rows = page.locator('[data-testid="plans-table"] tbody tr[data-plan-id]');
    await rows.nth(1).waitFor();
    expect(await rows.count()).toBe(2);
    await screenshot('plans');
    await page.selectOption('select[name="status"]', 'CANCELLED');
    await waitFor(async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-plan-id')) === recurringId, 5000, 'only the cancelled plan');
    await page.fill('input[name="search"]', failingId);
    await page.press('input[name="search"]', 'Enter');
    await page.waitForURL(new RegExp(`#/plans/${failingId}$`));
    await page.getByTestId('plan-detail').waitFor();
  });

  it('draws the overview charts with the finished tasks', async () => {
    await page.goto(`${base}/ui/#/`);
    const points = async (id: string) => Number(await page.locator(`#${id}`).getAttribute('data-points'));
    // Stats reach the server about 2 s after a task ends; the overview refreshes every 5 s.
    await waitFor(async () => (await points('chart-throughput')) > 0 && (await points('chart-lateness')) > 0, 15_000, 'charts with data');
    expect(await points('chart-success')).toBeGreaterThan(0);
    expect(Number(await page.getByTestId('total-succeeded').textContent())).toBeGreaterThanOrEqual(3);
    expect(Number(await page.getByTestId('total-failed').textContent())).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#chart-throughput canvas').count()).toBe(1);
    await screenshot('overview');
  });

  it('lets the admin key choose whose plans to look at', async () => {
    const admin = await watchedPage(browser);
    admin.expectStatus((url, status) => status === 401 && url === `${base}/v1/whoami`);
    admin.expectStatus((url, status) => status === 404 && url.startsWith(`${base}/v1/user?username=`));
    try {
      await admin.page.goto(`${base}/ui/#/plans`);
      await admin.page.fill('input[name="apiKey"]', ADMIN_KEY);
      await admin.page.click('button[type="submit"]');
      await admin.page.getByTestId('username-form').waitFor();
      await admin.page.fill('input[name="username"]', 'nobody-by-this-name');
      await admin.page.click('button[type="submit"]');
      // The admin is asked before a user is created: a typo must not create users.
      await admin.page.getByText('Create user “nobody-by-this-name”').waitFor();
      await admin.page.fill('input[name="username"]', userName);
      await admin.page.click('button[type="submit"]');
      await admin.page.getByTestId('signed-in-as').filter({ hasText: userName }).filter({ hasText: 'admin' }).waitFor();
      await admin.page.locator('[data-testid="plans-table"] tbody tr[data-plan-id]').nth(1).waitFor();
      expect(admin.problems).toEqual([]);
    } finally {
      await admin.context.close();
    }
  });

  it("edits hooks without moving a masked credential to another hook's URL, and leaves them alone when only the period changes", async () => {
    const secrets = ['hook-a-secret-4Rt7', 'hook-b-secret-9Kd2', 'hook-b-query-secret-3Mw8', 'child-body-secret-6Zp1', 'child-query-secret-2Qe5'];
    const restHook = (path: string, token: string) => ({
      trigger: 'ON_FAILURE',
      action: { type: REST, protocol: 'HTTP', method: 'POST', base_url: `${sink.baseUrl}${path}`, headers: { Authorization: `Bearer ${token}` } },
      max_retry: 0,
    });
    const submit = async (body: Record<string, unknown>): Promise<string> =>
      (await request(http).post('/v1/plan').set('Authorization', `Bearer ${key}`).send({ user_id: userId, max_failure_retry: 0, ...body }).expect(200)).body.id;
    const planId = await submit({
      description: 'Two hooks with their own credentials',
      period_time: 'PT1H',
      plan_type: { type: RECURRING },
      action: { type: REST, protocol: 'HTTP', method: 'POST', base_url: `${sink.baseUrl}/ok` },
      hooks: [restHook('/hook-a', secrets[0]), restHook(`/hook-b?token=${secrets[2]}`, secrets[1])],
    });
    interface StoredPlan {
      period_time: string;
      hook: Array<{ action: { base_url: string; headers: Record<string, string> } }>;
    }
    const stored = async (): Promise<StoredPlan> => (await request(http).get(`/v1/plan/${planId}`).set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200)).body.plan;
    const before = await stored();
    expect(before.hook.map((h) => h.action.headers.Authorization)).toEqual([`Bearer ${secrets[0]}`, `Bearer ${secrets[1]}`]);

    const patches: Array<Record<string, unknown>> = [];
    const onRequest = (r: Request) => {
      if (r.method() === 'PATCH' && r.url() === `${base}/v1/plan`) patches.push(JSON.parse(r.postData() ?? '{}'));
    };
    const editForm = page.getByTestId('edit-form');
    const hooksInput = editForm.locator('textarea[name="hooks"]');
    const save = async () => {
      const saved = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url() === `${base}/v1/plan` && r.status() === 200, { timeout: 10_000 });
      await editForm.locator('button[type="submit"]').click();
      await saved;
      await editForm.waitFor({ state: 'detached' });
    };
    page.on('request', onRequest);
    try {
      await page.goto(`${base}/ui/#/plans/${planId}`);
      await page.getByTestId('hook').nth(1).filter({ hasText: `${sink.baseUrl}/hook-b?token=•••` }).waitFor();
      await page.getByTestId('edit').click();
      const shown = await hooksInput.inputValue();
      expect(shown).toContain('/hook-b?token=•••');
      for (const secret of secrets) {
        expect(shown).not.toContain(secret);
        expect(await page.locator('body').innerText()).not.toContain(secret);
      }

      // Only the period changes: the PATCH carries no hooks, and the stored hooks stay as they were.
      await editForm.locator('input[name="period_time"]').fill('PT2H');
      await save();
      expect(patches).toHaveLength(1);
      expect(patches[0]).not.toHaveProperty('hooks');
      expect(patches[0].period_time).toBe('PT2H');
      const periodOnly = await stored();
      expect(periodOnly.period_time).toBe('PT2H');
      expect(periodOnly.hook).toEqual(before.hook);

      // A masked header whose hook now points elsewhere is refused at the hooks field, and nothing is sent.
      await page.getByTestId('edit').click();
      const hooks = JSON.parse(await hooksInput.inputValue()) as Array<{ action: Record<string, unknown> }>;
      const moved = [hooks[0], { ...hooks[1], action: { ...hooks[1].action, base_url: `${sink.baseUrl}/elsewhere` } }];
      await hooksInput.fill(JSON.stringify(moved, null, 2));
      await editForm.locator('button[type="submit"]').click();
      await page.getByTestId('hooks-error').filter({ hasText: 're-enter the value of header Authorization of hook 2: its target changed' }).waitFor();
      expect(patches).toHaveLength(1);

      // Deleting the first hook: the remaining one keeps its own Authorization and its own token in the URL.
      await hooksInput.fill(JSON.stringify([hooks[1]], null, 2));
      await save();
      expect(patches).toHaveLength(2);
      const after = await stored();
      expect(after.hook).toEqual([before.hook[1]]);
      expect(after.hook[0].action.headers.Authorization).toBe(`Bearer ${secrets[1]}`);
      expect(after.hook[0].action.base_url).toBe(`${sink.baseUrl}/hook-b?token=${secrets[2]}`);
    } finally {
      page.off('request', onRequest);
    }

    // A Chained plan shows its child's body by size and its URL masked.
    const chainedId = await submit({
      description: 'Chained with secrets',
      period_time: 'PT1H',
      plan_type: { type: ONE_TIME },
      action: {
        type: CHAINED,
        request: {
          user_id: userId,
          description: 'child',
          period_time: 'PT10S',
          plan_type: { type: ONE_TIME },
          action: { type: REST, method: 'POST', base_url: `${sink.baseUrl}/child?token=${secrets[4]}`, body: { type: 'karya.core.entities.http.Body.JsonBody', json_string: `{"secret":"${secrets[3]}"}` } },
        },
      },
    });
    await page.goto(`${base}/ui/#/plans/${chainedId}`);
    const action = page.getByTestId('action');
    await action.filter({ hasText: `${sink.baseUrl}/child?token=•••` }).waitFor();
    expect(await action.textContent()).toContain(`(${`{"secret":"${secrets[3]}"}`.length} characters)`);
    for (const secret of secrets) expect(await page.locator('body').innerText()).not.toContain(secret);
  });
});

describe('dashboard in Chromium (auth mode none, embedded stack)', () => {
  const stack = stacks()[0];
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let base: string;
  let userId: string;
  let browser: Browser;
  let wp: WatchedPage;

  beforeAll(async () => {
    if (!existsSync(DIST_UI)) throw new Error(`${DIST_UI} is missing: run \`npm run build\` (it builds the dashboard into dist/ui) before this suite`);
    await sink.start();
    let http: ReturnType<INestApplication['getHttpServer']>;
    ({ app, http, userId } = await startInProcessKarya(stack, tmp, { executorYml: EXECUTOR_YML, userName: 'open-existing' }));
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
    browser = await launchChromium();
    wp = await watchedPage(browser);
  }, 60_000);

  afterAll(async () => {
    await wp?.context.close();
    await browser?.close();
    await stopInProcessKarya(app, sink, stack, tmp);
  });

  it('signs in by username as karya-ui does: an existing user is found, a new one is created', async () => {
    const { page } = wp;
    await page.goto(`${base}/ui/`);
    await page.fill('input[name="username"]', 'open-existing');
    await page.click('button[type="submit"]');
    const who = page.getByTestId('signed-in-as');
    await who.filter({ hasText: 'open-existing' }).waitFor();
    expect(await who.getAttribute('title')).toBe(userId);

    await page.getByTestId('sign-out').click();
    await page.getByTestId('username-form').waitFor();
    wp.expectStatus((url, status) => status === 404 && url === `${base}/v1/user?username=open-newcomer`);
    await page.fill('input[name="username"]', 'open-newcomer');
    await page.click('button[type="submit"]');
    await who.filter({ hasText: 'open-newcomer' }).waitFor();
    const created = await who.getAttribute('title');
    expect(created).toMatch(new RegExp(`^${UUID}$`));
    expect(created).not.toBe(userId);
    await page.goto(`${base}/ui/#/plans`);
    await page.getByTestId('plans-table').getByText('No plans yet.').waitFor();
    expect(wp.problems).toEqual([]);
  });
});
