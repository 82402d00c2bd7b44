// The HTTP API: upload, validate, plan and apply site files; read versions, hosts, VMs and jobs; enqueue
// single VM operations; retry jobs. Everything it knows is in Redis, so any host can serve it and several
// may at once. The queue dashboard (bull-board) is mounted at /admin/queues behind the same tokens.

import { openApiDocument, openApiHtml } from './openapi.ts';
import { packageVersion } from '../lib/package-version.ts';
import { escapeHtml, methodNotAllowed, mountBrowserAuth, page, securityHeaders, wantsHtml } from './browser.ts';
import { httpSpans } from '../lib/tracing.ts';
import { mountMonitoringRoutes } from './monitoring.ts';
import { mountDeployRoutes } from './deploy-routes.ts';
import express, { type NextFunction, type Request, type Response } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { enqueueApply, convergedVersion, storedPlan } from '../services/site-service.ts';
import {
  getJob,
  JOB_STATES,
  listJobs,
  retryJob,
  RetryError,
  versionOutcome,
  type JobState,
  type JobView,
} from '../services/inspect.ts';
import {
  ConsentRequiredError,
  previewPlan,
  StalePlanError,
  submitSite,
  type SubmitResult,
} from '../services/site-service.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { Logger } from '../lib/log.ts';
import { applyEdit, EditError, type SiteEdit } from '../site/edit.ts';
import { PlanError } from '../site/plan.ts';
import { serializeSite } from '../site/serialize.ts';
import { formatIssue, type Site, type SiteIssue } from '../site/model.ts';
import type { Plan, StoredPlan } from '../site/actions.ts';
import { InvalidSiteError, StaleVersionError, type PlanRecord } from '../state/site-store.ts';
import { roleAllows, type Principal, type Role, type TokenTable } from './auth.ts';
import { checkPowerChanges, PowerChangeForbidden } from './power-guard.ts';
import { checkOwnership, OwnershipForbidden } from './ownership.ts';
import { SiteLoadPool, siteInputLimitsFromEnv, type SiteInputLimits } from '../site/site-load-pool.ts';
import type { LoadResult } from '../site/model.ts';
import {
  fileQuery,
  input,
  InputError,
  jobPath,
  jobsQuery,
  migrateBody,
  reconfigureBody,
  removeBody,
  submitQuery,
  versionPath,
  versionsQuery,
  vmPath,
} from './schemas.ts';
import { auditRequests, mountAuditRoutes } from './audit.ts';

/** An error the API answers with as JSON: {error: {code, message, hint?, details?}}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface ApiOptions {
  rt: XsmRuntime;
  tokens: TokenTable;
  log: Logger;
  /** Where the deploy worker's images (and their manifests) are: default XSM_IMAGES_DIR or /var/lib/xsm/images. */
  imagesDir?: string;
  /** Size cap, parser threads and per-identity parse limit of site-file uploads; default from the environment. */
  siteInput?: SiteInputLimits;
  /** Failed browser logins one address may make per 5 minutes (default 5). */
  loginLimit?: number;
  /** Extra routes added by other parts of XSM. */
  extend?: (app: express.Express, guard: (role: Role) => express.RequestHandler) => void;
}

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
    /** Sets the request's change touched: what the audit entry records. */
    auditSets?: string[];
  }
}

/**
 * What a person may change, checked before anything is stored: power only as admin, Sets only as their
 * owner, nothing outside Sets unless admin. Records the Sets touched for the audit log.
 */
function authorizeChange(req: Request): (current: Site | undefined, next: Site) => void {
  return (current, next) => {
    checkPowerChanges(req.principal!, current, next);
    req.auditSets = checkOwnership(req.principal!, current, next);
  };
}

function bearerToken(req: Request): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

function xmlBody(req: Request): string {
  if (typeof req.body !== 'string' || req.body.length === 0) {
    throw new ApiError(
      400,
      'no-site-file',
      'send the site file as the request body with Content-Type: application/xml',
    );
  }
  return req.body;
}

function issuesJson(issues: SiteIssue[]) {
  return issues.map((i) => ({ ...i, text: formatIssue(i) }));
}

function planJson(plan: Plan) {
  return {
    waves: plan.waves,
    notes: plan.notes,
    actions: plan.actions.map(({ ...a }) => {
      const { pos: _p, ...rest } = a as typeof a & { pos?: unknown };
      return rest;
    }),
  };
}

/** A stored (or previewed) plan as the API answers it: the plan, and what names and dates it. */
function planAnswer(plan: StoredPlan | PlanRecord) {
  return {
    plan: planJson(plan),
    planHash: plan.planHash,
    base: plan.base,
    observedAt: iso(plan.observedAt),
    xmlHash: plan.xmlHash,
  };
}

