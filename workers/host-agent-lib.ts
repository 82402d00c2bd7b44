// The host agent: runs on each Dom0, consumes that host's queue (each job routed by the job registry to
// src/jobs/vm-action.ts, which runs its VM workflow against the local hypervisor), and reports observed
// state with a heartbeat. It also keeps the last applied site file on local disk, so a Dom0 knows its
// intended VMs even while Redis is unreachable.

import type { Job, Worker } from 'bullmq';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Hypervisor } from '../src/drivers/hypervisor/hypervisor.ts';
import type { Storage } from '../src/drivers/storage/storage.ts';
import { AgentFence, type LeaseOptions } from '../src/jobs/agent-fence.ts';
import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { HOST_JOB_KINDS, jobRouter } from '../src/jobs/registry.ts';
import { freshAfterCall, queueRemote, reportObserved, type VmActionDeps } from '../src/jobs/vm-action.ts';
import type { Logger } from '../src/lib/log.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { readSiteCopy, writeSiteCopy } from '../src/lib/site-copy.ts';
import { workerConnectionOptions } from '../src/lib/redis.ts';
import type { Redis } from 'ioredis';
import { ATTR, bullmqTelemetry, tracedDriver } from '../src/lib/tracing.ts';
import { hostQueueName, type ActionJobData } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { WorkerSupervisor, type SupervisedWorker } from '../src/runtime/worker-supervisor.ts';
import type { MigrationLimits } from '../src/state/migration-slot-store.ts';
import type { CopyAnswer } from '../src/state/recovery-store.ts';

export interface HostAgentOptions {
  rt: XsmRuntime;
  hv: Hypervisor;
  /** The host's disks and pools (ShellStorage on a Dom0, SimulatedStorage with the simulator). */
  storage?: Storage;
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
  /** The fencing epoch this agent last joined under; default: read from cacheDir, else the stored one. */
  epoch?: number;
  /** Keep a self-fence lease (src/jobs/agent-fence.ts); none by default. */
  lease?: LeaseOptions;
  /** Live-migration limits (site-wide/source/target, default 4/1/2): give every agent the same. */
  migrationLimits?: MigrationLimits;
  /**
   * A connection (maxRetriesPerRequest: null) the job worker shares for its non-blocking commands. Only for
   * processes that host many simulated hosts' agents (a scale run): each host then holds one connection
   * to Redis (its blocking one) instead of two. A real Dom0's agent has its own.
   */
  workerConnection?: Redis;
}

/**
 * The host queue's supervised worker as an agent runs it: its options (lock, stalled check, concurrency,
 * connection), job metrics and logger, around `processor`. bench/apply.ts builds its no-op agents from it,
 * so they measure the same worker machinery.
 */
export function hostWorkerSpec(
  opts: Pick<HostAgentOptions, 'rt' | 'log' | 'concurrency' | 'lockDurationMs' | 'workerConnection'>,
  host: string,
  processor: SupervisedWorker['processor'],
): SupervisedWorker {
  const { rt } = opts;
  const lockDuration = opts.lockDurationMs ?? 30000;
  return {
    queue: hostQueueName(host),
    processor,
    options: {
      connection: opts.workerConnection ?? workerConnectionOptions(rt.config),
      prefix: rt.config.prefix,
      concurrency: opts.concurrency ?? 4,
      lockDuration,
      stalledInterval: Math.max(1000, Math.floor(lockDuration / 2)),
      ...bullmqTelemetry(),
    },
    health: rt.health,
    log: opts.log.child({ host }),
    setup: (worker) => recordJobMetrics(rt, worker, 'host', (job) => (job.data as ActionJobData).action.kind),
  };
}

async function cachedEpoch(dir: string | undefined): Promise<number | undefined> {
  if (!dir) return undefined;
  const raw = await readFile(join(dir, 'epoch'), 'utf8').catch(() => undefined);
  return raw !== undefined && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : undefined;
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
  const observe = freshAfterCall(() => reportObserved(rt, hv, opts.storage));
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
    ...(opts.storage ? { storage: opts.storage } : {}),
    ...(opts.migrationLimits ? { migrationLimits: opts.migrationLimits } : {}),
  };
  // Kept on local disk so a restarted agent knows it was fenced; a disk that refuses it must not stop the beat.
  const saveEpoch = async (epoch: number) => {
    if (!opts.cacheDir) return;
    await mkdir(opts.cacheDir, { recursive: true })
      .then(() => writeFile(join(opts.cacheDir!, 'epoch'), String(epoch)))
      .catch((e: unknown) => log.warn('could not keep the fencing epoch on disk', { host, error: errorMessage(e) }));
  };
  const fence = cachedEpoch(opts.cacheDir).then(
    (cached) => new AgentFence(rt, hv, log, opts.epoch ?? cached, opts.lease, saveEpoch),
  );
  const route = jobRouter(HOST_JOB_KINDS, deps, hostQueueName(host));
  // Every job first shows its fencing epoch: none runs on an agent that was fenced and has not rejoined.
  const admitted = async (job: Job) => {
    await (await fence).admit((job.data as ActionJobData).epoch);
    return route(job);
  };
  // Supervised: replaced by a fresh worker each time Redis comes back after an outage.
  const supervisor = new WorkerSupervisor(hostWorkerSpec(opts, host, admitted));
  // `xsm recover` asks for the copy on disk (src/services/recovery.ts): answered once per request, after this
  // beat's report, so the recovery finds the host's observed state beside its copy.
  let answeredRecovery: string | undefined;
  const answerRecovery = async () => {
    const id = await rt.recovery.pending();
    if (!id || id === answeredRecovery) return;
    const epoch = (await fence).joinedEpoch;
    const answer: CopyAnswer = { host, ...(epoch !== undefined ? { epoch } : {}) };
    if (!opts.cacheDir) answer.problem = 'this agent keeps no site copy (it runs without a cache directory)';
    else
      try {
        const copy = await readSiteCopy(opts.cacheDir);
        if (copy) answer.copy = copy;
      } catch (e) {
        answer.problem = errorMessage(e);
      }
    await rt.recovery.answer(id, answer);
    answeredRecovery = id;
    log.info('answered a recovery with the site copy on disk', { host, version: answer.copy?.version ?? 0 });
  };
  const beat = async () => {
    if (opts.publishMetrics) {
      await opts
        .publishMetrics()
        .catch((e: unknown) =>
          log.warn('publishing metrics to Ganglia failed', { host, error: e instanceof Error ? e.message : String(e) }),
        );
    }
    try {
      if (!(await (await fence).beat())) return;
      await observe();
      await answerRecovery();
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
  let watchdog: NodeJS.Timeout | undefined;
  let closed = false;
  void fence.then((f) => {
    const every = f.watchdogEveryMs;
    if (every !== undefined && !closed)
      watchdog = setInterval(() => {
        f.watchdog().catch((e: unknown) => log.error('self-fence failed', { host, error: errorMessage(e) }));
      }, every);
  });
  return {
    get worker() {
      return supervisor.worker;
    },
    supervisor,
    close: async () => {
      closed = true;
      clearInterval(timer);
      clearInterval(watchdog);
      await supervisor.close();
    },
  };
}
