// Applying a site version: the plan becomes one BullMQ flow per wave. A wave's parent job (on the
// control queue) completes only when all its actions did; processing it enqueues the next wave. A child
// that fails for good fails its wave (failParentOnFailure), so later waves never run on a wrong premise,
// while the other actions of the same wave, on other hosts, go on.

import type { Job } from 'bullmq';
import type { Action, Plan } from '../site/actions.ts';
import { actionHost } from '../site/actions.ts';
import { indexSite, type Site } from '../site/model.ts';
import { planChanges } from '../site/plan.ts';
import { PermanentError } from '../lib/errors.ts';
import {
  actionJobId,
  actionJobOptions,
  applyJobId,
  CONTROL_QUEUE,
  hostQueueName,
  waveJobId,
  type ActionJobData,
  type ApplyJobData,
  type WaveJobData,
} from './queues.ts';
import type { XsmRuntime } from './runtime.ts';

export async function enqueueApply(
  rt: XsmRuntime,
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

function planKey(rt: XsmRuntime, version: number) {
  return `${rt.config.prefix}:plan:v${version}`;
}

export async function storedPlan(rt: XsmRuntime, version: number): Promise<Plan | undefined> {
  const v = await rt.redis.get(planKey(rt, version));
  return v ? (JSON.parse(v) as Plan) : undefined;
}

/** Plans `version` against the last applied version and what agents observe, stores the plan, enqueues wave 0. */
export async function processApply(
  rt: XsmRuntime,
  job: Job<ApplyJobData>,
): Promise<{ actions: number; waves: number }> {
  const { version } = job.data;
  // A retried apply job re-uses the plan it stored, so its job ids stay the same.
  let plan = await storedPlan(rt, version);
  const { site } = await rt.sites.load(version);
  if (!plan) {
    const appliedVersion = await rt.sites.appliedVersion();
    if (appliedVersion > version)
      throw new PermanentError(
        `version ${version} is older than the applied version ${appliedVersion}`,
        'submit the content again as a new version to roll back',
      );
    const current = appliedVersion ? (await rt.sites.load(appliedVersion)).site : undefined;
    const observed = await rt.observed.all();
    plan = planChanges(current, site, Object.keys(observed.hosts).length ? observed : undefined);
    await rt.redis.set(
      planKey(rt, version),
      JSON.stringify(plan, (k, v) => (k === 'pos' ? undefined : v)),
    );
    await rt.sites.markApplied(version);
  }
  if (plan.waves > 0) await enqueueWave(rt, version, site, plan, 0);
  else await rt.redis.set(`${rt.config.prefix}:site:converged`, String(version));
  await job.updateProgress({
    workflow: 'apply',
    step: 'enqueued',
    index: 1,
    total: 1,
    message: `${plan.actions.length} actions in ${plan.waves} waves`,
  });
  return { actions: plan.actions.length, waves: plan.waves };
}

function actionData(idx: ReturnType<typeof indexSite>, version: number, action: Action): ActionJobData {
  const data: ActionJobData = { version, action };
  if (action.kind === 'create' || action.kind === 'reconfigure') data.template = idx.templates.get(action.spec.config);
  if (action.kind === 'migrate') data.targetAddress = idx.hosts.get(action.to)?.address;
  return data;
}

export async function enqueueWave(
  rt: XsmRuntime,
  version: number,
  site: Site,
  plan: Plan,
  wave: number,
): Promise<void> {
  const actions = plan.actions.filter((a) => a.wave === wave);
  const idx = indexSite(site);
  await rt.flows.add({
    name: 'wave',
    queueName: CONTROL_QUEUE,
    data: { version, wave, waves: plan.waves } satisfies WaveJobData,
    opts: { jobId: waveJobId(version, wave) },
    children: actions.map((a) => ({
      name: a.kind,
      queueName: hostQueueName(actionHost(a)),
      data: actionData(idx, version, a),
      opts: { ...actionJobOptions, jobId: actionJobId(version, a) },
    })),
  });
}

/** A wave finished (all its children completed): start the next one, or mark the version converged. */
export async function processWave(rt: XsmRuntime, job: Job<WaveJobData>): Promise<string> {
  const { version, wave, waves } = job.data;
  if (wave + 1 < waves) {
    const plan = await storedPlan(rt, version);
    if (!plan) throw new PermanentError(`plan of version ${version} is missing from Redis`);
    const { site } = await rt.sites.load(version);
    await enqueueWave(rt, version, site, plan, wave + 1);
    return `wave ${wave + 1} of ${waves} enqueued`;
  }
  await rt.redis.set(`${rt.config.prefix}:site:converged`, String(version));
  return `version ${version} applied`;
}

export async function convergedVersion(rt: XsmRuntime): Promise<number> {
  return Number((await rt.redis.get(`${rt.config.prefix}:site:converged`)) ?? 0);
}
