// `xsm hosts upgrade` / POST /api/hosts/upgrade: checks a rolling Dom0 upgrade and shows its plan (the
// hosts in order and, for each, what its drain moves where), then enqueues it as one durable job on the
// control queue (workflows/upgrade-hosts.ts). Check, then act: a plan with a VM that cannot move is refused
// whole, and one whose drains move VMs cold (they stop) needs the upgrade's consent. One upgrade at a time.

import { randomBytes } from 'node:crypto';
import { Job } from 'bullmq';
import { formatImageRef, installedMatches, parseImageRef, type ImageRef } from '../deploy/image-ref.ts';
import { ImageCatalogue, ImageRefError } from '../deploy/image-catalogue.ts';
import type { UpgradeJobData } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { JobProgress } from '../lib/steps.ts';
import { planDrain, planReturn, type Blocker, type HostMove } from './drain-service.ts';
import type { Site } from '../site/model.ts';
import { currentSite, NoSiteError, type Consent } from './site-service.ts';
import { describeUpgrade, type UpgradeView } from './upgrade-status.ts';

/** A refused upgrade request: the API answers `status` with `code`, the message and what to do. */
export class UpgradeRequestError extends Error {
  constructor(
    readonly status: 404 | 409 | 422,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'UpgradeRequestError';
  }
}

export interface UpgradeRequest {
  /** `NAME[:VERSION]`, as the operator typed it. */
  image: string;
  /** In the order to upgrade them (default: every host of the site, in the site file's order). */
  hosts?: string[];
  author: string;
  consent: Consent;
  dryRun?: boolean;
  timeouts?: Partial<UpgradeJobData['timeouts']>;
  /**
   * The image catalogue (XSM_IMAGES_DIR): given, the image is looked up there and a name alone is pinned to
   * its newest version now, so the plan shown names the version the upgrade installs.
   */
  imagesDir?: string;
}

export interface UpgradePlanHost {
  host: string;
  /** upgrade: drain, update, verify, rejoin, return; skip: already on the image. */
  action: 'upgrade' | 'skip';
  installed?: string;
  why?: string;
  /** What its drain moves where, as it would be planned now (each drain is planned again at its turn). */
  moves: HostMove[];
  blockers: Blocker[];
  cold: Blocker[];
}

export interface UpgradePlan {
  image: string;
  /** How each host is updated: redeploy, in-place, simulated. */
  method: string;
  hosts: UpgradePlanHost[];
  /** Some drain moves a VM cold: the upgrade needs consent. */
  needsConsent: boolean;
}

export interface UpgradeStarted {
  id: string;
  plan: UpgradePlan;
}

export const DEFAULT_UPGRADE_TIMEOUTS: UpgradeJobData['timeouts'] = { applyMs: 30 * 60_000, rejoinMs: 20 * 60_000 };

/** `NAME[:VERSION]` as the catalogue has it; a name alone becomes its newest version. */
async function pinnedImage(imagesDir: string, text: string): Promise<ImageRef> {
  const ref = imageRefOf(text);
  try {
    const m = await new ImageCatalogue(imagesDir).resolve(ref, 'image');
    return { name: m.name, version: m.version };
  } catch (e) {
    if (e instanceof ImageRefError) throw new UpgradeRequestError(404, 'no-such-image', e.message);
    throw e;
  }
}

function imageRefOf(text: string): ImageRef {
  try {
    return parseImageRef(text, 'image');
  } catch (e) {
    throw new UpgradeRequestError(422, 'bad-image', (e as Error).message);
  }
}

/** The plan: each host in order, skipped when already on the image, else what its drain would move now. */
export async function planUpgrade(rt: XsmRuntime, method: string, req: UpgradeRequest): Promise<UpgradePlan> {
  const image = req.imagesDir === undefined ? imageRefOf(req.image) : await pinnedImage(req.imagesDir, req.image);
  const { site } = await currentSite(rt);
  if (!site) throw new NoSiteError();
  const order = req.hosts ?? site.hosts.map((h) => h.name);
  const unknown = order.filter((h) => !site.hosts.some((x) => x.name === h));
  if (unknown.length)
    throw new UpgradeRequestError(
      404,
      'not-found',
      `no host named ${unknown.join(', ')} in the current site version`,
      `known hosts: ${site.hosts.map((h) => h.name).join(', ')}`,
    );
  const twice = order.find((h, i) => order.indexOf(h) !== i);
  if (twice) throw new UpgradeRequestError(422, 'bad-hosts', `host ${twice} is named twice`);
  if (!order.length) throw new UpgradeRequestError(422, 'bad-hosts', 'no hosts to upgrade');
  const atEachTurn = await siteAtEachTurn(rt, site, order);
  const hosts: UpgradePlanHost[] = [];
  for (const host of order) {
    const spec = site.hosts.find((h) => h.name === host)!;
    const installed = (await rt.deploys.deployed(host))?.image;
    const known = installed !== undefined ? { installed } : {};
    if (!spec.maintenance && installedMatches(installed, image)) {
      hosts.push({ host, action: 'skip', ...known, why: `already on ${installed}`, moves: [], blockers: [], cold: [] });
      continue;
    }
    const d = await planDrain(rt, atEachTurn, host);
    hosts.push({ host, action: 'upgrade', ...known, moves: d.moves, blockers: d.blockers, cold: d.cold });
  }
  return {
    image: formatImageRef(image),
    method,
    hosts,
    needsConsent: hosts.some((h) => h.cold.length > 0),
  };
}

