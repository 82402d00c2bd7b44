// The one way a site version comes to be: an upload, an operator's single edit (migrate, resize, remove),
// the rebalancer and failover all come through here. The file is validated, compared with the current
// version (identical content stores nothing), planned ONCE against the base the run will start from (the
// current version and a snapshot of what agents observe, with its time), checked for consent (actions that
// stop running VMs), and stored together with that plan in one atomic step. The control worker then runs
// exactly the stored plan; nothing plans again behind the operator's back.

import type { Action, Plan, StoredPlan } from '../site/actions.ts';
import { disruptiveActions } from '../site/actions.ts';
import type { LoadResult, Site, SiteIssue } from '../site/model.ts';
import type { ObservedState } from '../site/observed.ts';
import { applyEdit, type SiteEdit } from '../site/edit.ts';
import { loadSite, type LoadOptions } from '../site/parse.ts';
import { serializeSite } from '../site/serialize.ts';
import { planHash, sameContent, sha256 } from '../site/plan-hash.ts';
import { planChanges, PlanError, type PlanOptions } from '../site/plan.ts';
import { InvalidSiteError, StaleVersionError, type PlanRecord } from '../state/site-store.ts';
import { applyJobId, type ApplyJobData } from '../runtime/queues.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';

/**
 * Who agrees to actions that stop running VMs. 'operator': the request said so (allowDisruption).
 * 'failover-policy': failover's restarts of VMs whose host was fenced, and nothing else.
 */
export type Consent = 'none' | 'operator' | 'failover-policy';

export interface SubmitRequest {
  xml: string;
  /** Name used in `file:line:col` of errors. */
  file: string;
  /** The version the change was made on; another version stored meanwhile makes it stale (409). */
  base: number;
  author: string;
  reason: string;
  consent: Consent;
  /** Enqueue the apply at once (default) or only store (apply later with POST /api/site/versions/N/apply). */
  apply: boolean;
  /** A saved plan's hash: store only if planning again gives exactly this plan. */
  expectedPlanHash?: string;
  /** Identical content whose observed state drifted: store it again so its plan repairs the drift. */
  repair?: boolean;
  loadOptions?: LoadOptions;
  /** `xml` already loaded by the caller (e.g. parsed off the event loop): it is not parsed again. */
  parsed?: Extract<LoadResult, { ok: true }>;
  /**
   * Who may make this change, judged on the current and the new site before anything is planned or stored
   * (e.g. only an admin may touch a host's <Power>); throws to refuse.
   */
  authorize?: (current: Site | undefined, next: Site) => void;
  /** What the request adds to the file's plan (a removal that deletes the VM's disks). */
  planOptions?: PlanOptions;
}

export interface Unchanged {
  unchanged: true;
  version: number;
  message: string;
  /** Set when what runs differs from that version: what a repair would do, and how to ask for it. */
  drift?: { message: string; plan: Plan };
}

export interface Stored {
  unchanged: false;
  version: number;
  plan: StoredPlan;
  warnings: SiteIssue[];
  applyJob?: string;
}

export type SubmitResult = Unchanged | Stored;

/** Actions that stop running VMs, and nobody agreed: nothing was stored. */
export class ConsentRequiredError extends Error {
  constructor(readonly actions: Action[]) {
    super(
      `${actions.length} action${actions.length === 1 ? '' : 's'} would stop running VMs: ${actions.map((a) => `${a.id} (${a.disruption ?? 'stops a VM'})`).join('; ')}; nothing was stored`,
    );
    this.name = 'ConsentRequiredError';
  }
}

/** A saved plan no longer matches what planning gives now: nothing was stored. */
export class StalePlanError extends Error {
  constructor(
    message: string,
    readonly details: { base: number; current: number; expected: string; actual?: string; plan?: Plan },
  ) {
    super(message);
    this.name = 'StalePlanError';
  }
}

/** What a plan request answers, and what `xsm site plan --out` saves. */
export interface PlanPreview {
  plan: PlanRecord;
  warnings: SiteIssue[];
}

function loadOrThrow(xml: string, file: string, options?: LoadOptions) {
  const loaded = loadSite(xml, file, options);
  if (!loaded.ok) throw new InvalidSiteError(loaded.errors);
  return loaded;
}

async function currentState(rt: ServiceRuntime): Promise<{ version: number; site: Site | undefined }> {
  const version = await rt.sites.currentVersion();
  return { version, site: version ? (await rt.sites.load(version)).site : undefined };
}

