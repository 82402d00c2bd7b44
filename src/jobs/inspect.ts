// Reading jobs back for people: the API's job list, `xsm jobs --watch`, retries. Works across the control
// queue and every host queue, newest first.

import type { Job, JobType } from 'bullmq';
import type { StepProgress } from '../lib/steps.ts';
import type { XsmRuntime } from './runtime.ts';

export const JOB_STATES = [
  'active',
  'waiting',
  'waiting-children',
  'delayed',
  'prioritized',
  'failed',
  'completed',
] as const;
export type JobState = (typeof JOB_STATES)[number];

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
  ) {
    super(message);
  }
}

/** Retries a failed job from the step it failed at (its journal is kept in its progress). */
export async function retryJob(rt: XsmRuntime, queue: string, id: string): Promise<JobView> {
  const job = await rt.queue(queue).getJob(id);
  if (!job) throw new RetryError(`no job ${id} in queue ${queue}`, 404);
  const state = await job.getState();
  if (state !== 'failed')
    throw new RetryError(`job ${id} is ${state}, not failed; only failed jobs can be retried`, 409);
  await job.retry('failed');
  return view(queue, job, 'waiting');
}
