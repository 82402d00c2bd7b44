// Every kind of job XSM runs, in one table: for each queue, each job name with its data type (from
// src/runtime/queues.ts) and the processor that runs it. Workers route by this table and nothing else, so a
// new kind of job is one entry here plus its processor; a job name no entry knows fails at once, saying so.

import { UnrecoverableError, type Job } from 'bullmq';
import { ATTR, inSpan } from '../lib/tracing.ts';
import type { ControlJobs, DeployJobs, HostJobs } from '../runtime/queues.ts';
import type { DeployEnv } from '../../workflows/deploy-host.ts';
import { processApply, processWave, processWaveEnqueue } from './apply.ts';
import { processDeploy } from './deploy.ts';
import { hostImageEnv, processHostUpdate, processImageCapture } from './host-image.ts';
import { processFailover, processFailoverCheck, type ControlDeps } from './failover.ts';
import { processRebalance } from './rebalance.ts';
import { processUpgrade } from './upgrade.ts';
import { processVmAction, type VmActionDeps } from './vm-action.ts';

export type QueueKind = 'control' | 'host' | 'deploy';

/** One kind of job: what it does (for people) and what runs it, given its worker's dependencies. */
export interface JobKind<Data, Deps> {
  summary: string;
  process: (deps: Deps, job: Job<Data>) => Promise<unknown>;
}

/** A queue's table: one entry per job name, each typed with that name's data. */
export type JobTable<Jobs, Deps> = { readonly [Name in keyof Jobs]: JobKind<Jobs[Name], Deps> };

export type { ControlDeps } from './failover.ts';

export const CONTROL_JOB_KINDS: JobTable<ControlJobs, ControlDeps> = {
  apply: {
    summary: "starts a version's stored plan: records it as applying and enqueues its first wave",
    process: (d, job) =>
      inSpan('apply', { [ATTR.version]: job.data.version, [ATTR.job]: job.id ?? '' }, () => processApply(d.rt, job)),
  },
  wave: {
    summary: "a wave's parent: when its actions ended, records each outcome and enqueues the next wave",
    process: (d, job) => processWave(d.rt, job),
  },
  'wave-enqueue': {
    summary: "adds a big wave's actions to it in chunks; the wave waits for it, so it never starts half-filled",
    process: (d, job) => processWaveEnqueue(d.rt, job),
  },
  rebalance: {
    summary: 'one rebalancer run: a new site version with live migrations, or nothing worth moving',
    process: (d, job) => processRebalance(d.rt, job),
  },
  'failover-check': {
    summary: 'one pass of failure detection over the hosts (suspect, then fence)',
    process: (d, job) => processFailoverCheck(d.rt, job, d.log),
  },
  failover: {
    summary: 'fences a failed host, then restarts its VMs elsewhere through a new site version',
    process: (d, job) => processFailover(d.rt, job, d.power, d.log),
  },
  upgrade: {
    summary:
      'a rolling Dom0 upgrade, one host at a time: drain, update, verify Xen, rejoin, return (workflows/upgrade-hosts.ts)',
    process: (d, job) => processUpgrade(d.rt, d.updater, job, d.log),
  },
};

const vmAction: JobKind<HostJobs[keyof HostJobs], VmActionDeps> = {
  summary: "runs one VM action's workflow against the host's hypervisor",
  process: processVmAction,
};

export const HOST_JOB_KINDS: JobTable<HostJobs, VmActionDeps> = {
  create: { ...vmAction, summary: 'creates a VM (workflows/create-vm.ts)' },
  remove: { ...vmAction, summary: 'shuts a VM down and destroys it (workflows/remove-vm.ts)' },
  migrate: {
    ...vmAction,
    summary:
      'moves a VM: live by `xl migrate`, or cold (stop, start on the target) (workflows/migrate-vm.ts, move-vm-cold.ts)',
  },
  reconfigure: {
    ...vmAction,
    summary:
      'changes memory or vCPUs, live or by a restart that is rolled back on failure (workflows/reconfigure-vm.ts)',
  },
};

export const DEPLOY_JOB_KINDS: JobTable<DeployJobs, DeployEnv> = {
  'deploy-host': {
    summary: 'deploys a bare machine as a Dom0: PXE, image, partition, Xen, agent (workflows/deploy-host.ts)',
    process: processDeploy,
  },
  'image-capture': {
    summary: "captures an installed Dom0's root file system as a new image version (workflows/capture-image.ts)",
    process: (env, job) => processImageCapture(hostImageEnv(env), job),
  },
  'host-update': {
    summary: 'updates an installed Dom0 in place from an image version, or previews it (workflows/update-host.ts)',
    process: (env, job) => processHostUpdate(hostImageEnv(env), job),
  },
};

/**
 * A BullMQ processor for one queue: looks the job's name up in the table and runs its entry. An unknown
 * name fails for good (retrying will not teach this process a job kind), naming the names it knows.
 */
export function jobRouter<Jobs, Deps>(
  table: JobTable<Jobs, Deps>,
  deps: Deps,
  queue: string,
): (job: Job) => Promise<unknown> {
  const kinds = table as Readonly<Record<string, JobKind<unknown, Deps>>>;
  return (job: Job) => {
    const kind = Object.hasOwn(kinds, job.name) ? kinds[job.name] : undefined;
    if (!kind)
      throw new UnrecoverableError(
        `queue ${queue} has no job kind "${job.name}" (this XSM knows ${Object.keys(kinds).join(', ')}); ` +
          'was it added by a newer XSM? Run the same version everywhere, or remove the job',
      );
    return kind.process(deps, job);
  };
}
