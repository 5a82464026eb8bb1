import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Public } from '../auth/auth-policy';
import { CONTENT_SECURITY_POLICY, DASHBOARD_DIR, IMMUTABLE, NOT_BUILT, REVALIDATE } from './dashboard-files';

/**
 * The built-in dashboard (issue 14) at /ui: the static files Vite built. Public in every auth mode: the
 * files hold no data, and the page asks for an API key before it calls /v1. The app routes by the URL's
 * hash (#/plans/ID), so the server only needs to answer index.html for /ui, /ui/ and any other path that
 * is not a file (a bookmarked or mistyped path still opens the app); a missing hashed asset is a 404, as
 * index.html in its place would only fail as a script.
 */
@ApiExcludeController()
@Public()
@Controller('ui')
export class DashboardController {
  private readonly root: string;

  constructor(@Inject(DASHBOARD_DIR) dir: string) {
    this.root = resolve(dir);
  }

  @Get()
  async index(@Res() res: Response): Promise<void> {
    await this.sendIndex(res);
  }

  @Get('*path')
  async file(@Req() req: Request, @Res() res: Response): Promise<void> {
    const relative = this.relativePath(req.path);
    if (relative === null) return this.plain(res, 404, 'Not found');
    if (relative === '' || relative === 'index.html') return this.sendIndex(res);
    const file = join(this.root, relative);
    if (await isFile(file)) return this.send(res, file, relative.startsWith('assets/') ? IMMUTABLE : REVALIDATE);
    if (relative.startsWith('assets/')) return this.plain(res, 404, `Not found: /ui/${relative}`);
    return this.sendIndex(res);
  }

  /** The path below /ui/, decoded; null for anything that could leave the directory or is not a plain name. */
  private relativePath(path: string): string | null {
    const rest = path.replace(/^\/ui\/?/, '');
    let decoded: string;
    try {
      decoded = decodeURIComponent(rest);
    } catch {
      return null;
    }
    if (decoded.includes('\0') || decoded.includes('\\')) return null;
    const parts = decoded.split('/');
    if (parts.some((p) => p === '..' || p.startsWith('.'))) return null;
    const full = resolve(this.root, decoded);
    if (full !== this.root && !full.startsWith(this.root + sep)) return null;
    return decoded;
  }

  private async sendIndex(res: Response): Promise<void> {
    const index = join(this.root, 'index.html');
    if (!(await isFile(index))) return this.plain(res, 404, NOT_BUILT);
    return this.send(res, index, REVALIDATE);
  }

  private send(res: Response, file: string, cacheControl: string): Promise<void> {
    this.secure(res);
    res.setHeader('Cache-Control', cacheControl);
    return new Promise((done) => {
      res.sendFile(file, { cacheControl: false, dotfiles: 'deny', lastModified: true }, (err) => {
        // A file removed between the check and the read, or a client gone mid-transfer.
        if (err && !res.headersSent) this.plain(res, 404, 'Not found');
        done();
      });
    });
  }

  private plain(res: Response, status: number, text: string): void {
    this.secure(res);
    res.setHeader('Cache-Control', 'no-store');
    res.status(status).type('text/plain; charset=utf-8').send(text);
  }

  private secure(res: Response): void {
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
  }
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
