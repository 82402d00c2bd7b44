// A host queue's jobs: one VM action (create, remove, migrate, reconfigure, or a cold move's part) run as
// its workflow's durable steps against the host's hypervisor. The host agent (workers/host-agent-lib.ts)
// builds the dependencies once and the registry routes each job here.

import { UnrecoverableError, type Job } from 'bullmq';
import { HypervisorRefusal, type Hypervisor } from '../drivers/hypervisor/hypervisor.ts';
import { StorageRefusal, type Storage } from '../drivers/storage/storage.ts';
import { JobLostError, PermanentError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { jobJournal, runSteps, type Rollback, type Step } from '../lib/steps.ts';
import { ATTR, inSpan } from '../lib/tracing.ts';
import { partJobOptions, type ActionJobData } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { createSteps } from '../../workflows/create-vm.ts';
import { migrateSteps } from '../../workflows/migrate-vm.ts';
import { coldMoveRollback, coldMoveSteps, PartStillRunning } from '../../workflows/move-vm-cold.ts';
import { reconfigureLiveSteps, reconfigureRestartSteps, restartRollback } from '../../workflows/reconfigure-vm.ts';
import { removeSteps } from '../../workflows/remove-vm.ts';
import type { RemoteActions, VmWorkflowContext } from '../../workflows/steps-common.ts';
import { DEFAULT_MIGRATION_LIMITS, type MigrationLimits } from '../state/migration-slot-store.ts';
import { holdMigrationSlot, type SlotTiming } from './migration-slot.ts';
import { isRestart, recordMigrationEnd, recordMigrationStart, recordRestart } from './migration-record.ts';

/** What a VM action needs from the agent that runs it, built once per agent. */
export interface VmActionDeps {
  rt: XsmRuntime;
  /** The host's hypervisor (traced when tracing is on). */
  hv: Hypervisor;
  /** The host's disks and pools, when the agent has a storage driver. */
  storage?: Storage;
  log: Logger;
  peer?: (host: string) => Hypervisor | undefined;
  remote: RemoteActions;
  /** Reports the host's observed state; resolves only with a report made after the call. */
  observe: () => Promise<void>;
  /** Records one durable step's duration. */
  stepTimed: (workflow: string, step: string, seconds: number) => void;
  /** Live migrations site-wide, per source and per target (default 4/1/2); the same on every agent. */
  migrationLimits?: MigrationLimits;
  slotTiming?: SlotTiming;
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

/** The pools of the current site version, which a host's storage driver reports on. */
async function sitePools(rt: XsmRuntime) {
  const v = await rt.sites.currentVersion();
  return v ? ((await rt.sites.load(v)).site.pools ?? []) : [];
}

export async function reportObserved(rt: XsmRuntime, hv: Hypervisor, storage?: Storage): Promise<void> {
  // Config files that cannot be listed are left out of the report (not reported as none): the planner
  // then says it could not check them, rather than refusing every VM that names one.
  const [info, domains, pools, cfg] = await Promise.all([
    hv.info(),
    hv.list(),
    storage ? sitePools(rt).then((p) => (p.length ? storage.report(p) : undefined)) : undefined,
    hv.configFiles().catch(() => undefined),
  ]);
  await rt.observed.report({
    name: hv.hostName,
    heartbeatAt: Date.now(),
    totalMemMiB: info.totalMemMiB,
    freeMemMiB: info.freeMemMiB,
    nrCpus: info.nrCpus,
    domains: domains.filter((d) => d.domid !== 0),
    ...(pools ? { pools } : {}),
    ...(cfg ? { configDir: cfg.dir, configFiles: cfg.files } : {}),
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

export function processVmAction(deps: VmActionDeps, job: Job<ActionJobData>): Promise<string> {
  const a = job.data.action;
  return inSpan(
    `${a.kind} ${a.vm}`,
    {
      [ATTR.host]: deps.hv.hostName,
      [ATTR.vm]: a.vm,
      [ATTR.version]: job.data.version,
      [ATTR.action]: a.id,
      [ATTR.job]: job.id ?? '',
    },
    () => runVmAction(deps, job),
  );
}

async function runVmAction(deps: VmActionDeps, job: Job<ActionJobData>): Promise<string> {
  const { hv, rt } = deps;
  const { workflow, steps, rollback } = stepsFor(job.data);
  const a = job.data.action;
  const jobLog = deps.log.child({ host: hv.hostName, job: job.id, vm: a.vm });
  // What the target host will report once it runs the migrated VM (see recordArrival).
  const migrating = a.kind === 'migrate' && a.mode === 'live' ? await hv.find(a.vm) : undefined;
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  // A part still running on another host is never rolled back over (two copies of one disk image).
  const isFinal = (e: unknown) =>
    !(e instanceof PartStillRunning) &&
    !(e instanceof JobLostError) &&
    (e instanceof UnrecoverableError || e instanceof HypervisorRefusal || e instanceof StorageRefusal || lastAttempt);
  // A live migration waits for a slot within the site's limits before anything else, check-plan included.
  const release =
    a.kind === 'migrate' && a.mode === 'live'
      ? await holdMigrationSlot(
          rt.migrationSlots,
          { id: job.id ?? a.id, from: a.from, to: a.to },
          deps.migrationLimits ?? DEFAULT_MIGRATION_LIMITS,
          jobLog,
          deps.slotTiming,
        )
      : undefined;
  const started = Date.now();
  let lost = false;
  if (a.kind === 'migrate') await recordMigrationStart(rt, job.data, a, started, jobLog);
  // A failover restart is a migration of its own kind: its record was written when it was placed.
  const restart = a.kind === 'create' && (job.data.restart ?? (await isRestart(rt, job.data.version, a.vm)));
  if (restart) await recordRestart(rt, job.data.version, a.vm, started, undefined, true, jobLog);
  try {
    const ctx: VmWorkflowContext = {
      hv,
      data: job.data,
      peer: deps.peer,
      observed: rt.observed,
      remote: deps.remote,
      ...(deps.storage ? { storage: deps.storage } : {}),
    };
    await runSteps(workflow, steps, ctx, jobJournal(job), jobLog, {
      ...(rollback ? { rollback, isFinal } : {}),
      onStepDone: deps.stepTimed,
    });
    if (a.kind === 'migrate' && migrating) await rt.observed.recordArrival(a.to, { ...migrating, state: 'running' });
    if (a.kind === 'migrate') await recordMigrationEnd(rt, job.data, a, started, undefined, true, jobLog);
    if (restart) await recordRestart(rt, job.data.version, a.vm, started, null, true, jobLog);
  } catch (e) {
    if (e instanceof JobLostError) {
      // The run that took the job over records how it ends; this one only stops.
      lost = true;
      jobLog.warn('this run lost its job; stopping without acting', { error: e.message });
      throw e;
    }
    if (a.kind === 'migrate') await recordMigrationEnd(rt, job.data, a, started, e, isFinal(e), jobLog);
    if (restart) await recordRestart(rt, job.data.version, a.vm, started, e, isFinal(e), jobLog);
    // Xen said no (no memory, over maxmem): retrying will not change its mind.
    if (e instanceof HypervisorRefusal)
      throw new PermanentError(e.message, 'change the site file or free resources on the host, then apply again');
    if (e instanceof StorageRefusal)
      throw new PermanentError(e.message, 'free space in the pool or put the base image there, then apply again');
    jobLog.warn('step failed', { error: e instanceof Error ? e.message : String(e), attempt: job.attemptsMade + 1 });
    throw e;
  } finally {
    await release?.(lost);
    await deps
      .observe()
      .catch((e: unknown) =>
        jobLog.warn('observed-state report failed', { error: e instanceof Error ? e.message : String(e) }),
      );
  }
  return `${workflow} ${a.vm} done`;
}
