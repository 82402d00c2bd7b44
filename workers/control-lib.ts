// The control worker: turns applied versions into per-host jobs, wave by wave, and runs the rebalancer,
// the host health check and failover. Any host may run it.

import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { ATTR, bullmqTelemetry, inSpan } from '../src/lib/tracing.ts';
import { Worker, type Job } from 'bullmq';
import type { Logger } from '../src/lib/log.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { processApply, processWave } from '../src/jobs/apply.ts';
import { processRebalance, type RebalanceRequest } from '../src/rebalance/rebalance-job.ts';
import { CONTROL_QUEUE, type ApplyJobData, type WaveJobData } from '../src/jobs/queues.ts';
import type { XsmRuntime } from '../src/jobs/runtime.ts';
import {
  processFailover,
  processFailoverCheck,
  sitePowerResolver,
  type PowerResolver,
} from '../src/failover/failover-job.ts';
import type { FailoverJobData, FailoverPolicy } from '../src/failover/health.ts';

export interface ControlWorkerOptions {
  /** Power control for fencing; default: each host's <Power> element (the simulator passes its own). */
  power?: PowerResolver;
}

export function startControlWorker(rt: XsmRuntime, log: Logger, opts: ControlWorkerOptions = {}): Worker {
  const power = opts.power ?? sitePowerResolver(rt);
  const worker = new Worker(
    CONTROL_QUEUE,
    async (job: Job) => {
      if (job.name === 'apply')
        return inSpan('apply', { [ATTR.version]: (job.data as ApplyJobData).version, [ATTR.job]: job.id ?? '' }, () =>
          processApply(rt, job as Job<ApplyJobData>),
        );
      if (job.name === 'wave') return processWave(rt, job as Job<WaveJobData>);
      if (job.name === 'rebalance') return processRebalance(rt, job as Job<RebalanceRequest>);
      if (job.name === 'failover-check') return processFailoverCheck(rt, job as Job<Partial<FailoverPolicy>>, log);
      if (job.name === 'failover') return processFailover(rt, job as Job<FailoverJobData>, power, log);
      throw new Error(`unknown control job ${job.name}`);
    },
    { connection: workerConnectionOptions(rt.config), prefix: rt.config.prefix, concurrency: 4, ...bullmqTelemetry() },
  );
  worker.on('failed', (job, e) => log.warn('control job failed', { job: job?.id, error: e.message }));
  recordJobMetrics(rt, worker, 'control', (job) => job.name);
  worker.on('error', (e) => log.error('control worker error', { error: e.message }));
  return worker;
}