/** Times in answers are ISO-8601 (UTC); the stores keep epoch milliseconds. */
function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function jobTimes(j: JobView) {
  return {
    ...j,
    createdAt: iso(j.createdAt),
    ...(j.startedAt !== undefined ? { startedAt: iso(j.startedAt) } : {}),
    ...(j.finishedAt !== undefined ? { finishedAt: iso(j.finishedAt) } : {}),
  };
}

/** express.json leaves `{}` (or nothing) when a DELETE carries no body. */
function isEmptyBody(body: unknown): boolean {
  return body === undefined || (typeof body === 'object' && body !== null && Object.keys(body).length === 0);
}

/** A submit's answer: 201 with the stored plan, or 200 "no changes" (nothing stored). */
function submitAnswer(res: Response, r: SubmitResult): void {
  if (r.unchanged) {
    res.status(200).json({
      unchanged: true,
      version: r.version,
      message: r.message,
      ...(r.drift ? { drift: { message: r.drift.message, plan: planJson(r.drift.plan) } } : {}),
    });
    return;
  }
  res.status(201).json({
    version: r.version,
    warnings: issuesJson(r.warnings),
    ...planAnswer(r.plan),
    ...(r.applyJob ? { applyJob: r.applyJob } : {}),
  });
}

export function createApiApp(opts: ApiOptions): express.Express {
  const { rt, tokens, log } = opts;
  const app = express();
  app.disable('x-powered-by');
  // First of all: the request's span, active while its route runs (src/lib/tracing.ts).
  app.use(httpSpans());
  app.set('query parser', 'simple');

  // Every mutating request is recorded once it is answered, refused ones included (logins too).
  app.use(auditRequests(rt, log));
  // Browsers: security headers on every answer, and a session cookie (set by /admin/login) instead of a token.
  app.use(securityHeaders());
  const browser = mountBrowserAuth(app, { rt, tokens, ...(opts.loginLimit ? { loginLimit: opts.loginLimit } : {}) });
  const guard =
    (role: Role): express.RequestHandler =>
    async (req, _res, next) => {
      const token = bearerToken(req);
      const p = token !== undefined ? tokens.lookup(token) : await browser.sessionPrincipal(req);
      if (!p && token === undefined)
        return next(
          new ApiError(
            401,
            'unauthenticated',
            'no bearer token (or no live session)',
            'send Authorization: Bearer TOKEN (tokens are configured with XSM_TOKENS or XSM_TOKENS_FILE on the API host); browsers log in at /admin/login',
          ),
        );
      if (!p)
        return next(
          new ApiError(401, 'unauthenticated', 'unknown token', "check XSM_TOKEN against the API host's XSM_TOKENS"),
        );
      if (!roleAllows(p.role, role))
        return next(
          new ApiError(403, 'forbidden', `this needs the ${role} role; your token (${p.name}) has ${p.role}`),
        );
      req.principal = p;
      next();
    };
  const viewer = guard('viewer');
  const operator = guard('operator');
  mountAuditRoutes(app, rt, viewer, (message) => new ApiError(400, 'bad-parameter', message));
  // Site files: capped, parsed in worker threads, and at most `perToken` at once per identity (429 beyond):
  // one caller cannot queue enough uploads to starve everyone else's.
  const siteInput = opts.siteInput ?? siteInputLimitsFromEnv();
  const pool = new SiteLoadPool(siteInput.threads);
  app.locals.close = () => pool.close();
  const xml = express.text({ type: ['application/xml', 'text/xml', 'text/plain'], limit: siteInput.maxBytes });
  const parsing = new Map<string, number>();
  const loadXml = async <T>(req: Request, file: string, parse: (xml: string) => Promise<T>): Promise<T> => {
    const who = req.principal!.name;
    const running = parsing.get(who) ?? 0;
    if (running >= siteInput.perToken)
      throw new ApiError(
        429,
        'too-many-parses',
        `${running} site files of ${who} are being parsed already; at most ${siteInput.perToken} at once`,
        'wait for them to finish and send it again (Retry-After says when to try)',
      );
    parsing.set(who, running + 1);
    try {
      return await parse(xmlBody(req));
    } finally {
      const left = (parsing.get(who) ?? 1) - 1;
      if (left) parsing.set(who, left);
      else parsing.delete(who);
    }
  };
  const loadedOrThrow = async (req: Request, file: string) => {
    const r: LoadResult = await loadXml(req, file, (xml) => pool.load(xml, file));
    if (!r.ok) throw new InvalidSiteError(r.errors);
    return r;
  };
  const json = express.json({ limit: '1mb' });

  // The contract, generated from the route schemas (src/api/openapi.ts); public like /api/health.
  const openapi = openApiDocument(packageVersion());
  app.get('/api/openapi.json', (_req, res) => {
    res.json(openapi);
  });
  // The same document as a page, rendered here: no script, no asset from anywhere else.
  const docsPage = openApiHtml(openapi);
  app.get('/api/docs', (_req, res) => {
    res.type('html').send(docsPage);
  });

  app.get('/api/health', async (_req, res) => {
    await rt.ping();
    res.json({ ok: true });
  });

  // --- site versions ---------------------------------------------------------------------------------
  const currentSite = async (): Promise<{ version: number; site?: Site }> => {
    const version = await rt.sites.currentVersion();
    return version ? { version, site: (await rt.sites.load(version)).site } : { version };
  };

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

  // --- hosts and VMs -----------------------------------------------------------------------------------
  app.get('/api/hosts', viewer, async (_req, res) => {
    const { site } = await currentSite();
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

  app.get('/api/vms', viewer, async (_req, res) => {
    const { site } = await currentSite();
    const observed = await rt.observed.all();
    const seen = new Map<string, { host: string; state: string; memMiB: number; vcpus: number }[]>();
    for (const h of Object.values(observed.hosts)) {
      for (const d of h.domains)
        seen.set(d.name, [
          ...(seen.get(d.name) ?? []),
          { host: h.name, state: d.state, memMiB: d.memMiB, vcpus: d.vcpus },
        ]);
    }
    const vms = (site?.vms ?? []).map((v) => {
      const at = seen.get(v.name) ?? [];
      seen.delete(v.name);
      const here = at.find((a) => a.host === v.host);
      return {
        name: v.name,
        set: v.set,
        desired: { host: v.host, memMiB: v.memMiB, vcpus: v.vcpus, config: v.config },
        observed: at,
        inSync: Boolean(here && at.length === 1 && here.memMiB === v.memMiB && here.vcpus === v.vcpus),
      };
    });
    res.json({ vms, unmanaged: [...seen].map(([name, at]) => ({ name, observed: at })) });
  });

  /** A single VM operation: its input checked first, then made an edit of the current version. */
  const edit =
    (build: (req: Request) => SiteEdit & { reason?: string | undefined; allowDisruption?: boolean | undefined }) =>
    async (req: Request, res: Response) => {
      const e = build(req);
      const { version, site } = await currentSite();
      if (!site)
        throw new ApiError(409, 'no-site', 'no site file has been submitted yet', 'POST /api/site?base=0 first');
      const { site: next, reason } = applyEdit(site, e);
      const r = await submitSite(rt, {
        xml: serializeSite(next),
        file: `edit of v${version}`,
        authorize: authorizeChange(req),
        base: version,
        author: req.principal!.name,
        reason: e.reason ?? reason,
        consent: e.allowDisruption === true ? 'operator' : 'none',
        apply: true,
      });
      if (r.unchanged) return submitAnswer(res, r);
      res.status(202).json({
        version: r.version,
        reason,
        ...planAnswer(r.plan),
        base: version,
        ...(r.applyJob ? { applyJob: r.applyJob } : {}),
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

  // --- jobs --------------------------------------------------------------------------------------------
  app.get('/api/jobs', viewer, async (req, res) => {
    const q = input(jobsQuery, req.query, 'query');
    const states = q.state ? q.state.split(',') : undefined;
    for (const s of states ?? [])
      if (!(JOB_STATES as readonly string[]).includes(s))
        throw new ApiError(400, 'bad-parameter', `unknown job state "${s}"; use ${JOB_STATES.join(', ')}`);
    const queue = q.queue;
    const jobs = await listJobs(rt, {
      ...(states ? { states: states as JobState[] } : {}),
      limit: q.limit ?? 200,
      ...(queue ? { queue } : {}),
    });
    res.json({ jobs: jobs.map(jobTimes) });
  });
  app.get('/api/jobs/:queue/:id', viewer, async (req, res) => {
    const { queue, id } = input(jobPath, req.params, 'path');
    const j = await getJob(rt, queue, id);
    if (!j) throw new ApiError(404, 'no-such-job', `no job ${id} in queue ${queue}`);
    res.json(jobTimes(j));
  });
  app.post('/api/jobs/:queue/:id/retry', operator, async (req, res) => {
    const { queue, id } = input(jobPath, req.params, 'path');
    res.status(202).json(await retryJob(rt, queue, id));
  });

  // --- dashboard ---------------------------------------------------------------------------------------
  const board = new ExpressAdapter();
  board.setBasePath('/admin/queues');
  const { replaceQueues } = createBullBoard({
    queues: [],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'XSM jobs' } },
  });
  let boardRefreshed = 0;
  const refreshBoard: express.RequestHandler = async (_req, _res, next) => {
    // Hosts join and leave: refresh the dashboard's queue list at most every few seconds.
    if (Date.now() - boardRefreshed > 5000) {
      boardRefreshed = Date.now();
      replaceQueues((await rt.allQueues()).map((q) => new BullMQAdapter(q)));
    }
    next();
  };
  app.use('/admin/queues', guard('admin'), refreshBoard, board.getRouter());

  const fail = (status: number, code: string, message: string, hint?: string) =>
    new ApiError(status, code, message, hint);
  mountMonitoringRoutes(app, rt, guard, fail);
  mountDeployRoutes(app, rt, guard, fail, opts.imagesDir ?? process.env.XSM_IMAGES_DIR ?? '/var/lib/xsm/images');
  opts.extend?.(app, guard);

  app.use(methodNotAllowed(app));
  app.use((_req, _res, next) =>
    next(new ApiError(404, 'not-found', 'no such endpoint', 'see docs/api.md for the endpoints')),
  );
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toApiError(err);
    if (e.status >= 500)
      log.error('API error', {
        method: req.method,
        path: req.path,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
    if (e.status === 429) res.setHeader('Retry-After', '5');
    // A person in a browser reads a page, with the way back to the login; scripts get the JSON.
    if (wantsHtml(req)) {
      res
        .status(e.status)
        .type('html')
        .send(
          page(
            `${e.status}`,
            `<h1>${e.status === 401 ? 'Please log in' : e.status === 403 ? 'Not allowed' : 'Something went wrong'}</h1><p class="err">${escapeHtml(e.message)}</p>${e.hint ? `<p>${escapeHtml(e.hint)}</p>` : ''}<p><a href="/admin/login">Log in</a> · <a href="/admin/site">Site console</a></p>`,
          ),
        );
      return;
    }
    res.status(e.status).json({
      error: {
        code: e.code,
        message: e.message,
        ...(e.hint ? { hint: e.hint } : {}),
        ...(e.details !== undefined ? { details: e.details } : {}),
      },
    });
  });
  return app;
}

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InputError)
    return new ApiError(400, 'bad-parameter', err.message, 'see docs/api.md for what this route takes', {
      issues: err.issues,
    });
  if (err instanceof InvalidSiteError)
    return new ApiError(
      422,
      'invalid-site',
      err.message,
      'fix the errors listed in details (file:line:col) and submit again',
      issuesJson(err.issues),
    );
  if (err instanceof PowerChangeForbidden)
    return new ApiError(403, 'forbidden', err.message, 'ask an admin to make this change', { changes: err.changes });
  if (err instanceof OwnershipForbidden)
    return new ApiError(
      403,
      'forbidden',
      err.message,
      "ask the Set's owner or an admin to make this change (a Set is yours when its <Owner> is your token's name or one of its groups)",
      { changes: err.changes },
    );
  if (err instanceof StaleVersionError)
    return new ApiError(409, 'stale-version', err.message, undefined, { base: err.base, current: err.current });
  if (err instanceof PlanError)
    return new ApiError(
      422,
      'impossible-plan',
      err.message,
      'nothing was stored; change the placement or capacity in the site file',
    );
  if (err instanceof EditError)
    return new ApiError(err.status, err.status === 404 ? 'not-found' : 'bad-edit', err.message);
  if (err instanceof RetryError) return new ApiError(err.status, err.code, err.message, err.hint);
  if (err instanceof ConsentRequiredError)
    return new ApiError(
      409,
      'consent-required',
      err.message,
      'to allow it, repeat with ?allowDisruption=1 (site file) or "allowDisruption": true (JSON edits); `xsm` asks, or takes --yes',
      {
        actions: err.actions.map((a) => ({ id: a.id, kind: a.kind, vm: a.vm, disruption: a.disruption })),
      },
    );
  if (err instanceof StalePlanError)
    return new ApiError(
      409,
      'stale-plan',
      err.message,
      're-plan with `xsm site plan FILE --out plan.json`, review it, and apply that',
      {
        ...err.details,
        ...(err.details.plan ? { plan: planJson(err.details.plan) } : {}),
      },
    );
  const status =
    (err as { status?: number; statusCode?: number })?.status ?? (err as { statusCode?: number })?.statusCode;
  const type = (err as { type?: string }).type;
  if (type === 'entity.parse.failed')
    return new ApiError(400, 'bad-json', `the body is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  if (type === 'entity.too.large')
    return new ApiError(
      413,
      'too-large',
      `the body is larger than this route takes (${String((err as { limit?: number }).limit ?? '?')} bytes)`,
    );
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Other body parser errors: an unsupported charset or encoding.
    return new ApiError(
      status,
      (err as { type?: string }).type ?? 'bad-request',
      err instanceof Error ? err.message : String(err),
    );
  }
  return new ApiError(
    500,
    'internal',
    err instanceof Error ? err.message : String(err),
    'see the API log on the host that answered',
  );
}
