import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where `npm run build` puts the dashboard (ui/vite.config.mts: dist/ui). */
export const DASHBOARD_DIR = 'karya.dashboardDir';

/**
 * dist/ui next to the compiled server (dist/dashboard → dist/ui), or, when the server runs from source
 * (the test suites: src/dashboard), the project's dist/ui.
 */
export function defaultDashboardDir(): string {
  const besideCompiled = join(__dirname, '..', 'ui');
  const fromSource = join(__dirname, '..', '..', 'dist', 'ui');
  return existsSync(join(besideCompiled, 'index.html')) || !existsSync(fromSource) ? besideCompiled : fromSource;
}

/**
 * The dashboard's headers. The bundle needs nothing inline and nothing from another origin: scripts,
 * styles, images and API calls all come from this server. uPlot and Preact set styles through the CSSOM
 * (element.style), which style-src does not govern.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Vite names every built asset by its content hash: a changed file gets a new name, so it may be kept forever. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** index.html names the current assets: revalidated on every load, so a new build shows at once. */
export const REVALIDATE = 'no-cache';

export const NOT_BUILT = 'dashboard not built: run npm run build';
