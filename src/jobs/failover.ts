// The control queue's side of failover: the periodic health check and the per-host failover job.

import type { Job } from 'bullmq';
import { powerFor } from '../drivers/power/select.ts';
import type { PowerControl } from '../drivers/power/power.ts';
import { LocalShell } from '../drivers/shell.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { HostImageUpdater } from '../services/host-image-updater.ts';
import type { Logger } from '../lib/log.ts';
import { jobJournal, runSteps } from '../lib/steps.ts';
import type { HostSpec } from '../site/model.ts';
import { failoverSteps, HostRecovered } from '../../workflows/failover-host.ts';
import {
  checkHosts,
  DEFAULT_FAILOVER_POLICY,
  type FailoverJobData,
  type FailoverPolicy,
} from '../services/health-check.ts';

export type PowerResolver = (host: HostSpec) => Promise<PowerControl>;

/** What the control queue's jobs need: the runtime, a log, and power control for fencing. */
export interface ControlDeps {
  rt: XsmRuntime;
  log: Logger;
  power: PowerResolver;
  /** How a rolling upgrade puts the image on a host (src/services/host-image-updater.ts). */
  updater: HostImageUpdater;
}

/** Real power control from the host's <Power> element: ipmitool, Redfish, QMP, or an operator (manual). */
export function sitePowerResolver(rt: XsmRuntime): PowerResolver {
  const shell = new LocalShell();
  return (host) => powerFor(host.name, host.power, { shell, manual: rt.manualPower });
}

export async function processFailoverCheck(
  rt: XsmRuntime,
  job: Job<Partial<FailoverPolicy>>,
  log: Logger,
): Promise<string> {
  const changes = await checkHosts(rt, { ...DEFAULT_FAILOVER_POLICY, ...job.data }, log);
  return changes.length
    ? changes.map((c) => `${c.host}: ${c.from ?? 'healthy'} -> ${c.to}`).join('; ')
    : 'all hosts as before';
}

export async function processFailover(
  rt: XsmRuntime,
  job: Job<FailoverJobData>,
  power: PowerResolver,
  log: Logger,
): Promise<string> {
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  try {
    await runSteps(
      'failover',
      failoverSteps,
      { rt, data: job.data, power, lastAttempt },
      jobJournal(job),
      log.child({ host: job.data.host, job: job.id }),
    );
  } catch (e) {
    if (e instanceof HostRecovered) return e.message;
    throw e;
  }
  const version = await rt.failover.incidentVersion(job.data.host, job.data.incident);
  return `${job.data.host} fenced; its VMs are placed by site version ${version}`;
}