/** Plans `desired` against the current version and a fresh observed snapshot; records what it used. */
async function makePlan(
  rt: ServiceRuntime,
  base: { version: number; site: Site | undefined },
  desired: Site,
  xml: string,
  planOptions: PlanOptions = {},
) {
  const started = performance.now();
  const observedAt = Date.now();
  const observed: ObservedState = await rt.observed.all();
  const planned = planChanges(
    base.site,
    desired,
    Object.keys(observed.hosts).length ? observed : undefined,
    planOptions,
  );
  // Exactly what is stored (source positions are not part of a plan), so what is shown is what runs.
  const plan = JSON.parse(JSON.stringify(planned, (k, v) => (k === 'pos' ? undefined : v))) as Plan;
  const record: PlanRecord = {
    ...plan,
    base: base.version,
    observedAt,
    planHash: planHash(plan.actions),
    xmlHash: sha256(xml),
  };
  rt.events.observe('xsm_plan_duration_seconds', {}, (performance.now() - started) / 1000);
  return record;
}

/** The plan `xml` would get now, stored nowhere (POST /api/site/plan, `xsm site plan FILE`). */
export async function previewPlan(
  rt: ServiceRuntime,
  xml: string,
  file: string,
  options?: LoadOptions,
  parsed?: Extract<LoadResult, { ok: true }>,
  planOptions?: PlanOptions,
): Promise<PlanPreview> {
  const loaded = parsed ?? loadOrThrow(xml, file, options);
  const base = await currentState(rt);
  return { plan: await makePlan(rt, base, loaded.site, xml, planOptions), warnings: loaded.warnings };
}

/** Disruptive actions the given consent does not cover. */
export function unconsented(plan: Plan, consent: Consent): Action[] {
  const disruptive = disruptiveActions(plan);
  if (consent === 'operator') return [];
  // Failover's policy covers restarting VMs whose host it fenced (creates), not stopping running ones.
  if (consent === 'failover-policy') return disruptive.filter((a) => a.kind !== 'create');
  return disruptive;
}

function driftOf(version: number, plan: Plan): Unchanged['drift'] | undefined {
  if (!plan.actions.length) return undefined;
  return {
    message: `what runs differs from version ${version} (${plan.actions.map((a) => a.id).join(', ')}); to make it match, submit again with repair (?repair=1, \`xsm apply --repair\`)`,
    plan,
  };
}

async function unchangedResult(rt: ServiceRuntime, current: { version: number; site: Site | undefined }, xml: string) {
  let drift: Unchanged['drift'];
  try {
    drift = driftOf(current.version, await makePlan(rt, current, current.site!, xml));
  } catch (e) {
    if (!(e instanceof PlanError)) throw e;
    drift = {
      message: `what runs differs from version ${current.version} and cannot be repaired: ${e.message}`,
      plan: { actions: [], waves: 0, notes: [] },
    };
  }
  const result: Unchanged = {
    unchanged: true,
    version: current.version,
    message: 'no changes',
    ...(drift ? { drift } : {}),
  };
  return result;
}

function staleSavedPlan(base: number, current: number, expected: string, plan?: PlanRecord): StalePlanError {
  if (base !== current)
    return new StalePlanError(`plan is stale: base version moved from ${base} to ${current}`, {
      base,
      current,
      expected,
    });
  const summary = plan!.actions.length ? plan!.actions.map((a) => a.id).join(', ') : 'nothing to do';
  return new StalePlanError(`plan is stale: the site changed since it was planned; the plan would now be: ${summary}`, {
    base,
    current,
    expected,
    actual: plan!.planHash,
    plan: plan!,
  });
}

function withConsentNote(reason: string, plan: Plan, consent: Consent): string {
  const restarts = disruptiveActions(plan).length;
  if (consent !== 'failover-policy' || restarts === 0) return reason;
  return `${reason}; ${restarts} restart${restarts === 1 ? '' : 's'} consented by the failover policy`;
}

export async function submitSite(rt: ServiceRuntime, req: SubmitRequest): Promise<SubmitResult> {
  const loaded = req.parsed ?? loadOrThrow(req.xml, req.file, req.loadOptions);
  const current = await currentState(rt);
  req.authorize?.(current.site, loaded.site);
  const identical = current.site !== undefined && sameContent(current.site, loaded.site);
  if (identical && !req.repair) return unchangedResult(rt, current, req.xml);
  if (req.expectedPlanHash !== undefined && req.base !== current.version)
    throw staleSavedPlan(req.base, current.version, req.expectedPlanHash);
  if (req.base !== current.version) throw new StaleVersionError(req.base, current.version);
  // Read before planning: a fence after this read makes the version's jobs stale, never the other way round.
  const epochs = await rt.fence.epochs();
  const plan = await makePlan(rt, current, loaded.site, req.xml, req.planOptions);
  if (identical && plan.actions.length === 0) return unchangedResult(rt, current, req.xml);
  if (req.expectedPlanHash !== undefined && plan.planHash !== req.expectedPlanHash)
    throw staleSavedPlan(req.base, current.version, req.expectedPlanHash, plan);
  const refused = unconsented(plan, req.consent);
  if (refused.length) throw new ConsentRequiredError(refused);
  let version: number;
  try {
    ({ version } = await rt.sites.submit(
      req.xml,
      { base: req.base, author: req.author, reason: withConsentNote(req.reason, plan, req.consent), file: req.file },
      req.loadOptions,
      plan,
      loaded,
    ));
  } catch (e) {
    // Someone stored a version meanwhile. If it is this very content (a concurrent identical submit),
    // there is nothing left to do; otherwise the change is stale.
    if (e instanceof StaleVersionError && !req.repair) {
      const now = await currentState(rt);
      if (now.site && sameContent(now.site, loaded.site)) return unchangedResult(rt, now, req.xml);
    }
    throw e;
  }
  await rt.fence.setPlannedEpochs(version, epochs);
  const job = req.apply ? await enqueueApply(rt, version, req.author) : undefined;
  return {
    unchanged: false,
    version,
    plan: { ...plan, version },
    warnings: loaded.warnings,
    ...(job ? { applyJob: job.jobId } : {}),
  };
}