/**
 * The site as each host's drain will find it: every host before it is back out of maintenance with its VMs
 * returned. Hosts of the upgrade in maintenance now (a run that failed before) get their return planned
 * first, as the upgrade will do when it reaches them.
 */
async function siteAtEachTurn(rt: XsmRuntime, site: Site, order: readonly string[]): Promise<Site> {
  let at = site;
  for (const host of order) {
    if (!at.hosts.find((h) => h.name === host)?.maintenance) continue;
    const { moves } = await planReturn(rt, at, host);
    const to = new Map(moves.map((m) => [m.vm, m.to]));
    at = {
      ...at,
      hosts: at.hosts.map((h) => (h.name === host ? { ...h, maintenance: false } : h)),
      vms: at.vms.map((v) => (to.has(v.name) ? { ...v, host: to.get(v.name)! } : v)),
    };
  }
  return at;
}

/** The upgrade job running or waiting now, if any. */
async function runningUpgrade(rt: XsmRuntime): Promise<Job<UpgradeJobData> | undefined> {
  const jobs = await rt.control().getJobs(['active', 'waiting', 'delayed', 'prioritized']);
  return jobs.find((j): j is Job<UpgradeJobData> => j?.name === 'upgrade');
}

/**
 * Checks, plans and (unless a dry run) enqueues the upgrade. Refused: another upgrade runs (409), a VM
 * cannot leave a host (422), a drain moves VMs cold without consent (409, consent-required).
 */
export async function startUpgrade(
  rt: XsmRuntime,
  method: string,
  req: UpgradeRequest,
): Promise<{ plan: UpgradePlan; id?: string }> {
  const plan = await planUpgrade(rt, method, req);
  if (req.dryRun) return { plan };
  const running = await runningUpgrade(rt);
  if (running)
    throw new UpgradeRequestError(
      409,
      'upgrade-running',
      `rolling upgrade ${running.id} is running; one upgrade at a time`,
      `follow it with xsm hosts upgrade --status ${running.id}`,
    );
  const blocked = plan.hosts.flatMap((h) => h.blockers.map((b) => `${h.host}: ${b.vm}: ${b.why}`));
  if (blocked.length)
    throw new UpgradeRequestError(
      422,
      'cannot-drain',
      `cannot upgrade: ${blocked.join('; ')}; nothing was started`,
      'make room or lift the rule (see xsm host drain HOST --dry-run), or leave the host out with --hosts',
    );
  if (plan.needsConsent && req.consent === 'none')
    throw new UpgradeRequestError(
      409,
      'consent-required',
      `the drains move VMs cold (they stop): ${plan.hosts.flatMap((h) => h.cold.map((c) => `${h.host}: ${c.vm}`)).join(', ')}; nothing was started`,
      'to allow it, repeat with "allowDisruption": true; `xsm hosts upgrade` asks, or takes --yes',
      {
        actions: plan.hosts.flatMap((h) =>
          h.cold.map((c) => ({
            id: `migrate:${c.vm}`,
            kind: 'migrate',
            vm: c.vm,
            disruption: `drain of ${h.host}: ${c.why}`,
          })),
        ),
      },
    );
  const id = `upgrade-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const data: UpgradeJobData = {
    id,
    // The image the plan named (pinned to a version when the catalogue was asked), not the request again.
    image: imageRefOf(plan.image),
    hosts: plan.hosts.map((h) => h.host),
    author: req.author,
    consent: req.consent === 'none' ? 'none' : 'operator',
    timeouts: { ...DEFAULT_UPGRADE_TIMEOUTS, ...req.timeouts },
    method,
    progress: {},
  };
  // attempts 1: the first failure stops the upgrade; a worker that dies mid-way is not a failure (its job
  // is taken over by the next control worker and resumes from the journal).
  await rt.control().add('upgrade', data, { jobId: id, attempts: 1, removeOnComplete: { count: 100 } });
  return { plan, id };
}

/** The upgrade `id`: per host done, skipped, running, failed or not started. */
export async function getUpgrade(rt: XsmRuntime, id: string): Promise<UpgradeView | undefined> {
  const job = (await Job.fromId(rt.control(), id)) as Job<UpgradeJobData> | undefined;
  if (!job || job.name !== 'upgrade') return undefined;
  const p = job.progress as Partial<JobProgress> | number | undefined;
  const journal = typeof p === 'object' && p?.journal ? p.journal : { done: [] };
  return describeUpgrade(job.data, journal, await job.getState());
}
