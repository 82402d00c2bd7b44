// The deploy worker: consumes the deploy queue on the machine that serves PXE and the images. Its
// concurrency is high on purpose: a deploy job mostly waits (for a boot, for the multicast round), and
// the machines of one session must all be in their transfer step at once.

import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { bullmqTelemetry } from '../src/lib/tracing.ts';
import { DEPLOY_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { DEPLOY_QUEUE } from '../src/runtime/queues.ts';
import { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';
import type { DeployEnv } from '../workflows/deploy-host.ts';

export function startDeployWorker(
  env: DeployEnv,
  opts: { concurrency?: number; lockDurationMs?: number; stalledIntervalMs?: number } = {},
): WorkerSupervisor {
  // Supervised: replaced by a fresh worker each time Redis comes back after an outage.
  return new WorkerSupervisor({
    queue: DEPLOY_QUEUE,
    processor: jobRouter(DEPLOY_JOB_KINDS, env, DEPLOY_QUEUE),
    options: {
      ...bullmqTelemetry(),
      connection: workerConnectionOptions(env.rt.config),
      prefix: env.rt.config.prefix,
      concurrency: opts.concurrency ?? 64,
      lockDuration: opts.lockDurationMs ?? 30000,
      stalledInterval: opts.stalledIntervalMs ?? opts.lockDurationMs ?? 30000,
      // A deploy outlives worker restarts: a job whose worker died is picked up again (at its step), not
      // failed as "stalled" after the first time.
      maxStalledCount: 10,
    },
    health: env.rt.health,
    log: env.log,
    setup: (worker) => {
      worker.on('failed', (job, e) =>
        env.log.warn('deploy job failed', { job: job?.id, attempt: job?.attemptsMade, error: e.message }),
      );
      recordJobMetrics(env.rt, worker, 'deploy', () => 'deploy');
    },
  });
}
