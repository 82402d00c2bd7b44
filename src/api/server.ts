// The HTTP API's app: middleware (spans, audit, security headers, authentication), the routes of each
// resource (src/api/routes/ and the monitoring, deploy and audit modules), the job dashboard (bull-board at
// /admin/queues behind the same tokens), and one error handler. Everything it knows is in Redis, so any host
// can serve it and several may at once.

import { mountRecoverRoutes } from './routes/recover-routes.ts';
import { RecoveryRefusedError } from '../services/recovery.ts';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../lib/log.ts';
import { packageVersion } from '../lib/package-version.ts';
import { httpSpans } from '../lib/tracing.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { RetryError } from '../services/inspect.ts';
import { ConsentRequiredError, NoSiteError, StalePlanError } from '../services/site-service.ts';
import { EditError } from '../site/edit.ts';
import type { LoadResult } from '../site/model.ts';
import { PlanError } from '../site/plan.ts';
import { SiteLoadPool, siteInputLimitsFromEnv, type SiteInputLimits } from '../site/site-load-pool.ts';
import { InvalidSiteError, StaleVersionError } from '../state/site-store.ts';
import { auditRequests, mountAuditRoutes } from './audit.ts';
import { roleAllows, type Principal, type Role, type TokenTable } from './auth.ts';
import { escapeHtml, methodNotAllowed, mountBrowserAuth, page, securityHeaders, wantsHtml } from './browser.ts';
import { mountDeployRoutes } from './deploy-routes.ts';
import { ApiError, bearerToken, issuesJson, planJson, xmlBody, type RouteKit } from './http.ts';
import { mountMonitoringRoutes } from './monitoring.ts';
import { openApiDocument, openApiHtml } from './openapi.ts';
import { OwnershipForbidden } from './ownership.ts';
import { PowerChangeForbidden } from './power-guard.ts';
import { mountInventoryRoutes } from './routes/inventory-routes.ts';
import { mountDrainRoutes } from './routes/drain-routes.ts';
import { mountUpgradeRoutes } from './routes/upgrade-routes.ts';
import { UpgradeRequestError } from '../services/upgrade-service.ts';
import { mountJobRoutes } from './routes/job-routes.ts';
import { mountMigrationRoutes } from './routes/migration-routes.ts';
import { mountSiteRoutes } from './routes/site-routes.ts';
import { InputError } from './schemas.ts';
import { upgradeMethodFromEnv } from '../services/image-updaters.ts';

export { ApiError } from './http.ts';

export interface ApiOptions {
  rt: XsmRuntime;
  tokens: TokenTable;
  log: Logger;
  /** Where the deploy worker's images (and their manifests) are: default XSM_IMAGES_DIR or /var/lib/xsm/images. */
  imagesDir?: string;
  /** Size cap, parser threads and per-identity parse limit of site-file uploads; default from the environment. */
  siteInput?: SiteInputLimits;
  /** How the control worker's rolling upgrades update a host, as their plans say (default XSM_UPGRADE_METHOD). */
  upgradeMethod?: string;
  /** Failed browser logins one address may make per 5 minutes (default 5). */
  loginLimit?: number;
  /**
   * Whether GET /api/vms is built in a worker thread (default; XSM_VM_LIST_THREAD=0 builds it on the event
   * loop, as before, for comparison or where threads are unwanted).
   */
  vmListThread?: boolean;
  /** Extra routes added by other parts of XSM. */
  extend?: (app: express.Express, guard: (role: Role) => express.RequestHandler) => void;
}

