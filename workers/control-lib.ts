// The control worker: turns applied versions into per-host jobs, wave by wave. Any host may run it.

import { Worker, type Job } from 'bullmq';
import type { Logger } from '../src/lib/log.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { processApply, processWave } from '../src/jobs/apply.ts';
import { processRebalance, type RebalanceRequest } from '../src/rebalance/rebalance-job.ts';
import { CONTROL_QUEUE, type ApplyJobData, type WaveJobData } from '../src/jobs/queues.ts';
import type { XsmRuntime } from '../src/jobs/runtime.ts';

export function startControlWorker(rt: XsmRuntime, log: Logger): Worker {
  const worker = new Worker(
    CONTROL_QUEUE,
    async (job: Job) => {
      if (job.name === 'apply') return processApply(rt, job as Job<ApplyJobData>);
      if (job.name === 'wave') return processWave(rt, job as Job<WaveJobData>);
      if (job.name === 'rebalance') return processRebalance(rt, job as Job<RebalanceRequest>);
      throw new Error(`unknown control job ${job.name}`);
    },
    { connection: workerConnectionOptions(rt.config), prefix: rt.config.prefix, concurrency: 4 },
  );
  worker.on('failed', (job, e) => log.warn('control job failed', { job: job?.id, error: e.message }));
  worker.on('error', (e) => log.error('control worker error', { error: e.message }));
  return worker;
}
