// What every route shares: the error an answer is made from, the request's identity, and how plans, issues,
// times and jobs are written in answers. Routes (src/api/routes/) parse their input with src/api/schemas.ts,
// call a service, and answer with these.

import type express from 'express';
import type { Request, Response } from 'express';
import type { Logger } from '../lib/log.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { JobView } from '../services/inspect.ts';
import type { SubmitResult } from '../services/site-service.ts';
import type { Plan, StoredPlan } from '../site/actions.ts';
import { formatIssue, type LoadResult, type Site, type SiteIssue } from '../site/model.ts';
import type { SiteLoadPool } from '../site/site-load-pool.ts';
import type { PlanRecord } from '../state/site-store.ts';
import type { Principal, Role } from './auth.ts';
import { checkOwnership } from './ownership.ts';
import { checkPowerChanges } from './power-guard.ts';

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

declare module 'express-serve-static-core' {
  interface Request {
    principal?: Principal;
    /** Sets the request's change touched: what the audit entry records. */
    auditSets?: string[];
  }
}

/** What the app hands each group of routes: the runtime, the role guards, the body parsers and the site parser. */
export interface RouteKit {
  rt: XsmRuntime;
  log: Logger;
  guard: (role: Role) => express.RequestHandler;
  viewer: express.RequestHandler;
  operator: express.RequestHandler;
  /** A site file body (capped). */
  xml: express.RequestHandler;
  /** A JSON body (1 MiB). */
  json: express.RequestHandler;
  /** Site files are parsed in worker threads, at most a few per identity at once (429 beyond). */
  pool: SiteLoadPool;
  /** Whether GET /api/vms is built in a worker thread rather than on the event loop. */
  vmListThread: boolean;
  /** Registers what to end when the server closes (a thread a route started). */
  onClose: (close: () => Promise<void>) => void;
  loadXml<T>(req: Request, file: string, parse: (xml: string) => Promise<T>): Promise<T>;
  loadedOrThrow(req: Request, file: string): Promise<Extract<LoadResult, { ok: true }>>;
}

/**
 * What a person may change, checked before anything is stored: power only as admin, Sets only as their
 * owner, nothing outside Sets unless admin. Records the Sets touched for the audit log.
 */
export function authorizeChange(req: Request): (current: Site | undefined, next: Site) => void {
  return (current, next) => {
    checkPowerChanges(req.principal!, current, next);
    req.auditSets = checkOwnership(req.principal!, current, next);
  };
}

export function bearerToken(req: Request): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

export function xmlBody(req: Request): string {
  if (typeof req.body !== 'string' || req.body.length === 0) {
    throw new ApiError(
      400,
      'no-site-file',
      'send the site file as the request body with Content-Type: application/xml',
    );
  }
  return req.body;
}

export function issuesJson(issues: SiteIssue[]) {
  return issues.map((i) => ({ ...i, text: formatIssue(i) }));
}

export function planJson(plan: Plan) {
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
export function planAnswer(plan: StoredPlan | PlanRecord) {
  return {
    plan: planJson(plan),
    planHash: plan.planHash,
    base: plan.base,
    observedAt: iso(plan.observedAt),
    xmlHash: plan.xmlHash,
  };
}

/** Times in answers are ISO-8601 (UTC); the stores keep epoch milliseconds. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function jobTimes(j: JobView) {
  return {
    ...j,
    createdAt: iso(j.createdAt),
    ...(j.startedAt !== undefined ? { startedAt: iso(j.startedAt) } : {}),
    ...(j.finishedAt !== undefined ? { finishedAt: iso(j.finishedAt) } : {}),
  };
}

/** express.json leaves `{}` (or nothing) when a DELETE carries no body. */
export function isEmptyBody(body: unknown): boolean {
  return body === undefined || (typeof body === 'object' && body !== null && Object.keys(body).length === 0);
}

/** A submit's answer: 201 with the stored plan, or 200 "no changes" (nothing stored). */
export function submitAnswer(res: Response, r: SubmitResult): void {
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
