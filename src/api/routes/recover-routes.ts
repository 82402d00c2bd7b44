// POST /api/admin/recover (src/services/recovery.ts): rebuilds the site store from the host agents' copies
// after Redis was lost. Admins only; audited like every mutation (kind `recover`), dry runs included.

import type express from 'express';
import { recoverSite } from '../../services/recovery.ts';
import { isEmptyBody, type RouteKit } from '../http.ts';
import { input, recoverBody } from '../schemas.ts';

export function mountRecoverRoutes(app: express.Express, kit: RouteKit): void {
  const { rt, guard, json } = kit;
  app.post('/api/admin/recover', guard('admin'), json, async (req, res) => {
    const b = input(recoverBody, isEmptyBody(req.body) ? undefined : req.body, 'body') ?? {};
    const report = await recoverSite(rt, {
      author: req.principal!.name,
      dryRun: b.dryRun ?? false,
      waitMs: b.waitMs ?? 15_000,
      overOlder: b.overOlder ?? false,
      allowMissing: b.allowMissing ?? false,
    });
    res.status(report.dryRun ? 200 : 201).json(report);
  });
}
