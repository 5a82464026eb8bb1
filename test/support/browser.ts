import { Browser, BrowserContext, chromium, Page } from 'playwright-core';

/**
 * Headless Debian Chromium driven by playwright-core, for the browser suites. `.ci/run` installs the
 * `chromium` package when it is missing. The flags keep Chromium off the network beyond what a page asks
 * for (this machine refuses every other connection, and tests may only talk to loopback).
 */
export const CHROMIUM_PATH = process.env.KARYA_TEST_CHROMIUM ?? '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: FLAGS });
}

/**
 * A page that records every console error, uncaught page error and failed request (network failure or an
 * HTTP status ≥ 400 that the test did not expect), so a suite can fail on any of them.
 */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** One line per problem seen since the page opened (or since the last `problems.length = 0`). */
  problems: string[];
  /** Statuses ≥ 400 on URLs matching this are expected (e.g. a test provoking a 400) and not recorded. */
  expectStatus(match: (url: string, status: number) => boolean): void;
}

export async function watchedPage(browser: Browser, options: { viewport?: { width: number; height: number } } = {}): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 860 } });
  const page = await context.newPage();
  const problems: string[] = [];
  const expected: ((url: string, status: number) => boolean)[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    // Chromium logs every HTTP error response as a console error as well; those are judged by status below.
    if (/^Failed to load resource: the server responded with a status of \d+/.test(text)) return;
    problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.method()} ${req.url()} (${req.failure()?.errorText ?? '?'})`));
  page.on('response', (res) => {
    const status = res.status();
    if (status >= 400 && !expected.some((m) => m(res.url(), status))) problems.push(`HTTP ${status}: ${res.request().method()} ${res.url()}`);
  });
  return { page, context, problems, expectStatus: (m) => expected.push(m) };
}
