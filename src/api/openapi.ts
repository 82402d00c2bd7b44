// The API's contract as OpenAPI 3.1, generated from the same zod schemas the routes parse their input with
// (src/api/schemas.ts), so the document cannot promise a parameter a route refuses or miss one it takes.
// Served at GET /api/openapi.json; a test validates it with an OpenAPI validator and checks that every
// route the app serves is in it and in docs/api.md.

import { escapeHtml } from './browser.ts';
import { z } from 'zod';
import * as S from './schemas.ts';
import type { Role } from './auth.ts';

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express form: `/api/vms/:name/migrate`. */
  path: string;
  summary: string;
  /** Who may call it; undefined: no token needed. */
  role?: Role;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: { json: z.ZodType } | { xml: true } | { form: true };
  /** Success status and what it answers. */
  ok: [number, string];
  /** Refusals besides 400/401/403 that are part of the route's contract. */
  errors?: number[];
}

const json = (schema: z.ZodType) => ({ json: schema });

export const ROUTES: RouteDoc[] = [
  { method: 'get', path: '/api/health', summary: 'Redis answers', ok: [200, '{"ok": true}'] },
  { method: 'get', path: '/api/openapi.json', summary: 'this document', ok: [200, 'OpenAPI 3.1'] },
  { method: 'get', path: '/api/docs', summary: 'this document as a page for people', ok: [200, 'HTML'] },
  {
    method: 'get',
    path: '/api/site/versions/:version/status',
    summary: 'per action: planned, running, done, failed or blocked (by what)',
    role: 'viewer',
    params: S.versionPath,
    ok: [200, '{version, state, summary?, actions: [{id, kind, vm, host, status, blockedBy?, reason?, job}]}'],
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/site',
    summary: 'current, applied and converged version',
    role: 'viewer',
    ok: [200, '{version, applied, converged, author?, reason?, time?, base?}'],
  },
  {
    method: 'get',
    path: '/api/site/versions',
    summary: 'history, newest first',
    role: 'viewer',
    query: S.versionsQuery,
    ok: [200, '{versions}'],
  },
  {
    method: 'get',
    path: '/api/site/versions/:version',
    summary: 'one version: XML, meta, stored plan and apply outcome',
    role: 'viewer',
    params: S.versionPath,
    ok: [200, 'the version'],
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/site/versions/:version/outcome',
    summary: "how the version's plan ran",
    role: 'viewer',
    params: S.versionPath,
    ok: [200, '{version, state, summary?, actions}'],
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/site/import',
    summary: "a site file built from the host agents' reports (domains, config files, hosts); nothing stored",
    role: 'operator',
    ok: [200, '{base, xml, hosts, vms, notes}'],
    errors: [409],
  },
  {
    method: 'post',
    path: '/api/site/validate',
    summary: 'validate a site file; nothing stored',
    role: 'viewer',
    query: S.fileQuery,
    body: { xml: true },
    ok: [200, '{ok, errors, warnings}'],
    errors: [413, 422, 429],
  },
  {
    method: 'post',
    path: '/api/site/plan',
    summary: 'the plan a site file would get now; nothing stored',
    role: 'viewer',
    query: S.fileQuery,
    body: { xml: true },
    ok: [200, '{plan, planHash, base, observedAt, xmlHash, warnings}'],
    errors: [413, 422, 429],
  },
  {
    method: 'post',
    path: '/api/site',
    summary: 'store a new version (planned once) and apply it',
    role: 'operator',
    query: S.submitQuery,
    body: { xml: true },
    ok: [201, '{version, plan, planHash, ...}; 200 {unchanged: true} when identical'],
    errors: [409, 413, 422, 429],
  },
  {
    method: 'post',
    path: '/api/site/versions/:version/apply',
    summary: '(re-)enqueue the apply of the current version',
    role: 'operator',
    params: S.versionPath,
    ok: [202, '{version, applyJob, duplicate}'],
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/hosts',
    summary: 'inventory merged with what agents report',
    role: 'viewer',
    ok: [200, '{hosts}'],
  },
  {
    method: 'get',
    path: '/api/vms',
    summary: "each VM's desired and observed placement (gzipped when accepted; ?limit&after: a page)",
    role: 'viewer',
    query: S.vmsQuery,
    ok: [200, '{vms, unmanaged, next?}'],
  },
  {
    method: 'post',
    path: '/api/vms/:name/migrate',
    summary: 'move a VM (a new version)',
    role: 'operator',
    params: S.vmPath,
    body: json(S.migrateBody),
    ok: [202, '{version, reason, plan, ...}'],
    errors: [404, 409, 422],
  },
  {
    method: 'post',
    path: '/api/vms/:name/reconfigure',
    summary: "change a VM's memory and/or vCPUs (a new version)",
    role: 'operator',
    params: S.vmPath,
    body: json(S.reconfigureBody),
    ok: [202, '{version, reason, plan, ...}'],
    errors: [404, 409, 422],
  },
  {
    method: 'delete',
    path: '/api/vms/:name',
    summary: 'remove a VM (a new version; needs consent)',
    role: 'operator',
    params: S.vmPath,
    body: json(S.removeBody.unwrap()),
    ok: [202, '{version, reason, plan, ...}'],
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/jobs',
    summary: 'jobs across the control and host queues, newest first',
    role: 'viewer',
    query: S.jobsQuery,
    ok: [200, '{jobs}'],
  },
  {
    method: 'get',
    path: '/api/jobs/:queue/:id',
    summary: 'one job',
    role: 'viewer',
    params: S.jobPath,
    ok: [200, 'the job'],
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/jobs/:queue/:id/retry',
    summary: 'retry a failed job from the step it failed at',
    role: 'operator',
    params: S.jobPath,
    ok: [202, 'the job'],
    errors: [404, 409],
  },
  {
    method: 'get',
    path: '/api/migrations',
    summary: 'the migration history, newest first: source, reason, predicted gain, outcome, duration',
    role: 'viewer',
    query: S.migrationsQuery,
    ok: [200, '{migrations}'],
  },
  {
    method: 'get',
    path: '/api/audit',
    summary: 'the audit log, newest first',
    role: 'viewer',
    query: S.auditQuery,
    ok: [200, '{entries}'],
  },
  {
    method: 'post',
    path: '/api/rebalance',
    summary: 'plan (dry run) or write live migrations that lower imbalance',
    role: 'operator',
    body: json(S.rebalanceBody.unwrap()),
    ok: [200, '{baseVersion, version?, moves, imbalanceBefore, imbalanceAfter}; 202 when written'],
    errors: [409],
  },
  {
    method: 'get',
    path: '/api/rebalance/schedule',
    summary: 'the rebalancing schedule',
    role: 'viewer',
    ok: [200, '{everyMinutes, next?, request?}'],
  },
  {
    method: 'put',
    path: '/api/rebalance/schedule',
    summary: 'set the rebalancing schedule (0 removes it)',
    role: 'admin',
    body: json(S.scheduleBody),
    ok: [200, '{everyMinutes, request}'],
  },
  {
    method: 'get',
    path: '/api/hosts/health',
    summary: 'hosts failover suspects, is fencing, has fenced or failed to fence',
    role: 'viewer',
    ok: [200, '{health}'],
  },
  {
    method: 'post',
    path: '/api/hosts/:name/power/confirm',
    summary: 'confirm a manual power switch XSM asked for',
    role: 'operator',
    params: S.namePath,
    ok: [200, '{host, confirmed}'],
    errors: [409],
  },
  {
    method: 'post',
    path: '/api/hosts/:name/drain',
    summary: 'put a host in maintenance and move its VMs off (pre-check first; dryRun shows the plan)',
    role: 'operator',
    params: S.namePath,
    body: json(S.drainBody.unwrap()),
    ok: [202, '{version, host, moves, blockers, plan}; 200 on a dry run or no change'],
    errors: [404, 409, 422],
  },
  {
    method: 'post',
    path: '/api/hosts/:name/undrain',
    summary: 'take a host out of maintenance; with return, bring back the VMs that left in its drain',
    role: 'operator',
    params: S.namePath,
    body: json(S.undrainBody.unwrap()),
    ok: [202, '{version, host, moves, blockers, plan}; 200 on a dry run or no change'],
    errors: [404, 409, 422],
  },
  {
    method: 'post',
    path: '/api/hosts/upgrade',
    summary:
      'rolling Dom0 upgrade, one host at a time: drain, update, verify Xen, rejoin, return (dryRun shows the plan)',
    role: 'admin',
    body: json(S.upgradeBody),
    ok: [
      202,
      '{id, plan: {image, method, hosts: [{host, action, installed?, why?, moves, blockers, cold}], needsConsent}}',
    ],
    errors: [404, 409, 422],
  },
  {
    method: 'get',
    path: '/api/hosts/upgrade/:id',
    summary: 'a rolling upgrade: per host done, skipped, running, failed (step, why) or not started',
    role: 'viewer',
    params: S.upgradePath,
    ok: [200, '{id, image, state, hosts: [{host, state, step?, why?, detail?, stayed?}], summary}'],
    errors: [404],
  },
  {
    method: 'post',
    path: '/api/admin/recover',
    summary:
      "rebuild the site store from the host agents' site copies after Redis was lost (empty store; dryRun says what it would restore)",
    role: 'admin',
    body: json(S.recoverBody.unwrap()),
    ok: [201, '{version, sha256, from, older, without, missing, before, epochs, drift, converged}; 200 on a dry run'],
    errors: [409],
  },
  {
    method: 'post',
    path: '/api/hosts/deploy',
    summary: 'PXE-boot, image and verify machines as Xen hosts',
    role: 'operator',
    body: json(S.deployBody),
    ok: [202, '{session, jobs, queue}'],
    errors: [422],
  },
  {
    method: 'get',
    path: '/api/hosts/:name/deploy',
    summary: "a host's deployment state",
    role: 'viewer',
    params: S.namePath,
    ok: [200, '{host, ...}'],
    errors: [404],
  },
  {
    method: 'get',
    path: '/api/images',
    summary: 'the image catalogue: every version of every image (sha256, size, created-at, source)',
    role: 'viewer',
    ok: [200, '{imagesDir, images: [{name, version, file, bytes, sha256, createdAt, source, description}]}'],
  },
  {
    method: 'post',
    path: '/api/images/capture',
    summary: "capture an installed Dom0's root file system as a new image version (a deploy-queue job)",
    role: 'admin',
    body: json(S.imageCaptureBody),
    ok: [202, '{queue, jobId, host, name}'],
    errors: [404, 409, 422],
  },
  {
    method: 'post',
    path: '/api/hosts/:name/update',
    summary: 'update an installed Dom0 in place from an image version (dryRun: list what would change)',
    role: 'admin',
    params: S.namePath,
    body: json(S.hostUpdateBody),
    ok: [202, '{queue, jobId, host, image, dryRun}'],
    errors: [404, 409, 422],
  },
  {
    method: 'get',
    path: '/api/images/jobs/:id',
    summary: "an image capture's or host update's outcome (with the changes of an update or dry run)",
    role: 'viewer',
    params: S.imageJobPath,
    ok: [200, '{jobId, queue, state, result?, error?}'],
    errors: [404],
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    role: 'viewer',
    ok: [200, 'Prometheus text format'],
  },
  { method: 'get', path: '/admin/login', summary: 'the browser login form', ok: [200, 'HTML'] },
  {
    method: 'post',
    path: '/admin/login',
    summary: 'log a browser in (sets a cookie)',
    body: { form: true },
    ok: [303, 'redirect to the console or the job dashboard'],
    errors: [403],
  },
  { method: 'post', path: '/admin/logout', summary: 'end the browser session', ok: [303, 'redirect to the login'] },
  { method: 'get', path: '/admin/site', summary: 'the site console (HTML)', role: 'viewer', ok: [200, 'HTML'] },
  {
    method: 'get',
    path: '/admin/site/data.json',
    summary: "the console's data",
    role: 'viewer',
    ok: [200, '{version, converged, hosts, vms, you, ...}'],
  },
  {
    method: 'get',
    path: '/admin/site/events',
    summary: "the console's live job progress (text/event-stream: `progress` events)",
    role: 'viewer',
    ok: [200, 'server-sent events, each {version, converged, apply?, running, failed, finished}'],
  },
];

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return rest;
};

