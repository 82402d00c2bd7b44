// Rolling Dom0 upgrades (src/services/upgrade-service.ts): POST /api/hosts/upgrade checks and plans one
// (dryRun: the plan only) and enqueues it; GET /api/hosts/upgrade/:id says where it is. Admin only: it
// reinstalls every host named.

import type express from 'express';
import { getUpgrade, startUpgrade } from '../../services/upgrade-service.ts';
import { input, upgradeBody, upgradePath } from '../schemas.ts';
import { ApiError, type RouteKit } from '../http.ts';

/** `imagesDir`: the catalogue the plan pins the image's version from (none for the simulator's updater). */
export function mountUpgradeRoutes(
  app: express.Express,
  kit: RouteKit,
  updaterMethod: string,
  imagesDir: string | undefined,
): void {
  const { rt, viewer, guard, json } = kit;
  app.post('/api/hosts/upgrade', guard('admin'), json, async (req, res) => {
    const b = input(upgradeBody, req.body, 'body');
    const r = await startUpgrade(rt, updaterMethod, {
      image: b.image,
      ...(b.hosts ? { hosts: b.hosts } : {}),
      author: req.principal!.name,
      consent: b.allowDisruption === true ? 'operator' : 'none',
      ...(b.dryRun !== undefined ? { dryRun: b.dryRun } : {}),
      ...(imagesDir !== undefined ? { imagesDir } : {}),
    });
    if (r.id === undefined) res.status(200).json({ dryRun: true, plan: r.plan });
    else res.status(202).json({ id: r.id, plan: r.plan });
  });
  app.get('/api/hosts/upgrade/:id', viewer, async (req, res) => {
    const { id } = input(upgradePath, req.params, 'path');
    const v = await getUpgrade(rt, id);
    if (!v)
      throw new ApiError(404, 'no-such-upgrade', `no rolling upgrade ${id}`, 'xsm jobs --queue control lists them');
    res.json(v);
  });
}
