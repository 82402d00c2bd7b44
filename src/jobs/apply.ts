// Running a version's stored plan, exactly as stored (it was made once, at submit; nothing here plans).
// Each wave is one BullMQ flow: a `wave` parent on the control queue and one child per action on the
// queue of the host that acts (a wave of more than waveFlow.chunk actions gets them in several flows).
// A child that fails for good no longer fails its wave (ignoreDependencyOnFailure): the parent still
// runs, records what each action did, and starts the next wave without the actions whose dependencies
// failed or were blocked (recorded as blocked, naming by what). Everything else goes on, and the apply
// ends as converged or partially-failed, saying what did not run and why.

import type { Job, JobsOptions } from 'bullmq';
import type { Action, StoredPlan } from '../site/actions.ts';
import { actionHost } from '../site/actions.ts';
import { indexSite, type Site, type SiteIndex } from '../site/model.ts';
import { PermanentError } from '../lib/errors.ts';
import type { ActionOutcome } from '../state/apply-store.ts';
import {
  actionJobId,
  actionJobOptions,
  CONTROL_QUEUE,
  hostQueueName,
  waveEnqueueJobId,
  waveEnqueueJobOptions,
  waveJobId,
  type ActionJobData,
  type ApplyJobData,
  type WaveEnqueueJobData,
  type WaveJobData,
} from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { restartsAmong } from './migration-record.ts';

async function planOrFail(rt: XsmRuntime, version: number): Promise<StoredPlan> {
  const plan = await rt.sites.plan(version);
  if (!plan)
    throw new PermanentError(
      `version ${version} has no stored plan, and XSM runs only the plan stored with a version`,
      'submit the site file again (xsm apply FILE): it is planned and stored with its plan',
    );
  return plan;
}

/** Starts running the stored plan of `version`: wave 0, or the version is superseded or already converged. */
export async function processApply(
  rt: XsmRuntime,
  job: Job<ApplyJobData>,
): Promise<{ actions: number; waves: number; state: string }> {
  const { version } = job.data;
  const plan = await planOrFail(rt, version);
  if (!(await rt.applies.status(version))) {
    const current = await rt.sites.currentVersion();
    if (current > version) {
      // Its successor was planned from what ran when it was stored: running this one now would make that
      // plan stale. The newer version carries the change on.
      const summary = `version ${version} was superseded by version ${current} before it started; nothing was done`;
      await rt.applies.setStatus(version, { state: 'superseded', summary });
      return { actions: 0, waves: plan.waves, state: summary };
    }
    await rt.sites.markApplied(version);
    await rt.applies.setStatus(version, { state: 'applying' });
  }
  const state = await advance(rt, version, plan, 0);
  await job.updateProgress({ workflow: 'apply', step: 'enqueued', index: 1, total: 1, message: state });
  return { actions: plan.actions.length, waves: plan.waves, state };
}

/** A wave ended (each child completed or failed for good): record what each did, go on with the next. */
export async function processWave(rt: XsmRuntime, job: Job<WaveJobData>): Promise<string> {
  const { version, wave } = job.data;
  const plan = await planOrFail(rt, version);
  const known = await rt.applies.outcomes(version);
  const failures = await job.getIgnoredChildrenFailures();
  const failedReason = new Map<string, string>();
  for (const [key, reason] of Object.entries(failures)) failedReason.set(key.slice(key.lastIndexOf(':') + 1), reason);
  const outcomes = new Map<string, ActionOutcome>();
  for (const a of plan.actions.filter((x) => x.wave === wave && known.get(x.id)?.state !== 'blocked')) {
    const reason = failedReason.get(actionJobId(version, a));
    outcomes.set(a.id, reason === undefined ? { state: 'done' } : { state: 'failed', reason });
  }
  await rt.applies.record(version, outcomes);
  return advance(rt, version, plan, wave + 1);
}

/**
 * Enqueues the first wave from `fromWave` with an action that may run, recording as blocked those whose
 * dependencies failed or were blocked; when no wave is left, ends the apply.
 */
