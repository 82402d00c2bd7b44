// The control worker: turns applied versions into per-host jobs, wave by wave, and runs the rebalancer,
// the host health check, failover and rolling upgrades (each job routed by src/jobs/registry.ts). Any host may run it.

import { sitePowerResolver, type PowerResolver } from '../src/jobs/failover.ts';
import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { CONTROL_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import type { Logger } from '../src/lib/log.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { bullmqTelemetry } from '../src/lib/tracing.ts';
import { CONTROL_QUEUE } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';
import type { HostImageUpdater } from '../src/services/host-image-updater.ts';
import { imageUpdaterFor, upgradeMethodFromEnv } from '../src/services/image-updaters.ts';

export interface ControlWorkerOptions {
  /** Power control for fencing; default: each host's <Power> element (the simulator passes its own). */
  power?: PowerResolver;
  /** How a rolling upgrade updates a host; default as XSM_UPGRADE_METHOD says (in place, or redeploy). */
  updater?: HostImageUpdater;
  /** The images the redeploy updater deploys (default XSM_IMAGES_DIR or /var/lib/xsm/images). */
  imagesDir?: string;
  /** BullMQ's job lock (default 30 s): how soon another control worker takes over a dead one's job. */
  lockDurationMs?: number;
}

export function startControlWorker(rt: XsmRuntime, log: Logger, opts: ControlWorkerOptions = {}): WorkerSupervisor {
  const updater = opts.updater ?? imageUpdaterFor(rt, upgradeMethodFromEnv(), opts.imagesDir);
  const deps = { rt, log, power: opts.power ?? sitePowerResolver(rt), updater };
  // Supervised: replaced by a fresh worker each time Redis comes back after an outage.
  return new WorkerSupervisor({
    queue: CONTROL_QUEUE,
    processor: jobRouter(CONTROL_JOB_KINDS, deps, CONTROL_QUEUE),
    options: {
      connection: workerConnectionOptions(rt.config),
      prefix: rt.config.prefix,
      concurrency: 4,
      ...(opts.lockDurationMs
        ? { lockDuration: opts.lockDurationMs, stalledInterval: Math.max(500, Math.round(opts.lockDurationMs / 2)) }
        : {}),
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
