// The host agent: runs on each Dom0, consumes that host's queue (each job routed by the job registry to
// src/jobs/vm-action.ts, which runs its VM workflow against the local hypervisor), and reports observed
// state with a heartbeat. It also keeps the last applied site file on local disk, so a Dom0 knows its
// intended VMs even while Redis is unreachable.

import { Worker } from 'bullmq';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hypervisor } from '../src/drivers/hypervisor/hypervisor.ts';
import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { HOST_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import { freshAfterCall, queueRemote, reportObserved, type VmActionDeps } from '../src/jobs/vm-action.ts';
import type { Logger } from '../src/lib/log.ts';
import { closeWhenReady, workerConnectionOptions } from '../src/lib/redis.ts';
import { ATTR, bullmqTelemetry, tracedDriver } from '../src/lib/tracing.ts';
import { hostQueueName, type ActionJobData } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import type { MigrationLimits } from '../src/state/migration-slot-store.ts';

export interface HostAgentOptions {
  rt: XsmRuntime;
  hv: Hypervisor;
  log: Logger;
  concurrency?: number;
  heartbeatMs?: number;
  /** BullMQ lock duration: how soon a job held by a dead agent is taken over. */
  lockDurationMs?: number;
  cacheDir?: string;
  peer?: (host: string) => Hypervisor | undefined;
  /** Called on each heartbeat: publishes host and VM metrics to Ganglia (gmetric). */
  publishMetrics?: () => Promise<unknown>;
  /** How long a cold move waits for its part on another host before it retries (default 10 min). */
  partWaitMs?: number;
  /** Live-migration limits (site-wide/source/target, default 4/1/2): give every agent the same. */
  migrationLimits?: MigrationLimits;
}

export function startHostAgent(opts: HostAgentOptions): { worker: Worker; close: () => Promise<void> } {
  const { rt, log } = opts;
  const host = opts.hv.hostName;
  // Every toolstack call a span (`xl.migrate`, ...) when tracing is on; the driver itself otherwise.
  const hv = tracedDriver(opts.hv, 'xl', { [ATTR.host]: host });
  let cachedVersion = 0;
  const observe = freshAfterCall(() => reportObserved(rt, hv));
  const remote = queueRemote(rt, opts.partWaitMs ?? 600_000);
  // Each durable step's duration, as a histogram by workflow and step.
  const events = rt.events;
  const stepTimed = (workflow: string, step: string, seconds: number) =>
    events.observe('xsm_step_duration_seconds', { workflow, step }, seconds);
  const deps: VmActionDeps = {
    rt,
    hv,
    log,
    peer: opts.peer,
    remote,
    observe,
    stepTimed,
    ...(opts.migrationLimits ? { migrationLimits: opts.migrationLimits } : {}),
  };
  const worker = new Worker(hostQueueName(host), jobRouter(HOST_JOB_KINDS, deps, hostQueueName(host)), {
    connection: workerConnectionOptions(rt.config),
    prefix: rt.config.prefix,
    concurrency: opts.concurrency ?? 4,
    lockDuration: opts.lockDurationMs ?? 30000,
    stalledInterval: Math.max(1000, Math.floor((opts.lockDurationMs ?? 30000) / 2)),
    ...bullmqTelemetry(),
  });
  worker.on('error', (e) => log.error('worker error', { host, error: e.message }));
  recordJobMetrics(rt, worker, 'host', (job) => (job.data as ActionJobData).action.kind);
  const beat = async () => {
    if (opts.publishMetrics) {
      await opts
        .publishMetrics()
        .catch((e: unknown) =>
          log.warn('publishing metrics to Ganglia failed', { host, error: e instanceof Error ? e.message : String(e) }),
        );
    }
    try {
      await observe();
      if (opts.cacheDir) {
        const applied = await rt.sites.appliedVersion();
        if (applied && applied !== cachedVersion) {
          const stored = await rt.sites.get(applied);
          if (stored) {
            await mkdir(opts.cacheDir, { recursive: true });
            await writeFile(join(opts.cacheDir, 'site.xml'), stored.xml);
            await writeFile(join(opts.cacheDir, 'site.version'), String(applied));
            cachedVersion = applied;
          }
        }
      }
    } catch (e) {
      log.warn('heartbeat failed', { host, error: e instanceof Error ? e.message : String(e) });
    }
  };
  void beat();
  const timer = setInterval(beat, opts.heartbeatMs ?? 5000);
  return {
    worker,
    close: async () => {
      clearInterval(timer);
      await closeWhenReady(worker);
    },
  };
}