async function advance(rt: XsmRuntime, version: number, plan: StoredPlan, fromWave: number): Promise<string> {
  const outcomes = await rt.applies.outcomes(version);
  let site: Site | undefined;
  for (let wave = fromWave; wave < plan.waves; wave++) {
    const current = await rt.sites.currentVersion();
    if (current > version) return supersede(rt, version, plan, wave, current, outcomes);
    const { runnable, blocked } = byDependencies(
      plan.actions.filter((a) => a.wave === wave),
      outcomes,
    );
    await rt.applies.record(version, blocked);
    for (const [id, o] of blocked) outcomes.set(id, o);
    if (!runnable.length) continue;
    site ??= (await rt.sites.load(version)).site;
    await enqueueWave(rt, version, site, plan, wave, runnable);
    return `wave ${wave + 1} of ${plan.waves} enqueued (${runnable.length} action${runnable.length === 1 ? '' : 's'})`;
  }
  return finish(rt, version, plan, outcomes);
}

/** Splits a wave's actions into those that may run and those a failed or blocked dependency stops. */
export function byDependencies(
  actions: readonly Action[],
  outcomes: ReadonlyMap<string, ActionOutcome>,
): { runnable: Action[]; blocked: Map<string, ActionOutcome> } {
  const runnable: Action[] = [];
  const blocked = new Map<string, ActionOutcome>();
  for (const a of actions) {
    const stopper = a.dependsOn.find((d) => {
      const s = outcomes.get(d)?.state;
      return s === 'failed' || s === 'blocked';
    });
    if (!stopper) {
      runnable.push(a);
      continue;
    }
    const o = outcomes.get(stopper);
    const why =
      o?.state === 'failed'
        ? `${stopper} failed: ${o.reason}`
        : `${stopper} did not run (blocked by ${o?.state === 'blocked' ? o.blockedBy : '?'})`;
    blocked.set(a.id, { state: 'blocked', blockedBy: stopper, reason: why });
  }
  return { runnable, blocked };
}

async function supersede(
  rt: XsmRuntime,
  version: number,
  plan: StoredPlan,
  fromWave: number,
  current: number,
  outcomes: Map<string, ActionOutcome>,
): Promise<string> {
  const rest = new Map<string, ActionOutcome>();
  for (const a of plan.actions.filter((x) => x.wave >= fromWave && !outcomes.has(x.id)))
    rest.set(a.id, { state: 'blocked', blockedBy: `version ${current}`, reason: `version ${current} was stored` });
  await rt.applies.record(version, rest);
  const summary = `version ${version} was superseded by version ${current}; ${rest.size} action${rest.size === 1 ? '' : 's'} from wave ${fromWave + 1} on did not run (the newer plan carries the site on)`;
  await rt.applies.setStatus(version, { state: 'superseded', summary });
  return summary;
}

async function finish(
  rt: XsmRuntime,
  version: number,
  plan: StoredPlan,
  outcomes: Map<string, ActionOutcome>,
): Promise<string> {
  const failed = plan.actions.filter((a) => outcomes.get(a.id)?.state === 'failed').map((a) => a.id);
  const blocked = plan.actions.filter((a) => outcomes.get(a.id)?.state === 'blocked').map((a) => a.id);
  if (!failed.length && !blocked.length) {
    await rt.applies.setStatus(version, { state: 'converged' });
    await rt.applies.markConverged(version);
    const stored = await rt.sites.get(version);
    if (stored) rt.events.observe('xsm_converge_duration_seconds', {}, (Date.now() - stored.time) / 1000);
    return `version ${version} applied`;
  }
  const parts = [`${failed.length} failed (${someOf(failed)})`];
  if (blocked.length)
    parts.push(`${blocked.length} did not run because an action they depend on failed (${someOf(blocked)})`);
  let summary = `version ${version} partially applied: ${plan.actions.length - failed.length - blocked.length} of ${plan.actions.length} actions done, ${parts.join(', ')}`;
  if (failed.length > SUMMARY_IDS || blocked.length > SUMMARY_IDS)
    summary += `; every action's outcome: GET /api/site/versions/${version}/outcome`;
  await rt.applies.setStatus(version, { state: 'partially-failed', summary });
  return summary;
}

/** Action ids a summary names; the rest are counted (4,000 stalled creates made a 70 KB status line). */
export const SUMMARY_IDS = 20;

/** The first SUMMARY_IDS of `ids`, then how many more. */
export function someOf(ids: readonly string[]): string {
  if (ids.length <= SUMMARY_IDS) return ids.join(', ');
  return `${ids.slice(0, SUMMARY_IDS).join(', ')} and ${ids.length - SUMMARY_IDS} more`;
}