/** XSM_VM_LIST_THREAD: 1 (default) or 0; anything else is refused, naming the variable. */
export function vmListThreadFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env.XSM_VM_LIST_THREAD;
  if (raw === undefined || raw === '' || raw === '1') return true;
  if (raw === '0') return false;
  throw new Error(`XSM_VM_LIST_THREAD=${raw} is not 0 or 1 (1, the default: build GET /api/vms in a worker thread)`);
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
  const guard = roleGuard(tokens, browser.sessionPrincipal);
  const viewer = guard('viewer');
  const operator = guard('operator');
  mountAuditRoutes(app, rt, viewer, (message) => new ApiError(400, 'bad-parameter', message));
  const uploads = siteUploads(opts.siteInput ?? siteInputLimitsFromEnv());
  // Threads the routes start (site-file parsers, the VM list's builder), ended when the server closes.
  const closers: (() => Promise<void>)[] = [() => uploads.pool.close()];
  app.locals.close = () => Promise.all(closers.map((c) => c())).then(() => undefined);
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

  const kit: RouteKit = {
    rt,
    log,
    guard,
    viewer,
    operator,
    json,
    ...uploads,
    vmListThread: opts.vmListThread ?? vmListThreadFromEnv(),
    onClose: (close) => closers.push(close),
  };
  const imagesDir = opts.imagesDir ?? process.env.XSM_IMAGES_DIR ?? '/var/lib/xsm/images';
  mountSiteRoutes(app, kit);
  mountInventoryRoutes(app, kit);
  mountDrainRoutes(app, kit);
  const upgradeMethod = opts.upgradeMethod ?? upgradeMethodFromEnv();
  mountUpgradeRoutes(app, kit, upgradeMethod, upgradeMethod === 'simulated' ? undefined : imagesDir);
  mountJobRoutes(app, kit);
  mountMigrationRoutes(app, kit);
  mountRecoverRoutes(app, kit);
  mountDashboard(app, rt, guard('admin'));

  const fail = (status: number, code: string, message: string, hint?: string) =>
    new ApiError(status, code, message, hint);
  mountMonitoringRoutes(app, rt, guard, fail);
  mountDeployRoutes(app, rt, guard, fail, imagesDir);
  opts.extend?.(app, guard);

  app.use(methodNotAllowed(app));
  app.use((_req, _res, next) =>
    next(new ApiError(404, 'not-found', 'no such endpoint', 'see docs/api.md for the endpoints')),
  );
  app.use(errorAnswer(log));
  return app;
}

/** The role check of every route: a bearer token, or a browser's session; 401 without either, 403 below the role. */
function roleGuard(
  tokens: TokenTable,
  sessionPrincipal: (req: Request) => Promise<Principal | undefined>,
): (role: Role) => express.RequestHandler {
  return (role) => async (req, _res, next) => {
    const token = bearerToken(req);
    const p = token !== undefined ? tokens.lookup(token) : await sessionPrincipal(req);
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
      return next(new ApiError(403, 'forbidden', `this needs the ${role} role; your token (${p.name}) has ${p.role}`));
    req.principal = p;
    next();
  };
}

/**
 * Site-file uploads: capped, parsed in worker threads, and at most `perToken` at once per identity (429
 * beyond): one caller cannot queue enough uploads to starve everyone else's.
 */
function siteUploads(siteInput: SiteInputLimits): Pick<RouteKit, 'xml' | 'pool' | 'loadXml' | 'loadedOrThrow'> {
  const pool = new SiteLoadPool(siteInput.threads);
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
  return { xml, pool, loadXml, loadedOrThrow };
}

/** bull-board at /admin/queues, admins only, its queue list refreshed as hosts join and leave. */
function mountDashboard(app: express.Express, rt: XsmRuntime, admin: express.RequestHandler): void {
  const board = new ExpressAdapter();
  board.setBasePath('/admin/queues');
  const { replaceQueues } = createBullBoard({
    queues: [],
    serverAdapter: board,
    // The way back to the site console (the console links here for admins).
    options: {
      uiConfig: {
        boardTitle: 'XSM jobs',
        miscLinks: [{ text: 'Site console', url: '/admin/site' }],
      },
    },
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
  app.use('/admin/queues', admin, refreshBoard, board.getRouter());
}

/** Every error as one answer: JSON {error: {code, message, hint?, details?}}, or a page for a person. */
function errorAnswer(log: Logger): express.ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
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
  };
}

/** The answer to an error XSM throws on purpose (bad input, an invalid site, a refusal); undefined for others. */
function knownError(err: unknown): ApiError | undefined {
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
  if (err instanceof RecoveryRefusedError)
    return new ApiError(409, 'recovery-refused', err.message, undefined, err.details);
  if (err instanceof NoSiteError) return new ApiError(409, 'no-site', err.message, 'POST /api/site?base=0 first');
  if (err instanceof EditError)
    return new ApiError(err.status, err.status === 404 ? 'not-found' : 'bad-edit', err.message);
  if (err instanceof RetryError) return new ApiError(err.status, err.code, err.message, err.hint);
  if (err instanceof UpgradeRequestError) return new ApiError(err.status, err.code, err.message, err.hint, err.details);
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
  return undefined;
}

/** The answer to any other error: the body parser's (bad JSON, too large, ...) as 4xx, the rest as 500. */
function otherError(err: unknown): ApiError {
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

function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return knownError(err) ?? otherError(err);
}
