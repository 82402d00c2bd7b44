// The host agent: runs on each Dom0, consumes that host's queue, runs the VM workflows against the local
// hypervisor, and reports observed state with a heartbeat. It also keeps the last applied site file on
// local disk, so a Dom0 knows its intended VMs even while Redis is unreachable.

import { recordJobMetrics } from '../src/jobs/job-metrics.ts';
import { EventMetrics } from '../src/state/event-metrics-store.ts';
import { ATTR, bullmqTelemetry, inSpan, tracedDriver } from '../src/lib/tracing.ts';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HypervisorRefusal, type Hypervisor } from '../src/drivers/hypervisor/hypervisor.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Logger } from '../src/lib/log.ts';
import { closeWhenReady, workerConnectionOptions } from '../src/lib/redis.ts';
import { jobJournal, runSteps, type Rollback, type Step } from '../src/lib/steps.ts';
import { hostQueueName, partJobOptions, type ActionJobData } from '../src/jobs/queues.ts';
import type { XsmRuntime } from '../src/jobs/runtime.ts';
import { createSteps } from '../workflows/create-vm.ts';
import { migrateSteps } from '../workflows/migrate-vm.ts';
import { coldMoveRollback, coldMoveSteps, PartStillRunning } from '../workflows/move-vm-cold.ts';
import { reconfigureLiveSteps, reconfigureRestartSteps, restartRollback } from '../workflows/reconfigure-vm.ts';
import { removeSteps } from '../workflows/remove-vm.ts';
import type { RemoteActions, VmWorkflowContext } from '../workflows/steps-common.ts';

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

export function stepsFor(data: ActionJobData): {
  workflow: string;
  steps: Step<VmWorkflowContext>[];
  rollback?: Rollback<VmWorkflowContext>;
} {
  const a = data.action;
  switch (a.kind) {
    case 'create':
      return { workflow: 'create-vm', steps: createSteps };
    case 'remove':
      return { workflow: 'remove-vm', steps: removeSteps };
    case 'migrate':
      return a.mode === 'cold'
        ? { workflow: 'move-vm-cold', steps: coldMoveSteps, rollback: coldMoveRollback }
        : { workflow: 'migrate-vm', steps: migrateSteps };
    case 'reconfigure':
      return a.mode === 'live'
        ? { workflow: 'reconfigure-vm-live', steps: reconfigureLiveSteps }
        : { workflow: 'reconfigure-vm-restart', steps: reconfigureRestartSteps, rollback: restartRollback };
  }
}

/** Cold moves' parts: jobs on other hosts' queues, added once (by id) and waited for until they end. */
export function queueRemote(rt: XsmRuntime, waitMs: number): RemoteActions {
  const state: RemoteActions['state'] = async (host, jobId) => {
    const q = rt.hostQueue(host);
    const s = await q.getJobState(jobId);
    if (s === 'unknown') return undefined;
    if (s === 'completed') return { ok: true };
    if (s === 'failed') return { ok: false, reason: (await q.getJob(jobId))?.failedReason ?? 'failed' };
    return 'unfinished';
  };
  return {
    state,
    run: async (host, jobId, data) => {
      if ((await state(host, jobId)) === undefined)
        await rt.hostQueue(host).add(data.action.kind, data, { ...partJobOptions, jobId });
      const until = Date.now() + waitMs;
      for (;;) {
        const s = await state(host, jobId);
        if (s && s !== 'unfinished') return s;
        if (Date.now() > until)
          throw new Error(`still unfinished after ${Math.round(waitMs / 1000)} s; is ${host}'s agent running?`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

export async function reportObserved(rt: XsmRuntime, hv: Hypervisor): Promise<void> {
  const [info, domains] = await Promise.all([hv.info(), hv.list()]);
  await rt.observed.report({
    name: hv.hostName,
    heartbeatAt: Date.now(),
    totalMemMiB: info.totalMemMiB,
    freeMemMiB: info.freeMemMiB,
    nrCpus: info.nrCpus,
    domains: domains.filter((d) => d.domid !== 0),
  });
}

/**
 * Returns a function that resolves once `fn` has run *after* the call: a caller never gets a result
 * that started before it asked. Callers that arrive while a run is in flight share the next run, so a
 * burst of finishing jobs costs one or two reports, not one each, and yet every job completes only
 * after the host's observed state shows its effect (the planner trusts that state).
 */
export function freshAfterCall(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const p = fn().finally(() => {
      if (running === p) running = undefined;
    });
    running = p;
    return p;
  };
  return () => {
    if (!running) return start();
    if (!next) {
      next = running
        .catch(() => {})
        .then(() => {
          next = undefined;
          return start();
        });
    }
    return next;
  };
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
  const events = new EventMetrics(rt.redis, rt.config.prefix);
  const stepTimed = (workflow: string, step: string, seconds: number) =>
    events.observe('xsm_step_duration_seconds', { workflow, step }, seconds);
  const processor = (job: Job<ActionJobData>) =>
    inSpan(
      `${job.data.action.kind} ${job.data.action.vm}`,
      {
        [ATTR.host]: host,
        [ATTR.vm]: job.data.action.vm,
        [ATTR.version]: job.data.version,
        [ATTR.action]: job.data.action.id,
        [ATTR.job]: job.id ?? '',
      },
      () => runAction(job),
    );
  const runAction = async (job: Job<ActionJobData>) => {
    const { workflow, steps, rollback } = stepsFor(job.data);
    const jobLog = log.child({ host, job: job.id, vm: job.data.action.vm });
    const a = job.data.action;
    // What the target host will report once it runs the migrated VM (see recordArrival).
    const migrating = a.kind === 'migrate' && a.mode === 'live' ? await hv.find(a.vm) : undefined;
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    // A part still running on another host is never rolled back over (two copies of one disk image).
    const isFinal = (e: unknown) =>
      !(e instanceof PartStillRunning) &&
      (e instanceof UnrecoverableError || e instanceof HypervisorRefusal || lastAttempt);
    try {
      const ctx: VmWorkflowContext = { hv, data: job.data, peer: opts.peer, observed: rt.observed, remote };
      await runSteps(workflow, steps, ctx, jobJournal(job), jobLog, {
        ...(rollback ? { rollback, isFinal } : {}),
        onStepDone: stepTimed,
      });
      if (a.kind === 'migrate' && migrating) await rt.observed.recordArrival(a.to, { ...migrating, state: 'running' });
    } catch (e) {
      // Xen said no (no memory, over maxmem): retrying will not change its mind.
      if (e instanceof HypervisorRefusal)
        throw new PermanentError(e.message, 'change the site file or free resources on the host, then apply again');
      jobLog.warn('step failed', { error: e instanceof Error ? e.message : String(e), attempt: job.attemptsMade + 1 });
      throw e;
    } finally {
      await observe().catch((e: unknown) =>
        jobLog.warn('observed-state report failed', { error: e instanceof Error ? e.message : String(e) }),
      );
    }
    return `${workflow} ${job.data.action.vm} done`;
  };
  const worker = new Worker<ActionJobData>(hostQueueName(host), processor, {
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
