// What every worker records when a job ends: its kind, outcome and duration (xsm_jobs_finished_total,
// xsm_job_duration_seconds), and for migrations and deploys their own counters. Recorded by the process that
// ran the job, read by whichever API host Prometheus scrapes.

import type { Job, Worker } from 'bullmq';
import type { XsmRuntime } from '../runtime/runtime.ts';

export function recordJobMetrics(
  rt: XsmRuntime,
  worker: Worker,
  queueKind: 'control' | 'host' | 'deploy',
  kindOf: (job: Job) => string,
): void {
  const events = rt.events;
  const ended = (job: Job | undefined, outcome: 'completed' | 'failed') => {
    if (!job) return;
    const kind = kindOf(job);
    events.count('xsm_jobs_finished_total', { queue_kind: queueKind, job: kind, outcome });
    if (job.processedOn && job.finishedOn)
      events.observe(
        'xsm_job_duration_seconds',
        { queue_kind: queueKind, job: kind },
        (job.finishedOn - job.processedOn) / 1000,
      );
    // A failure that will be retried is not the end of a migration or a deploy; the last attempt's is.
    const final = outcome === 'completed' || job.attemptsMade >= (job.opts.attempts ?? 1);
    if (!final) return;
    const result = outcome === 'completed' ? 'done' : 'failed';
    if (queueKind === 'deploy') events.count('xsm_deploys_total', { outcome: result });
    const action = (job.data as { action?: { kind?: string; mode?: string } }).action;
    if (queueKind === 'host' && action?.kind === 'migrate')
      events.count('xsm_migrations_total', { mode: action.mode ?? 'live', outcome: result });
  };
  worker.on('completed', (job) => ended(job, 'completed'));
  worker.on('failed', (job) => ended(job, 'failed'));
}
