// The control worker: turns applied versions into per-host jobs, wave by wave, and runs the rebalancer,
// the host health check and failover (each job routed by src/jobs/registry.ts). Any host may run it.

import { sitePowerResolver, type PowerResolver } from '../src/jobs/failover.ts';
import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { CONTROL_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import type { Logger } from '../src/lib/log.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { bullmqTelemetry } from '../src/lib/tracing.ts';
import { CONTROL_QUEUE } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';

export interface ControlWorkerOptions {
  /** Power control for fencing; default: each host's <Power> element (the simulator passes its own). */
  power?: PowerResolver;
}

export function startControlWorker(rt: XsmRuntime, log: Logger, opts: ControlWorkerOptions = {}): WorkerSupervisor {
  const deps = { rt, log, power: opts.power ?? sitePowerResolver(rt) };
  // Supervised: replaced by a fresh worker each time Redis comes back after an outage.
  return new WorkerSupervisor({
    queue: CONTROL_QUEUE,
    processor: jobRouter(CONTROL_JOB_KINDS, deps, CONTROL_QUEUE),
    options: {
      connection: workerConnectionOptions(rt.config),
      prefix: rt.config.prefix,
      concurrency: 4,
      ...bullmqTelemetry(),
    },
    health: rt.health,
    log,
    setup: (worker) => {
      worker.on('failed', (job, e) => log.warn('control job failed', { job: job?.id, error: e.message }));
      recordJobMetrics(rt, worker, 'control', (job) => job.name);
    },
  });
}