function actionData(idx: SiteIndex, version: number, action: Action): ActionJobData {
  const data: ActionJobData = { version, action };
  const needsTemplate = action.kind === 'create' || action.kind === 'reconfigure' || action.kind === 'migrate';
  if (needsTemplate && (action.kind !== 'migrate' || action.mode === 'cold'))
    data.template = idx.templates.get(action.spec.config);
  if (action.kind === 'migrate') data.targetAddress = idx.hosts.get(action.to)?.address;
  if (action.kind === 'migrate' && action.mode === 'cold') {
    const hosts = [action.from, action.to, ...(action.via ?? []).flatMap((v) => [v.from, v.to])];
    data.addresses = Object.fromEntries(hosts.map((h) => [h, idx.hosts.get(h)?.address ?? h]));
  }
  return data;
}

/**
 * Actions per flow (a test lowers it to see a wave in several flows). A flow is added as one MULTI, which
 * holds Redis for everyone, and the control worker's event loop while it is built: 100,000 children in one
 * flow held both past the job lock's renewal.
 */
export const waveFlow = { chunk: 1000 };

/**
 * Adds a wave: one flow when it is small. A bigger wave gets one child first, `wave-enqueue`, which adds the
 * actions to the wave in flows of waveFlow.chunk: the wave waits for that child, so it cannot start while
 * part of its actions are still to be added, and a crash mid-way retries the child, whose jobIds are the
 * same (an action already added, or already run, is not added twice).
 */
export async function enqueueWave(
  rt: XsmRuntime,
  version: number,
  site: Site,
  plan: StoredPlan,
  wave: number,
  actions: readonly Action[],
): Promise<void> {
  const parent = {
    name: 'wave',
    queueName: CONTROL_QUEUE,
    data: { version, wave, waves: plan.waves } satisfies WaveJobData,
    opts: { jobId: waveJobId(version, wave) },
  };
  if (actions.length <= waveFlow.chunk) {
    await rt.flows.add({ ...parent, children: await actionJobs(rt, version, site, actions) });
    return;
  }
  await rt.flows.add({
    ...parent,
    children: [
      {
        name: 'wave-enqueue',
        queueName: CONTROL_QUEUE,
        data: { version, wave } satisfies WaveEnqueueJobData,
        opts: { ...waveEnqueueJobOptions, jobId: waveEnqueueJobId(version, wave) },
      },
    ],
  });
}

/** Adds a big wave's actions to it, waveFlow.chunk at a time (see enqueueWave). */
export async function processWaveEnqueue(rt: XsmRuntime, job: Job<WaveEnqueueJobData>): Promise<number> {
  const { version, wave } = job.data;
  const parent = job.parent;
  if (!parent?.id)
    throw new PermanentError(
      `job ${job.id} adds the actions of wave ${wave + 1} of version ${version} but has no wave to add them to`,
      `apply the version again (xsm apply): its waves are enqueued again, with their parents`,
    );
  const plan = await planOrFail(rt, version);
  // The same actions as when the wave was enqueued: the outcomes of earlier waves do not change any more.
  const { runnable } = byDependencies(
    plan.actions.filter((a) => a.wave === wave),
    await rt.applies.outcomes(version),
  );
  const { site } = await rt.sites.load(version);
  const jobs = await actionJobs(rt, version, site, runnable);
  const to = { id: parent.id, queue: parent.queueKey };
  for (let i = 0; i < jobs.length; i += waveFlow.chunk)
    await rt.flows.addBulk(jobs.slice(i, i + waveFlow.chunk).map((j) => ({ ...j, opts: { ...j.opts, parent: to } })));
  return jobs.length;
}

/** One host-queue job per action, with what its workflow needs from the version's site. */
async function actionJobs(
  rt: XsmRuntime,
  version: number,
  site: Site,
  actions: readonly Action[],
): Promise<{ name: string; queueName: string; data: ActionJobData; opts: JobsOptions }[]> {
  const idx = indexSite(site);
  // The epochs the version was planned under (a version stored before epochs existed: the current ones).
  const epochs = (await rt.fence.plannedEpochs(version)) ?? (await rt.fence.epochs());
  const creates = actions.filter((a) => a.kind === 'create').map((a) => a.vm);
  const restarts = await restartsAmong(rt, version, creates);
  return actions.map((a) => ({
    name: a.kind,
    queueName: hostQueueName(actionHost(a)),
    data: {
      ...actionData(idx, version, a),
      epoch: epochs[actionHost(a)] ?? 0,
      ...(a.kind === 'create' ? { restart: restarts.has(a.vm) } : {}),
    },
    opts: { ...actionJobOptions, jobId: actionJobId(version, a) },
  }));
}
