// The rolling upgrade's update by the existing redeploy path: one deploy job for the host (PXE, image,
// partition, Xen, agent: workflows/deploy-host.ts) with the given image, waited for. The host's disk is
// written again from the image, so this is for images the deploy worker serves (a manifest in its images
// directory); the in-place rsync update, when plugged in, keeps the host's local state instead.

import { Job } from 'bullmq';
import { formatImageRef, type ImageRef } from '../deploy/image-ref.ts';
import { PermanentError } from '../lib/errors.ts';
import { DEPLOY_QUEUE } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { HostSpec } from '../site/model.ts';
import { DeployRequestError, enqueueDeploy } from './deploy-service.ts';
import type { HostImageUpdater, HostUpdateOptions, HostUpdateResult } from './host-image-updater.ts';

export interface RedeployUpdaterOptions {
  /** The deploy worker's images directory, as the API reads it (XSM_IMAGES_DIR). */
  imagesDir: string;
  /** How long one host's deploy may take (default 45 min: a whole image over a slow link, and a boot). */
  timeoutMs?: number;
  pollMs?: number;
}

export class RedeployImageUpdater implements HostImageUpdater {
  readonly method = 'redeploy';
  constructor(
    private readonly rt: XsmRuntime,
    private readonly opts: RedeployUpdaterOptions,
  ) {}

  async update(host: HostSpec, image: ImageRef, { key }: HostUpdateOptions): Promise<HostUpdateResult> {
    if (!host.bootMac)
      throw new PermanentError(
        `${host.name}: the redeploy path boots the host from the network by its MAC, and the site file gives it none`,
        `add mac="..." to <Host name="${host.name}"> and submit the site file, then run the upgrade again`,
      );
    const session = key.replace(/[^A-Za-z0-9-]/g, '-');
    // Asking again with the same session after a crash adds nothing: the job id is the same.
    const r = await enqueueDeploy(this.rt, this.opts.imagesDir, {
      macs: [host.bootMac],
      image: formatImageRef(image),
      session,
    }).catch((e: unknown) => {
      if (e instanceof DeployRequestError) throw new PermanentError(`${host.name}: ${e.message}`);
      throw e;
    });
    const jobId = r.jobs[0]!.jobId;
    await this.waitForDeploy(host.name, jobId);
    const rec = await this.rt.deploys.record(host.name);
    return {
      image: formatImageRef(image),
      method: this.method,
      detail: `deploy job ${jobId}`,
      ...(rec.xenVersion
        ? { xen: { version: rec.xenVersion, totalMemMiB: Number(rec.totalMemMiB), nrCpus: Number(rec.nrCpus) } }
        : {}),
    };
  }

  private async waitForDeploy(host: string, jobId: string): Promise<void> {
    const until = Date.now() + (this.opts.timeoutMs ?? 45 * 60_000);
    const queue = this.rt.queue(DEPLOY_QUEUE);
    for (;;) {
      const job = await Job.fromId(queue, jobId);
      if (!job) throw new PermanentError(`${host}: deploy job ${jobId} is gone from the deploy queue`);
      const state = await job.getState();
      if (state === 'completed') return;
      if (state === 'failed')
        throw new PermanentError(
          `${host}: deploy job ${jobId} failed: ${job.failedReason}`,
          `see xsm jobs --queue deploy; fix the host, then run the upgrade again`,
        );
      if (Date.now() > until)
        throw new PermanentError(
          `${host}: deploy job ${jobId} did not finish in time (still ${state})`,
          'is the deploy worker running (tsx workers/deploy.ts)? xsm jobs --queue deploy shows where it is',
        );
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 2000));
    }
  }
}
