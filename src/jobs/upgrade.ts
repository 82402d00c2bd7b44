// The control queue's rolling-upgrade job (workflows/upgrade-hosts.ts): runs the hosts' steps from the
// journal, and on the first failure records which host failed at which step and why, then ends for good
// (a failed upgrade is not retried by BullMQ: the operator fixes the host and runs it again, which skips
// the hosts already on the image).

import { UnrecoverableError, type Job } from 'bullmq';
import { errorMessage, JobLostError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { jobJournal, runSteps, type JournalState } from '../lib/steps.ts';
import type { UpgradeJobData } from '../runtime/queues.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import type { HostImageUpdater } from '../services/host-image-updater.ts';
import { describeUpgrade } from '../services/upgrade-status.ts';
import { upgradeSteps } from '../../workflows/upgrade-hosts.ts';

export async function processUpgrade(
  rt: ServiceRuntime,
  updater: HostImageUpdater,
  job: Job<UpgradeJobData>,
  log: Logger,
): Promise<string> {
  const data = structuredClone(job.data);
  data.progress ??= {};
  const journal = jobJournal(job);
  const ctx = { rt, updater, data, save: () => job.updateData(data), log };
  try {
    await runSteps('upgrade', upgradeSteps(data.hosts), ctx, journal, log.child({ job: job.id }));
  } catch (e) {
    // A run that lost its job writes nothing more to it: the run that took it over owns its data now.
    if (e instanceof JobLostError) throw e;
    const state: JournalState = journal.load();
    const [host, step] = (state.current ?? ':').split(':') as [string, string];
    if (host) data.progress[host] = { ...data.progress[host], failed: { step, why: errorMessage(e) } };
    await job.updateData(data);
    const view = describeUpgrade(data, state, 'failed');
    throw new UnrecoverableError(view.summary);
  }
  return describeUpgrade(data, journal.load(), 'completed').summary;
}
