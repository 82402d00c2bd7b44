// Records every mutating request in the audit log once it is answered — who (the token's identity), from
// where, what, and how it ended (refusals included: a 403 is exactly what an audit is for) — and serves
// the log at GET /api/audit. Automated actions append their own entries (src/state/audit-store.ts).

import type express from 'express';
import type { Request, Response } from 'express';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { Logger } from '../lib/log.ts';
import { type AuditQuery } from '../state/audit-store.ts';
import { auditQuery, input } from './schemas.ts';

/** Requests that change nothing although they are POSTs: validating or planning a file stores nothing. */
const READ_ONLY_POSTS = new Set(['/api/site/validate', '/api/site/plan']);

/** The kind of a mutating request, by route; undefined for requests that change nothing. */
export function auditKind(method: string, path: string): string | undefined {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
  if (READ_ONLY_POSTS.has(path)) return undefined;
  if (path === '/api/site') return 'submit';
  if (/^\/api\/site\/versions\/[^/]+\/apply$/.test(path)) return 'apply';
  if (path.startsWith('/api/vms/')) return 'edit';
  if (/^\/api\/jobs\/[^/]+\/[^/]+\/retry$/.test(path)) return 'retry';
  if (path === '/api/hosts/deploy') return 'deploy';
  if (path === '/api/images/capture') return 'image-capture';
  if (/^\/api\/hosts\/[^/]+\/update$/.test(path)) return 'host-update';
  if (/^\/api\/hosts\/[^/]+\/power\/confirm$/.test(path)) return 'power-confirm';
  if (/^\/api\/hosts\/[^/]+\/(un)?drain$/.test(path)) return 'edit';
  if (path === '/api/rebalance') return 'rebalance';
  if (path === '/api/admin/recover') return 'recover';
  if (path === '/api/rebalance/schedule') return 'schedule';
  if (path.startsWith('/admin/queues')) return 'dashboard';
  if (path === '/admin/login') return 'login';
  if (path === '/admin/logout') return 'logout';
  return 'request';
}

function flag(v: unknown): boolean {
  return v === true || v === '1' || v === 'true' || v === 'yes';
}

export function auditRequests(rt: XsmRuntime, log: Logger): express.RequestHandler {
  const store = rt.audit;
  const events = rt.events;
  return (req: Request, res: Response, next) => {
    const kind = auditKind(req.method, req.path);
    if (!kind) return next();
    // The answer's version and job ids, read from the JSON the route sends.
    let answer: { version?: unknown; applyJob?: unknown; jobs?: unknown; id?: unknown } | undefined;
    const json = res.json.bind(res);
    res.json = (body: unknown) => {
      answer = body as typeof answer;
      return json(body);
    };
    res.on('finish', () => {
      if (kind === 'submit' || kind === 'edit' || kind === 'rebalance') {
        const st = res.statusCode;
        const outcome = st >= 400 ? 'refused' : st === 201 || st === 202 ? 'stored' : 'unchanged';
        // A rebalance dry run or one with nothing to move (200) asked for no change.
        if (!(kind === 'rebalance' && outcome === 'unchanged')) events.count('xsm_submits_total', { kind, outcome });
      }
      const p = req.principal;
      const body = (typeof req.body === 'object' && req.body) || {};
      const reason = (req.query.reason as string | undefined) ?? (body as { reason?: unknown }).reason;
      const status = res.statusCode;
      store
        .append({
          user: p?.name ?? 'anonymous',
          role: p?.role ?? 'none',
          from: req.ip ?? req.socket.remoteAddress ?? 'unknown',
          kind,
          what: `${req.method} ${req.originalUrl.split('?')[0]}`,
          outcome: status < 400 ? 'ok' : status < 500 ? 'refused' : 'failed',
          status,
          ...(req.auditSets?.length ? { sets: req.auditSets } : {}),
          ...(typeof answer?.version === 'number' ? { version: answer.version } : {}),
          ...(typeof answer?.applyJob === 'string' ? { job: answer.applyJob } : {}),
          ...(kind === 'retry' && typeof answer?.id === 'string' ? { job: answer.id } : {}),
          ...(flag(req.query.allowDisruption) || flag((body as { allowDisruption?: unknown }).allowDisruption)
            ? { consent: true }
            : {}),
          ...(typeof reason === 'string' && reason ? { reason: reason.slice(0, 500) } : {}),
        })
        .catch((e: unknown) =>
          // The change itself is done or refused either way; a lost entry is logged where the API logs.
          log.error('audit entry not written', { kind, error: e instanceof Error ? e.message : String(e) }),
        );
    });
    next();
  };
}

/** `since`/`until`: ISO-8601 or epoch milliseconds; undefined when absent. */
function timeParam(v: unknown, name: string, fail: (m: string) => Error): number | undefined {
  if (v === undefined || v === '') return undefined;
  const text = String(v);
  const n = /^[0-9]{1,15}$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isFinite(n))
    throw fail(`${name} must be an ISO-8601 time or epoch milliseconds, got ${JSON.stringify(text)}`);
  return n;
}

export function mountAuditRoutes(
  app: express.Express,
  rt: XsmRuntime,
  viewer: express.RequestHandler,
  fail: (message: string) => Error,
): void {
  const store = rt.audit;
  /** The audit log, newest first: ?user=, ?set=, ?kind=, ?since=, ?until=, ?limit= (default 100). */
  app.get('/api/audit', viewer, async (req, res) => {
    const given = input(auditQuery, req.query, 'query');
    const q: AuditQuery = {};
    for (const k of ['user', 'set', 'kind', 'limit', 'cursor'] as const)
      if (given[k] !== undefined) (q as Record<string, unknown>)[k] = given[k];
    const since = timeParam(given.since, 'since', fail);
    const until = timeParam(given.until, 'until', fail);
    if (since !== undefined) q.since = since;
    if (until !== undefined) q.until = until;
    const entries = await store.query(q);
    // A full page may have more behind it: its last entry's id is where the next page starts.
    res.json({ entries, ...(entries.length === (q.limit ?? 100) ? { next: entries.at(-1)!.id } : {}) });
  });
}