export async function enqueueApply(
  rt: ServiceRuntime,
  version: number,
  author: string,
): Promise<{ jobId: string; duplicate: boolean }> {
  const id = applyJobId(version);
  const existing = await rt.control().getJob(id);
  if (existing) return { jobId: id, duplicate: true };
  await rt.control().add('apply', { version, author } satisfies ApplyJobData, {
    jobId: id,
    attempts: 3,
    backoff: { type: 'exponential', delay: 1000 },
  });
  return { jobId: id, duplicate: false };
}

/** The plan stored with `version`: what an apply of it runs. */
export async function storedPlan(rt: ServiceRuntime, version: number): Promise<StoredPlan | undefined> {
  return rt.sites.plan(version);
}

export async function convergedVersion(rt: ServiceRuntime): Promise<number> {
  return rt.applies.convergedVersion();
}

/** The current version and its site (parsed once per process: src/state/site-store.ts keeps it). */
export async function currentSite(rt: Pick<ServiceRuntime, 'sites'>): Promise<{ version: number; site?: Site }> {
  const version = await rt.sites.currentVersion();
  return version ? { version, site: (await rt.sites.load(version)).site } : { version };
}

/** No site file was submitted yet: there is nothing to edit. */
export class NoSiteError extends Error {
  constructor() {
    super('no site file has been submitted yet');
    this.name = 'NoSiteError';
  }
}

export interface EditRequest {
  edit: SiteEdit;
  author: string;
  /** The operator's own reason; default says what the edit does (`migrate vm1 from h1 to h2`). */
  reason?: string;
  consent: Consent;
  authorize?: SubmitRequest['authorize'];
}

function editPlanOptions(edit: SiteEdit): PlanOptions {
  return edit.kind === 'remove' && edit.deleteDisks ? { deleteDisks: new Set([edit.vm]) } : {};
}

/**
 * A single VM operation as a new version of the current site: the edit is applied to the current site's
 * objects, written as XML once, and submitted (parsed once more: the same validation as an uploaded file),
 * so the file stays the truth and the next apply of an old file cannot undo it.
 */
export async function editSite(
  rt: ServiceRuntime,
  req: EditRequest,
): Promise<{ base: number; reason: string; result: SubmitResult }> {
  const { version, site } = await currentSite(rt);
  if (!site) throw new NoSiteError();
  const { site: next, reason } = applyEdit(site, req.edit);
  const result = await submitSite(rt, {
    xml: serializeSite(next),
    file: `edit of v${version}`,
    ...(req.authorize ? { authorize: req.authorize } : {}),
    base: version,
    author: req.author,
    reason: req.reason ?? reason,
    consent: req.consent,
    apply: true,
    planOptions: editPlanOptions(req.edit),
  });
  return { base: version, reason, result };
}

/**
 * The plan a single VM operation would get now, stored nowhere: what the console shows before it asks for
 * consent (`"dryRun": true` on the VM routes). The same edit and planning as editSite, minus the store; the
 * real submit plans again and refuses disruptive actions without consent, so a preview grants nothing.
 */
export async function previewEdit(
  rt: ServiceRuntime,
  edit: SiteEdit,
  authorize?: SubmitRequest['authorize'],
): Promise<{ base: number; reason: string; preview: PlanPreview; disruptive: Action[] }> {
  const { version, site } = await currentSite(rt);
  if (!site) throw new NoSiteError();
  const { site: next, reason } = applyEdit(site, edit);
  authorize?.(site, next);
  const preview = await previewPlan(
    rt,
    serializeSite(next),
    `edit of v${version}`,
    undefined,
    undefined,
    editPlanOptions(edit),
  );
  return { base: version, reason, preview, disruptive: disruptiveActions(preview.plan) };
}
