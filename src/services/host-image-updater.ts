// How a rolling upgrade puts a new Dom0 image on one host, behind one small interface so the way can change
// without touching the upgrade: today the redeploy path (the deploy job for that host, src/jobs/deploy.ts)
// and a simulated updater for tests and scenarios; the in-place rsync update (`xsm host update`, issue 17
// part 4) plugs in here too. The upgrade drains the host before and verifies Xen and the agent after, so an
// updater only updates.

import type { ImageRef } from '../deploy/image-ref.ts';
import type { HostSpec } from '../site/model.ts';

/** What one update did. */
export interface HostUpdateResult {
  /** The image now installed, as the deploy record keeps it (`dom0`, `dom0:3`). */
  image: string;
  /** Which way it went: `redeploy`, `simulated`, `in-place`. */
  method: string;
  /** Xen as the updater itself verified it (the deploy's verify-xen step), when it did. */
  xen?: { version: string; totalMemMiB: number; nrCpus: number };
  /** One line for the upgrade's log and status: the deploy job, the bytes sent. */
  detail?: string;
}

export interface HostUpdateOptions {
  /**
   * The same for every call about one host in one upgrade: an updater that starts a job names it by this,
   * so the call made again after a crash finds the job the first call started instead of starting another.
   */
  key: string;
}

export interface HostImageUpdater {
  /** `redeploy`, `simulated`, `in-place`: shown in the upgrade's plan. */
  readonly method: string;
  /**
   * Installs `image` on `host` (drained, in maintenance) and returns once the host runs it. Throws when it
   * could not: a PermanentError says what the operator should do. Must be safe to call again for the same
   * host and key (a resumed upgrade does).
   */
  update(host: HostSpec, image: ImageRef, opts: HostUpdateOptions): Promise<HostUpdateResult>;
}
