import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { DashboardController } from './dashboard.controller';
import { CONTENT_SECURITY_POLICY, DASHBOARD_DIR, NOT_BUILT } from './dashboard-files';

/*
 * Serving the dashboard's files from a directory shaped like Vite's output (index.html, assets/<hashed>),
 * and from one where nothing was built. Public access in apikey mode is covered by
 * test/dashboard.browser.e2e-spec.ts, on the whole app.
 */

const INDEX = '<!doctype html><title>Karya dashboard</title><script type="module" src="/ui/assets/index-Ab12.js"></script>';

async function appServing(dir: string): Promise<INestApplication> {
  const module = await Test.createTestingModule({ controllers: [DashboardController], providers: [{ provide: DASHBOARD_DIR, useValue: dir }] }).compile();
  const app = module.createNestApplication({ logger: false });
  await app.init();
  return app;
}

describe('DashboardController', () => {
  const built = mkdtempSync(join(tmpdir(), 'karya-ui-'));
  const empty = mkdtempSync(join(tmpdir(), 'karya-ui-empty-'));
  let app: INestApplication;
  let bare: INestApplication;

  beforeAll(async () => {
    mkdirSync(join(built, 'assets'));
    writeFileSync(join(built, 'index.html'), INDEX);
    writeFileSync(join(built, 'assets', 'index-Ab12.js'), 'console.log("hi")');
    writeFileSync(join(built, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(built, '.secret'), 'never served');
    app = await appServing(built);
    bare = await appServing(empty);
  });

  afterAll(async () => {
    await app?.close();
    await bare?.close();
    rmSync(built, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });

  it.each(['/ui', '/ui/', '/ui/index.html', '/ui/plans/1234', '/ui/some/deep/route'])('%s answers index.html, revalidated, with the CSP', async (path) => {
    const res = await request(app.getHttpServer()).get(path).expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toBe(INDEX);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
    expect(res.headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  it('serves hashed assets as immutable, with their type', async () => {
    const res = await request(app.getHttpServer()).get('/ui/assets/index-Ab12.js').expect(200);
    expect(res.headers['content-type']).toMatch(/javascript/);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.text).toBe('console.log("hi")');
  });

  it('serves other files revalidated', async () => {
    const res = await request(app.getHttpServer()).get('/ui/favicon.svg').expect(200);
    expect(res.headers['content-type']).toMatch(/^image\/svg\+xml/);
    expect(res.headers['cache-control']).toBe('no-cache');
  });

  it('answers 404 for a missing asset rather than index.html', async () => {
    const res = await request(app.getHttpServer()).get('/ui/assets/index-gone.js').expect(404);
    expect(res.text).toBe('Not found: /ui/assets/index-gone.js');
  });

  it.each(['/ui/.secret', '/ui/%2e%2e/package.json', '/ui/assets/..%2f..%2fpackage.json', '/ui/%00'])('refuses %s', async (path) => {
    const res = await request(app.getHttpServer()).get(path).expect(404);
    expect(res.text).not.toContain('never served');
  });

  it('answers bad percent-encoding with a 400 from the router, not a file', async () => {
    await request(app.getHttpServer()).get('/ui/%E0%A4%A').expect(400);
  });

  it.each(['/ui', '/ui/', '/ui/plans/x', '/ui/assets/index-Ab12.js'])('%s says how to build when nothing was built', async (path) => {
    const res = await request(bare.getHttpServer()).get(path).expect(404);
    if (!path.startsWith('/ui/assets/')) expect(res.text).toBe(NOT_BUILT);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });
});
