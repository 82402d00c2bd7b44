// Reading jobs back for people: the API's job list, `xsm jobs --watch`, retries. Works across the control
// queue and every host queue, newest first.

import type { Job, JobType } from 'bullmq';
import type { StepProgress } from '../lib/steps.ts';
import { actionHost, type Action } from '../site/actions.ts';
import type { ApplyState } from '../state/apply-store.ts';
import { actionJobId, hostQueueName } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';

import { JOB_STATES, type JobState } from '../jobs/job-states.ts';

export { JOB_STATES, type JobState };

export interface JobView {
  queue: string;
  id: string;
  name: string;
  state: string;
  vm?: string;
  version?: number;
  progress?: Partial<StepProgress>;
  attemptsMade: number;
  failedReason?: string;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
}

function view(queue: string, job: Job, state: string): JobView {
  const data = job.data as { version?: number; action?: { vm?: string } };
  const p =
    typeof job.progress === 'object' && job.progress
      ? (job.progress as Partial<StepProgress> & { journal?: unknown })
      : undefined;
  const { journal: _j, ...progress } = p ?? {};
  return {
    queue,
    id: job.id ?? '',
    name: job.name,
    state,
    ...(data?.action?.vm ? { vm: data.action.vm } : {}),
    ...(data?.version !== undefined ? { version: data.version } : {}),
    ...(p ? { progress } : {}),
    attemptsMade: job.attemptsMade,
    ...(job.failedReason ? { failedReason: job.failedReason } : {}),
    createdAt: job.timestamp,
    ...(job.processedOn ? { startedAt: job.processedOn } : {}),
    ...(job.finishedOn ? { finishedAt: job.finishedOn } : {}),
  };
}

export async function listJobs(
  rt: XsmRuntime,
  opts: { states?: readonly JobState[]; limit?: number; queue?: string } = {},
): Promise<JobView[]> {
  const states = opts.states ?? JOB_STATES;
  const limit = opts.limit ?? 200;
  const queues = opts.queue ? [rt.queue(opts.queue)] : await rt.allQueues();
  const out: JobView[] = [];
  for (const q of queues) {
    for (const state of states) {
      const jobs = await q.getJobs([state as JobType], 0, limit - 1, false);
      for (const j of jobs) if (j) out.push(view(q.name, j, state));
    }
  }
  return out.sort((a, b) => b.createdAt - a.createdAt || a.id.localeCompare(b.id)).slice(0, limit);
}

export async function getJob(rt: XsmRuntime, queue: string, id: string): Promise<JobView | undefined> {
  const job = await rt.queue(queue).getJob(id);
  if (!job) return undefined;
  return view(queue, job, await job.getState());
}

export class RetryError extends Error {
  constructor(
    message: string,
    readonly status: 404 | 409,
    readonly code: 'no-such-job' | 'not-failed' | 'superseded',
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * Retries a failed job from the step it failed at (its journal is kept in its progress). A job of a
 * version that a newer one superseded is refused: it would act on a picture of the site that is gone.
 */
export async function retryJob(rt: XsmRuntime, queue: string, id: string): Promise<JobView> {
  const job = await rt.queue(queue).getJob(id);
  if (!job) throw new RetryError(`no job ${id} in queue ${queue}`, 404, 'no-such-job');
  const state = await job.getState();
  if (state !== 'failed')
    throw new RetryError(`job ${id} is ${state}, not failed; only failed jobs can be retried`, 409, 'not-failed');
  const version = (job.data as { version?: unknown })?.version;
  const current = await rt.sites.currentVersion();
  if (typeof version === 'number' && version < current)
    throw new RetryError(
      `version ${version} was superseded by version ${current}; apply the current version instead`,
      409,
      'superseded',
      `xsm apply FILE (or POST /api/site/versions/${current}/apply) runs version ${current}'s plan, made from what runs now`,
    );
  await job.retry('failed');
  return view(queue, job, 'waiting');
}

/** How one action of a version's plan went, for people and scripts. */
export interface ActionOutcomeView {
  id: string;
  kind: Action['kind'];
  vm: string;
  host: string;
  wave: number;
  /** pending: its wave has not started yet (or the apply has not). running: its job has not ended. */
  outcome: 'done' | 'failed' | 'blocked' | 'pending' | 'running';
  reason?: string;
  blockedBy?: string;
  /** Where its job is: `xsm job retry QUEUE ID` for a failed one. */
  queue: string;
  jobId: string;
}

export interface VersionOutcome {
  version: number;
  /** not-started: stored with apply=0, or its apply job has not run yet. */
  state: ApplyState | 'not-started';
  summary?: string;
  actions: ActionOutcomeView[];
}

/** The run of a version's plan: its state and one line per action (done, failed, blocked by, ...). */
export async function versionOutcome(rt: XsmRuntime, version: number): Promise<VersionOutcome | undefined> {
  const plan = await rt.sites.plan(version);
  if (!plan) return undefined;
  const [status, outcomes] = await Promise.all([rt.applies.status(version), rt.applies.outcomes(version)]);
  const actions = await Promise.all(
    plan.actions.map(async (a): Promise<ActionOutcomeView> => {
      const queue = hostQueueName(actionHost(a));
      const jobId = actionJobId(version, a);
      const base = { id: a.id, kind: a.kind, vm: a.vm, host: actionHost(a), wave: a.wave, queue, jobId };
      const o = outcomes.get(a.id);
      if (o?.state === 'blocked') return { ...base, outcome: 'blocked', reason: o.reason, blockedBy: o.blockedBy };
      if (o?.state === 'done') return { ...base, outcome: 'done' };
      // Not recorded yet, or failed: its job says where it is now (a failed job may have been retried).
      const state = await rt.queue(queue).getJobState(jobId);
      if (state === 'completed') return { ...base, outcome: 'done' };
      if (o?.state === 'failed' && state === 'failed') return { ...base, outcome: 'failed', reason: o.reason };
      if (state === 'failed') {
        const job = await rt.queue(queue).getJob(jobId);
        return { ...base, outcome: 'failed', reason: job?.failedReason ?? 'failed' };
      }
      return { ...base, outcome: state === 'unknown' ? 'pending' : 'running' };
    }),
  );
  return {
    version,
    state: status?.state ?? 'not-started',
    ...(status?.summary ? { summary: status.summary } : {}),
    actions,
  };
}
