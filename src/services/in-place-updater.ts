// The rolling upgrade's update in place (issue 17 part 4's `xsm host update`): one host-update job on the
// deploy queue (unpack the image version, rsync it over the Dom0 keeping its identity, verify Xen, record
// the version), waited for. The host keeps its disks, its VM storage and its identity; only the image's
// files change. The job id is the upgrade's key for the host, so the call made again after a crash finds
// the job the first call started instead of starting another.

import { PermanentError } from '../lib/errors.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { HostSpec } from '../site/model.ts';
import { formatImageRef, type ImageRef } from '../deploy/image-ref.ts';
import type { HostImageUpdater, HostUpdateOptions, HostUpdateResult } from './host-image-updater.ts';
import { hostUpdateOutcome, ImageRequestError, updateHostInPlace } from './image-service.ts';

export interface InPlaceUpdaterOptions {
  /** The image catalogue the deploy worker serves (XSM_IMAGES_DIR). */
  imagesDir: string;
  /** How long one host's update may take (default 30 min: a large image over a slow link). */
  timeoutMs?: number;
  pollMs?: number;
}

export class InPlaceImageUpdater implements HostImageUpdater {
  readonly method = 'in-place';
  constructor(
    private readonly rt: XsmRuntime,
    private readonly opts: InPlaceUpdaterOptions,
  ) {}

  async update(host: HostSpec, image: ImageRef, { key }: HostUpdateOptions): Promise<HostUpdateResult> {
    const ticket = await updateHostInPlace(this.rt, this.opts.imagesDir, host.name, formatImageRef(image), {
      jobId: `host-update-${key.replace(/[^A-Za-z0-9-]/g, '-')}`,
    }).catch((e: unknown) => {
      if (e instanceof ImageRequestError) throw new PermanentError(`${host.name}: ${e.message}`);
      throw e;
    });
    const until = Date.now() + (this.opts.timeoutMs ?? 30 * 60_000);
    for (;;) {
      const outcome = await hostUpdateOutcome(this.rt, ticket);
      if (!outcome)
        throw new PermanentError(`${host.name}: host update job ${ticket.jobId} is gone from the deploy queue`);
      if (outcome.state === 'completed') {
        const c = outcome.result.changes;
        return {
          image: outcome.result.image,
          method: this.method,
          detail:
            `host update job ${ticket.jobId}` +
            (c ? `: ${c.added} added, ${c.changed} changed, ${c.deleted} deleted` : ''),
        };
      }
      if (outcome.state === 'failed')
        throw new PermanentError(
          `${host.name}: host update job ${ticket.jobId} failed: ${outcome.error}`,
          'see xsm jobs --queue deploy; fix the host, then run the upgrade again',
        );
      if (Date.now() > until)
        throw new PermanentError(
          `${host.name}: host update job ${ticket.jobId} did not finish in time (still ${outcome.state})`,
          'is the deploy worker running (tsx workers/deploy.ts)? xsm jobs --queue deploy shows where it is',
        );
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 2000));
    }
  }
}
