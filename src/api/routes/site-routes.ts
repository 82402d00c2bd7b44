// Site versions: read the current one and the history, validate, plan and submit site files, apply a
// stored version, and follow a version's plan action by action.

import type express from 'express';
import { convergedVersion, enqueueApply, previewPlan, storedPlan, submitSite } from '../../services/site-service.ts';
import { versionOutcome } from '../../services/inspect.ts';
import { importSite, NothingObservedError } from '../../services/site-import.ts';
import { fileQuery, input, submitQuery, versionPath, versionsQuery } from '../schemas.ts';
import {
  ApiError,
  authorizeChange,
  iso,
  issuesJson,
  planAnswer,
  submitAnswer,
  xmlBody,
  type RouteKit,
} from '../http.ts';

/** The current version, the history, and one version (its file as XML, or its record with plan and apply). */
function mountVersionReads(app: express.Express, kit: RouteKit): void {
  const { rt, viewer } = kit;
  app.get('/api/site', viewer, async (_req, res) => {
    const version = await rt.sites.currentVersion();
    const stored = version ? await rt.sites.get(version) : undefined;
    res.json({
      version,
      applied: await rt.sites.appliedVersion(),
      converged: await convergedVersion(rt),
      ...(stored ? { author: stored.author, reason: stored.reason, time: iso(stored.time), base: stored.base } : {}),
    });
  });

  app.get('/api/site/versions', viewer, async (req, res) => {
    const q = input(versionsQuery, req.query, 'query');
    const limit = q.limit ?? 50;
    const versions = await rt.sites.history(limit, q.cursor);
    const last = versions.at(-1)?.version;
    res.json({
      versions: versions.map((v) => ({ ...v, time: iso(v.time) })),
      // Cursor pagination: `?cursor=NEXT` gives the page of older versions.
      ...(versions.length === limit && last !== undefined && last > 1 ? { next: String(last) } : {}),
    });
  });

  app.get('/api/site/versions/:version', viewer, async (req, res) => {
    const v = input(versionPath, req.params, 'path').version;
    const stored = await rt.sites.get(v);
    if (!stored)
      throw new ApiError(
        404,
        'no-such-version',
        `site version ${v} does not exist`,
        'list versions with GET /api/site/versions',
      );
    if (req.accepts(['application/json', 'application/xml']) === 'application/xml')
      res.type('application/xml').send(stored.xml);
    else {
      const plan = await storedPlan(rt, v);
      const outcome = await versionOutcome(rt, v);
      res.json({
        ...stored,
        time: iso(stored.time),
        ...(plan ? { ...planAnswer(plan), base: stored.base } : {}),
        ...(outcome ? { apply: outcome } : {}),
      });
    }
  });
}

/** Where the run of a version's plan is, for automation to poll. */
function mountVersionProgress(app: express.Express, kit: RouteKit): void {
  const { rt, viewer } = kit;
  /**
   * Per action of a version's plan, where it is — planned, running, done, failed, blocked (and by what) — for
   * automation (an Ansible module, a Terraform provider) that polls one answer instead of the job list.
   */
  app.get('/api/site/versions/:version/status', viewer, async (req, res) => {
    const v = input(versionPath, req.params, 'path').version;
    const outcome = await versionOutcome(rt, v);
    if (!outcome) throw new ApiError(404, 'no-such-version', `site version ${v} does not exist or has no stored plan`);
    res.json({
      version: v,
      state: outcome.state,
      ...(outcome.summary ? { summary: outcome.summary } : {}),
      actions: outcome.actions.map((a) => ({
        id: a.id,
        kind: a.kind,
        vm: a.vm,
        host: a.host,
        status: a.outcome === 'pending' ? 'planned' : a.outcome,
        ...(a.blockedBy ? { blockedBy: a.blockedBy } : {}),
        ...(a.reason ? { reason: a.reason } : {}),
        job: { queue: a.queue, id: a.jobId },
      })),
    });
  });

  /** How the run of a version's plan went: state, and per action done / failed / blocked by. */
  app.get('/api/site/versions/:version/outcome', viewer, async (req, res) => {
    const v = input(versionPath, req.params, 'path').version;
    const outcome = await versionOutcome(rt, v);
    if (!outcome)
      throw new ApiError(
        404,
        'no-such-version',
        `site version ${v} does not exist or has no stored plan`,
        'list versions with GET /api/site/versions',
      );
    res.json(outcome);
  });
}

