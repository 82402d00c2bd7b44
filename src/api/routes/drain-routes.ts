// Drain and return of one host (src/services/drain-service.ts): POST /api/hosts/:name/drain and /undrain,
// each a new site version, with the same dry run and consent as every edit. An operator may put a host in
// maintenance (the one host-level change this route makes); the VMs it moves must be in Sets it owns.

import type express from 'express';
import type { Request, Response } from 'express';
import { drainHost, undrainHost, type HostChangeOutcome } from '../../services/drain-service.ts';
import type { Site } from '../../site/model.ts';
import { checkOwnership } from '../ownership.ts';
import { checkPowerChanges } from '../power-guard.ts';
import { drainBody, input, namePath, undrainBody } from '../schemas.ts';
import { isEmptyBody, planAnswer, submitAnswer, type RouteKit } from '../http.ts';

/** Power as every change; ownership over everything but the host's maintenance flag, which is the route's. */
function authorizeHostChange(req: Request, host: string): (current: Site | undefined, next: Site) => void {
  return (current, next) => {
    checkPowerChanges(req.principal!, current, next);
    const before = current?.hosts.find((h) => h.name === host)?.maintenance ?? false;
    const same = { ...next, hosts: next.hosts.map((h) => (h.name === host ? { ...h, maintenance: before } : h)) };
    req.auditSets = checkOwnership(req.principal!, current, same);
  };
}

function answer(res: Response, o: HostChangeOutcome): void {
  const head = { host: o.host, reason: o.reason, moves: o.moves, blockers: o.blockers, cold: o.cold };
  if (o.preview) {
    res.status(200).json({
      dryRun: true,
      ...head,
      ...planAnswer(o.preview),
      base: o.base,
      disruptive: (o.disruptive ?? []).map((a) => ({ id: a.id, kind: a.kind, vm: a.vm, disruption: a.disruption })),
    });
    return;
  }
  const r = o.result!;
  if (r.unchanged) return submitAnswer(res, r);
  res.status(202).json({
    version: r.version,
    ...head,
    ...planAnswer(r.plan),
    base: o.base,
    ...(r.applyJob ? { applyJob: r.applyJob } : {}),
  });
}

export function mountDrainRoutes(app: express.Express, kit: RouteKit): void {
  const { rt, operator, json } = kit;
  app.post('/api/hosts/:name/drain', operator, json, async (req, res) => {
    const host = input(namePath, req.params, 'path').name;
    const b = input(drainBody, isEmptyBody(req.body) ? undefined : req.body, 'body') ?? {};
    const o = await drainHost(rt, {
      host,
      author: req.principal!.name,
      consent: b.allowDisruption === true ? 'operator' : 'none',
      ...(b.dryRun !== undefined ? { dryRun: b.dryRun } : {}),
      ...(b.reason !== undefined ? { reason: b.reason } : {}),
      authorize: authorizeHostChange(req, host),
    });
    answer(res, o);
  });
  app.post('/api/hosts/:name/undrain', operator, json, async (req, res) => {
    const host = input(namePath, req.params, 'path').name;
    const b = input(undrainBody, isEmptyBody(req.body) ? undefined : req.body, 'body') ?? {};
    const o = await undrainHost(rt, {
      host,
      author: req.principal!.name,
      consent: b.allowDisruption === true ? 'operator' : 'none',
      ...(b.dryRun !== undefined ? { dryRun: b.dryRun } : {}),
      ...(b.reason !== undefined ? { reason: b.reason } : {}),
      ...(b.return !== undefined ? { returnVms: b.return } : {}),
      authorize: authorizeHostChange(req, host),
    });
    answer(res, o);
  });
}
