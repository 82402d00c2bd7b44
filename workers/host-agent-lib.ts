// The host agent: runs on each Dom0, consumes that host's queue (each job routed by the job registry to
// src/jobs/vm-action.ts, which runs its VM workflow against the local hypervisor), and reports observed
// state with a heartbeat. It also keeps the last applied site file on local disk, so a Dom0 knows its
// intended VMs even while Redis is unreachable.

import type { Worker } from 'bullmq';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hypervisor } from '../src/drivers/hypervisor/hypervisor.ts';
import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { HOST_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import { freshAfterCall, queueRemote, reportObserved, type VmActionDeps } from '../src/jobs/vm-action.ts';
import type { Logger } from '../src/lib/log.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { readSiteCopy, writeSiteCopy } from '../src/lib/site-copy.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import { ATTR, bullmqTelemetry, tracedDriver } from '../src/lib/tracing.ts';
import { hostQueueName, type ActionJobData } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';

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
}

/** A running agent: `worker` is the one taking jobs now (the supervisor replaces it after a Redis outage). */
export interface HostAgent {
  readonly worker: Worker;
  supervisor: WorkerSupervisor;
  close: () => Promise<void>;
}

export function startHostAgent(opts: HostAgentOptions): HostAgent {
  const { rt, log } = opts;
  const host = opts.hv.hostName;
  // Every toolstack call a span (`xl.migrate`, ...) when tracing is on; the driver itself otherwise.
  const hv = tracedDriver(opts.hv, 'xl', { [ATTR.host]: host });
  // The version of the copy on disk; read at the first heartbeat, so a restarted agent keeps a newer copy.
  let cachedVersion: number | undefined;
  const observe = freshAfterCall(() => reportObserved(rt, hv));
  const remote = queueRemote(rt, opts.partWaitMs ?? 600_000);
  // Each durable step's duration, as a histogram by workflow and step.
  const events = rt.events;
  const stepTimed = (workflow: string, step: string, seconds: number) =>
    events.observe('xsm_step_duration_seconds', { workflow, step }, seconds);
  const deps: VmActionDeps = { rt, hv, log, peer: opts.peer, remote, observe, stepTimed };
  // Supervised: replaced by a fresh worker each time Redis comes back after an outage.
  const supervisor = new WorkerSupervisor({
    queue: hostQueueName(host),
    processor: jobRouter(HOST_JOB_KINDS, deps, hostQueueName(host)),
    options: {
      connection: workerConnectionOptions(rt.config),
      prefix: rt.config.prefix,
      concurrency: opts.concurrency ?? 4,
      lockDuration: opts.lockDurationMs ?? 30000,
      stalledInterval: Math.max(1000, Math.floor((opts.lockDurationMs ?? 30000) / 2)),
      ...bullmqTelemetry(),
    },
    health: rt.health,
    log: log.child({ host }),
    setup: (worker) => recordJobMetrics(rt, worker, 'host', (job) => (job.data as ActionJobData).action.kind),
  });
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
        // Only ever newer: a Redis wiped or rebuilt empty (applied 0, or a lower number) must not overwrite
        // the copy a recovery needs.
        cachedVersion ??= await readSiteCopy(opts.cacheDir).then(
          (c) => c?.version ?? 0,
          (e: unknown) => {
            log.warn('the site copy on disk is unreadable; writing a new one', { host, error: errorMessage(e) });
            return 0;
          },
        );
        if (applied && applied > cachedVersion) {
          const stored = await rt.sites.get(applied);
          if (stored) {
            // The versioned, hashed copy a recovery reads back (src/lib/site-copy.ts); site.xml for people.
            await writeSiteCopy(opts.cacheDir, applied, stored.xml);
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
    get worker() {
      return supervisor.worker;
    },
    supervisor,
    close: async () => {
      clearInterval(timer);
      await supervisor.close();
    },
  };
}
