// Hosts and VMs: what the site file declares beside what the agents observe, and single VM operations
// (migrate, reconfigure, remove), each made a new site version through the site service.

import type express from 'express';
import type { Request, Response } from 'express';
import { currentSite, editSite, previewEdit } from '../../services/site-service.ts';
import { listVms, vmListPage, type VmListing } from '../../services/vm-list.ts';
import { acceptsGzip, JsonSnapshot, notModified, TickBatchedRead } from '../json-snapshot.ts';
import { VmListThread } from '../vm-list-thread.ts';
import type { SiteEdit } from '../../site/edit.ts';
import { input, migrateBody, reconfigureBody, removeBody, vmPath, vmsQuery } from '../schemas.ts';
import { authorizeChange, isEmptyBody, planAnswer, submitAnswer, type RouteKit } from '../http.ts';

/** How old a VM list a poller may get: one rebuild per interval, whatever the number of readers. */
export const VM_LIST_MAX_AGE_MS = 1000;
/** A page of GET /api/vms when `after` comes without `limit`. */
export const VM_PAGE_DEFAULT = 1000;

/** Each host the site file declares or an agent reports: its spec, its last report and its health. */
function mountHostList(app: express.Express, kit: RouteKit): void {
  const { rt, viewer } = kit;
  app.get('/api/hosts', viewer, async (_req, res) => {
    const { site } = await currentSite(rt);
    const observed = await rt.observed.all();
    const health = await rt.failover.allHealth();
    const names = new Set([...(site?.hosts.map((h) => h.name) ?? []), ...Object.keys(observed.hosts)]);
    const now = Date.now();
    res.json({
      hosts: [...names].sort().map((name) => {
        const spec = site?.hosts.find((h) => h.name === name);
        const o = observed.hosts[name];
        return {
          name,
          inSite: Boolean(spec),
          ...(spec
            ? { address: spec.address, cpus: spec.cpus, memoryMiB: spec.memoryMiB, maintenance: spec.maintenance }
            : {}),
          ...(o
            ? {
                heartbeatAgeMs: now - o.heartbeatAt,
                totalMemMiB: o.totalMemMiB,
                freeMemMiB: o.freeMemMiB,
                nrCpus: o.nrCpus,
                domains: o.domains.length,
              }
            : { heartbeatAgeMs: null }),
          // healthy, or where failover has it: suspect, fencing, fenced, fence-failed (with what to do).
          health: health[name]?.state ?? 'healthy',
          ...(health[name]?.detail ? { healthDetail: health[name]!.detail } : {}),
        };
      }),
    });
  });
}

/**
 * Each VM the site file declares, where it runs and whether as declared; and VMs running that it does not
 * declare. Pollers get it from a snapshot at most VM_LIST_MAX_AGE_MS old (a new or converged version is never
 * answered from an older one), with an ETag: a client sending it back in If-None-Match gets 304 and no body.
 * Gzipped when the request accepts it (each encoding its own ETag), plain JSON otherwise. `?limit=N&after=NAME`
 * pages it in name order (`next`: the following page's `after`), cut from the same snapshot.
 */
function mountVmList(app: express.Express, kit: RouteKit): void {
  const { rt, viewer } = kit;
  let snapshot: JsonSnapshot<VmListing>;
  if (kit.vmListThread) {
    const thread = new VmListThread(rt.config);
    thread.start();
    kit.onClose(() => thread.close());
    snapshot = new JsonSnapshot<VmListing>({ encoded: () => thread.build() }, VM_LIST_MAX_AGE_MS);
  } else snapshot = new JsonSnapshot(() => listVms(rt), VM_LIST_MAX_AGE_MS);
  // Every poll reads the stored and converged versions (they keep a snapshot from being stale): together,
  // and once for all the polls of one event-loop turn.
  const versions = new TickBatchedRead(async () => {
    const [stored, converged] = await Promise.all([rt.sites.currentVersion(), rt.applies.convergedVersion()]);
    return `${stored}:${converged}`;
  });
  app.get('/api/vms', viewer, async (req, res) => {
    const { limit, after } = input(vmsQuery, req.query, 'query');
    const snap = await snapshot.get(await versions.get());
    if (limit !== undefined || after !== undefined) {
      return res.set('Cache-Control', 'no-cache').json(vmListPage(snap.value, limit ?? VM_PAGE_DEFAULT, after));
    }
    const gzipped = acceptsGzip(req.headers['accept-encoding']);
    const { body, etag } = gzipped ? snap.gzip : snap;
    res.set('ETag', etag).set('Cache-Control', 'no-cache').set('Vary', 'Accept-Encoding');
    if (notModified(req.headers['if-none-match'], etag)) return res.status(304).end();
    if (gzipped) res.set('Content-Encoding', 'gzip');
    res.type('application/json').send(body);
  });
}

/** Migrate, reconfigure and remove one VM: each a new site version. */
function mountVmOperations(app: express.Express, kit: RouteKit): void {
  const { rt, operator, json } = kit;
  /** A single VM operation: its input checked first, then made an edit of the current version. */
  const edit =
    (
      build: (req: Request) => SiteEdit & {
        reason?: string | undefined;
        allowDisruption?: boolean | undefined;
        dryRun?: boolean | undefined;
      },
    ) =>
    async (req: Request, res: Response) => {
      const { dryRun, ...e } = build(req);
      if (dryRun) {
        const p = await previewEdit(rt, e, authorizeChange(req));
        return res.status(200).json({
          dryRun: true,
          reason: p.reason,
          ...planAnswer(p.preview.plan),
          base: p.base,
          disruptive: p.disruptive.map((a) => ({ id: a.id, kind: a.kind, vm: a.vm, disruption: a.disruption })),
        });
      }
      const r = await editSite(rt, {
        edit: e,
        author: req.principal!.name,
        authorize: authorizeChange(req),
        ...(e.reason !== undefined ? { reason: e.reason } : {}),
        consent: e.allowDisruption === true ? 'operator' : 'none',
      });
      if (r.result.unchanged) return submitAnswer(res, r.result);
      res.status(202).json({
        version: r.result.version,
        reason: r.reason,
        ...planAnswer(r.result.plan),
        base: r.base,
        ...(r.result.applyJob ? { applyJob: r.result.applyJob } : {}),
      });
    };
  app.post(
    '/api/vms/:name/migrate',
    operator,
    json,
    edit((req) => {
      const { to, ...rest } = input(migrateBody, req.body ?? {}, 'body');
      return { kind: 'migrate', vm: input(vmPath, req.params, 'path').name, to, ...rest };
    }),
  );
  app.post(
    '/api/vms/:name/reconfigure',
    operator,
    json,
    edit((req) => {
      const { memMiB, vcpus, ...rest } = input(reconfigureBody, req.body ?? {}, 'body');
      return {
        kind: 'reconfigure',
        vm: input(vmPath, req.params, 'path').name,
        ...(memMiB !== undefined ? { memMiB } : {}),
        ...(vcpus !== undefined ? { vcpus } : {}),
        ...rest,
      };
    }),
  );
  app.delete(
    '/api/vms/:name',
    operator,
    json,
    edit((req) => ({
      kind: 'remove',
      vm: input(vmPath, req.params, 'path').name,
      ...input(removeBody, isEmptyBody(req.body) ? undefined : req.body, 'body'),
    })),
  );
}

export function mountInventoryRoutes(app: express.Express, kit: RouteKit): void {
  mountHostList(app, kit);
  mountVmList(app, kit);
  mountVmOperations(app, kit);
}