function parameters(where: 'path' | 'query', schema: z.ZodObject | undefined) {
  if (!schema) return [];
  const s = jsonSchema(schema) as { properties?: Record<string, object>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, prop]) => ({
    name,
    in: where,
    required: where === 'path' || (s.required ?? []).includes(name),
    schema: prop,
  }));
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad-parameter, bad-json or no-site-file: details.issues names each field',
  401: 'no or unknown token',
  403: 'the role, Set ownership or <Power> rule refuses it: details.changes names what',
  404: 'no such version, VM, job or host',
  409: 'stale-version, stale-plan, consent-required, superseded, not-failed, not-current, no-site',
  413: 'too-large: the body is over the limit',
  422: 'invalid-site (details lists file:line:col issues) or impossible-plan',
  429: 'too-many-parses: wait for Retry-After',
};

export function openApiDocument(version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of ROUTES) {
    const path = r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const errors = [...new Set([400, ...(r.role ? [401, 403] : []), ...(r.errors ?? [])])].sort();
    const error = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    paths[path] ??= {};
    paths[path][r.method] = {
      operationId: `${r.method}${r.path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: r.summary,
      ...(r.role ? { security: [{ bearer: [] }], 'x-xsm-role': r.role } : { security: [] }),
      parameters: [...parameters('path', r.params), ...parameters('query', r.query)],
      ...(r.body
        ? {
            requestBody: {
              required: !('json' in r.body) || r.method !== 'delete',
              content:
                'json' in r.body
                  ? { 'application/json': { schema: jsonSchema(r.body.json) } }
                  : 'xml' in r.body
                    ? {
                        'application/xml': {
                          schema: { type: 'string', description: 'a site file (docs/site-file.md)' },
                        },
                      }
                    : {
                        'application/x-www-form-urlencoded': {
                          schema: {
                            type: 'object',
                            properties: { token: { type: 'string' }, csrf: { type: 'string' } },
                            required: ['token', 'csrf'],
                          },
                        },
                      },
            },
          }
        : {}),
      responses: {
        [String(r.ok[0])]: { description: r.ok[1] },
        ...Object.fromEntries(errors.map((s) => [String(s), { description: STATUS_TEXT[s] ?? 'error', ...error }])),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'XSM — Xen Site Manager API',
      version,
      description: 'Generated from the schemas the routes check their input with. Prose: docs/api.md.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: {
                code: { type: 'string' },
                message: { type: 'string' },
                hint: { type: 'string' },
                details: {},
              },
            },
          },
        },
      },
    },
    paths,
  };
}

/**
 * The OpenAPI document as one self-contained page for people (GET /api/docs): every route with its role,
 * parameters, body schema and answers. Rendered on the server, no script and no asset from elsewhere, so it
 * works on a management network with no Internet and under the API's strict CSP.
 */
export function openApiHtml(doc: object): string {
  const d = doc as {
    info: { title: string; version: string; description: string };
    paths: Record<
      string,
      Record<
        string,
        {
          summary: string;
          'x-xsm-role'?: string;
          parameters: { name: string; in: string; required: boolean; schema: object }[];
          requestBody?: { content: Record<string, { schema: object }> };
          responses: Record<string, { description: string }>;
        }
      >
    >;
  };
  const ops = Object.entries(d.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => {
      const params = op.parameters.length
        ? `<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>${op.parameters
            .map(
              (p) =>
                `<tr><td><code>${escapeHtml(p.name)}</code></td><td>${p.in}</td><td>${p.required ? 'yes' : ''}</td><td><code>${escapeHtml(JSON.stringify(p.schema))}</code></td></tr>`,
            )
            .join('')}</table>`
        : '';
      const body = op.requestBody
        ? Object.entries(op.requestBody.content)
            .map(
              ([type, c]) =>
                `<p>body <code>${escapeHtml(type)}</code></p><pre>${escapeHtml(JSON.stringify(c.schema, null, 2))}</pre>`,
            )
            .join('')
        : '';
      const answers = Object.entries(op.responses)
        .map(([status, r]) => `<li><b>${status}</b> ${escapeHtml(r.description)}</li>`)
        .join('');
      return `<section id="${escapeHtml(method + path)}"><h2><span class="m">${method.toUpperCase()}</span> <code>${escapeHtml(path)}</code></h2><p>${escapeHtml(op.summary)} — ${op['x-xsm-role'] ? `role <b>${escapeHtml(op['x-xsm-role'])}</b>` : 'no token'}</p>${params}${body}<ul>${answers}</ul></section>`;
    }),
  );
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${escapeHtml(d.info.title)}</title><style>body{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2430}h2{font-size:1.05rem;margin:1.6rem 0 .3rem}.m{display:inline-block;min-width:4rem;color:#2457b3}code,pre{font:13px ui-monospace,monospace}pre{background:#f3f5f8;padding:.6rem;overflow:auto}table{border-collapse:collapse}td,th{border-bottom:1px solid #dde2ea;padding:.2rem .6rem;text-align:left;vertical-align:top}</style></head><body><h1>${escapeHtml(d.info.title)} <small>${escapeHtml(d.info.version)}</small></h1><p>${escapeHtml(d.info.description)} Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a>.</p>${ops.join('')}</body></html>`;
}