/** Validate, plan, submit (each parsed off the event loop) and apply. */
function mountSiteWrites(app: express.Express, kit: RouteKit): void {
  const { rt, log, viewer, operator, xml, pool, loadXml, loadedOrThrow } = kit;
  app.post('/api/site/validate', viewer, xml, async (req, res) => {
    const file = input(fileQuery, req.query, 'query').file ?? 'upload.xml';
    const r = await loadXml(req, file, (xml) => pool.validate(xml, file));
    res
      .status(r.ok ? 200 : 422)
      .json({ ok: r.ok, errors: issuesJson(r.ok ? [] : r.errors), warnings: issuesJson(r.warnings) });
  });

  /** The plan the body would get now, stored nowhere: what `xsm site plan FILE --out` saves. */
  app.post('/api/site/plan', viewer, xml, async (req, res) => {
    const file = input(fileQuery, req.query, 'query').file ?? 'upload.xml';
    const parsed = await loadedOrThrow(req, file);
    const r = await previewPlan(rt, xmlBody(req), file, undefined, parsed);
    res.json({ ...planAnswer(r.plan), warnings: issuesJson(r.warnings) });
  });

  /**
   * Submit a new version: ?base=N (required: the version the change was made on), reason, apply=0|1,
   * allowDisruption=1 (consent to actions that stop running VMs), repair=1 (store identical content again
   * so its plan repairs drift), planHash=H (a saved plan: store only if planning again gives H).
   */
  app.post('/api/site', operator, xml, async (req, res) => {
    if (req.query.base === undefined)
      throw new ApiError(
        400,
        'no-base',
        'give ?base=VERSION: the version your file was edited from (0 for the first)',
        'GET /api/site shows the current version',
      );
    const q = input(submitQuery, req.query, 'query');
    const base = q.base;
    const apply = q.apply ?? true;
    const expected = q.planHash;
    // Parsed off the event loop, then planned once, before storing: an impossible or unconsented change is
    // refused with nothing stored.
    const parsed = await loadedOrThrow(req, q.file ?? 'upload.xml');
    const r = await submitSite(rt, {
      xml: xmlBody(req),
      parsed,
      file: q.file ?? 'upload.xml',
      authorize: authorizeChange(req),
      base,
      author: req.principal!.name,
      reason: q.reason ?? 'upload',
      consent: q.allowDisruption ? 'operator' : 'none',
      apply,
      repair: q.repair ?? false,
      ...(expected !== undefined ? { expectedPlanHash: expected } : {}),
    });
    if (!r.unchanged)
      log.info('site version stored', {
        version: r.version,
        base,
        author: req.principal!.name,
        apply,
        actions: r.plan.actions.length,
        planHash: r.plan.planHash,
      });
    submitAnswer(res, r);
  });

  app.post('/api/site/versions/:version/apply', operator, async (req, res) => {
    const v = input(versionPath, req.params, 'path').version;
    if (!(await rt.sites.get(v))) throw new ApiError(404, 'no-such-version', `site version ${v} does not exist`);
    const current = await rt.sites.currentVersion();
    if (v !== current)
      throw new ApiError(
        409,
        'not-current',
        `version ${v} is not the current version (${current})`,
        `to go back to it, submit its content as a new version: GET /api/site/versions/${v} then POST /api/site?base=${current}`,
      );
    const job = await enqueueApply(rt, v, req.principal!.name);
    res.status(job.duplicate ? 200 : 202).json({ version: v, applyJob: job.jobId, duplicate: job.duplicate });
  });
}

/** The site file the agents' reports describe (stores nothing; an operator's read, not audited). */
function mountImport(app: express.Express, kit: RouteKit): void {
  app.get('/api/site/import', kit.operator, async (_req, res) => {
    try {
      res.json(await importSite(kit.rt));
    } catch (e) {
      if (e instanceof NothingObservedError)
        throw new ApiError(409, 'nothing-observed', e.message, 'start the host agents (workers/host-agent.ts) first');
      throw e;
    }
  });
}

export function mountSiteRoutes(app: express.Express, kit: RouteKit): void {
  mountImport(app, kit);
  mountVersionReads(app, kit);
  mountVersionProgress(app, kit);
  mountSiteWrites(app, kit);
}
