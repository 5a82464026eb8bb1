import type { NextFunction, Request, Response } from 'express';

/**
 * The published JS client always requests `//v1/...`; the original server (Ktor) tolerated it.
 * Collapse repeated slashes in the path (never in the query string) before routing.
 */
export function collapseSlashes(req: Request, _res: Response, next: NextFunction): void {
  const q = req.url.indexOf('?');
  const path = q === -1 ? req.url : req.url.slice(0, q);
  if (path.includes('//')) req.url = path.replace(/\/{2,}/g, '/') + (q === -1 ? '' : req.url.slice(q));
  next();
}
