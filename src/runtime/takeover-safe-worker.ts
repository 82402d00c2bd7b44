// BullMQ's worker renews its jobs' locks through a lock manager that tracks them by job id. A job whose lock
// lapsed (a starved or frozen process) is handed over by the stalled-job check, most often to the same worker
// (a host queue has one agent), which then runs it twice at once: the takeover's tracking replaces the first
// run's, and the first run ending deletes it. The takeover's lock was then renewed no more; it lapsed in turn
// and BullMQ failed the job as stalled twice. Since the step journal is fenced (src/lib/steps.ts), the first
// run ends at its next journal write, often right as the takeover starts. This worker tracks the runs of each
// job, and when one ends while another still runs, tracks the latest (the job's owner) again.

import { Worker, type Job } from 'bullmq';

export class TakeoverSafeWorker extends Worker {
  /** The lock tokens of the runs going on in this worker, per job id, in the order they started. */
  private readonly runs = new Map<string, Set<string>>();

  override async processJob(job: Job, token: string, fetchNextCallback?: () => boolean): Promise<void | Job> {
    const id = job.id;
    if (!id) return super.processJob(job, token, fetchNextCallback);
    const runs = this.runs.get(id) ?? new Set<string>();
    this.runs.set(id, runs);
    runs.add(token);
    try {
      return await super.processJob(job, token, fetchNextCallback);
    } finally {
      // BullMQ has untracked the job by its id, whichever run that entry was for.
      runs.delete(token);
      const owner = [...runs].at(-1);
      if (owner === undefined) this.runs.delete(id);
      else this.lockManager.trackJob(id, owner, Date.now());
    }
  }
}
