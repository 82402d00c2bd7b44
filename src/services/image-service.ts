// Images like SystemImager's: the catalogue (list), capturing an installed Dom0 as a new version, and
// updating an installed Dom0 in place from a version. Capture and update are durable jobs on the deploy
// queue (the deploy worker has the images directory); this checks the request first — the host is in the
// site file and was installed by XSM (its SSH host key is on record), the image reference names a version
// that exists — and refuses with what to do, enqueuing nothing.
//
// `updateHostInPlace` is the one entry point for an in-place update: `xsm host update`, its API route and
// the rolling upgrade (`xsm hosts upgrade`) call it, then follow the job (`hostUpdateOutcome`).

import type { Job } from 'bullmq';
import { ImageCatalogue, formatImageRef, isImageName, parseImageRef } from '../deploy/image-catalogue.ts';
import type { ImageManifest } from '../deploy/image.ts';
import type { HostUpdateResult, ImageCaptureResult } from '../jobs/host-image.ts';
import { errorMessage } from '../lib/errors.ts';
import { DEPLOY_QUEUE, type HostUpdateJobData, type ImageCaptureJobData } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';

/** A request the service refuses before anything is enqueued; `status` is the HTTP answer it maps to. */
export class ImageRequestError extends Error {
  constructor(
    message: string,
    readonly status: 404 | 409 | 422,
  ) {
    super(message);
    this.name = 'ImageRequestError';
  }
}

/** Retried like a deploy: a passing SSH or disk failure gets two more tries, 5 s then 10 s later. */
const IMAGE_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 5000 },
  removeOnComplete: { count: 500 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;

export async function listImages(imagesDir: string): Promise<ImageManifest[]> {
  return new ImageCatalogue(imagesDir).list();
}

/** The host from the current site file, with its address; refuses a host XSM never installed. */
async function installedHost(rt: XsmRuntime, host: string): Promise<{ address: string; memoryMiB?: number }> {
  const version = await rt.sites.currentVersion();
  const spec = version ? (await rt.sites.load(version)).site.hosts.find((h) => h.name === host) : undefined;
  if (!spec)
    throw new ImageRequestError(
      `host ${host} is not in the site file${version ? ` (version ${version})` : ''}; declare it with <Host name="${host}" address=".."> first`,
      404,
    );
  if (!(await rt.deploys.field(host, 'hostKey')))
    throw new ImageRequestError(
      `host ${host} was not installed by XSM: no SSH host key on record; deploy it with xsm host deploy first`,
      409,
    );
  return { address: spec.address, ...(spec.memoryMiB ? { memoryMiB: spec.memoryMiB } : {}) };
}

async function resolveImage(imagesDir: string, ref: string, where: string): Promise<ImageManifest> {
  try {
    return await new ImageCatalogue(imagesDir).resolve(parseImageRef(ref, where), where);
  } catch (e) {
    throw new ImageRequestError(errorMessage(e), 422);
  }
}

function jobStamp(): string {
  return Date.now().toString(36);
}

export interface ImageJobTicket {
  queue: typeof DEPLOY_QUEUE;
  jobId: string;
  host: string;
}

/** Enqueues the capture of `host`'s root file system as the next version of image `name`. */
export async function requestImageCapture(
  rt: XsmRuntime,
  req: { host: string; name: string },
): Promise<ImageJobTicket & { name: string }> {
  if (!isImageName(req.name))
    throw new ImageRequestError(
      `image name "${req.name}" is not valid: use letters, digits, ".", "_" and "-" (at most 64)`,
      422,
    );
  const { address } = await installedHost(rt, req.host);
  const data: ImageCaptureJobData = { host: req.host, address, name: req.name };
  const jobId = `image-capture-${req.host}-${jobStamp()}`;
  await rt.queue(DEPLOY_QUEUE).add('image-capture', data, { ...IMAGE_JOB_OPTIONS, jobId });
  return { queue: DEPLOY_QUEUE, jobId, host: req.host, name: req.name };
}

export interface HostUpdateTicket extends ImageJobTicket {
  /** The version the job installs (the newest when the reference gave none), as `NAME:VERSION`. */
  image: string;
  dryRun: boolean;
}

/**
 * Updates installed Dom0 `host` in place from image `imageRef` (`NAME` for its newest version, or
 * `NAME:VERSION`): one durable job on the deploy queue (unpack -> sync -> verify-xen -> record; with dryRun:
 * unpack -> preview, nothing on the host changes). Resolves once the job is enqueued; follow it with
 * `hostUpdateOutcome`. Throws ImageRequestError (nothing enqueued) for a host not in the site file or not
 * installed by XSM, and for an image or version the catalogue does not have.
 */
export async function updateHostInPlace(
  rt: XsmRuntime,
  imagesDir: string,
  host: string,
  imageRef: string,
  /** jobId: the caller's own (a rolling upgrade's, per host): asking again adds no second job. */
  opts: { dryRun?: boolean; jobId?: string } = {},
): Promise<HostUpdateTicket> {
  const { address, memoryMiB } = await installedHost(rt, host);
  const image = await resolveImage(imagesDir, imageRef, 'image');
  const dryRun = opts.dryRun ?? false;
  const data: HostUpdateJobData = {
    host,
    address,
    image,
    dryRun,
    ...(memoryMiB ? { expectMemMiB: memoryMiB } : {}),
  };
  const jobId = opts.jobId ?? `host-update-${dryRun ? 'preview-' : ''}${host}-${jobStamp()}`;
  await rt.queue(DEPLOY_QUEUE).add('host-update', data, { ...IMAGE_JOB_OPTIONS, jobId });
  return { queue: DEPLOY_QUEUE, jobId, host, image: formatImageRef(image), dryRun };
}

export type ImageJobOutcome<R> =
  { state: 'completed'; result: R } | { state: 'failed'; error: string } | { state: 'running' | 'waiting' };

/** Where an image job is: its result once completed, its error once failed for good. */
export async function imageJobOutcome<R extends HostUpdateResult | ImageCaptureResult>(
  rt: XsmRuntime,
  jobId: string,
): Promise<ImageJobOutcome<R> | undefined> {
  const queue = rt.queue(DEPLOY_QUEUE);
  // The state first, then the job: a job read first and completed just after would show no return value.
  const state = await queue.getJobState(jobId);
  if (state === 'unknown') return undefined;
  const job = (await queue.getJob(jobId)) as Job<unknown, R> | undefined;
  if (!job) return undefined;
  if (state === 'completed') return { state, result: job.returnvalue };
  if (state === 'failed') return { state, error: job.failedReason };
  return { state: state === 'active' ? 'running' : 'waiting' };
}

/** The outcome of an update that `updateHostInPlace` enqueued (what a rolling upgrade waits on). */
export function hostUpdateOutcome(
  rt: XsmRuntime,
  ticket: Pick<HostUpdateTicket, 'jobId'>,
): Promise<ImageJobOutcome<HostUpdateResult> | undefined> {
  return imageJobOutcome<HostUpdateResult>(rt, ticket.jobId);
}
