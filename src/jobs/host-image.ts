// The deploy queue's image jobs: capturing an installed Dom0 as an image version (workflows/capture-image.ts)
// and updating one in place from a version (workflows/update-host.ts). They run on the deploy worker, where
// the images directory is.

import type { Job } from 'bullmq';
import { LocalShell } from '../drivers/shell.ts';
import { formatImageRef } from '../deploy/image-catalogue.ts';
import type { ImageManifest } from '../deploy/image.ts';
import type { HostChangeSummary } from '../deploy/host-sync.ts';
import { jobJournal, runSteps } from '../lib/steps.ts';
import type { HostUpdateJobData, ImageCaptureJobData } from '../runtime/queues.ts';
import type { DeployEnv } from '../../workflows/deploy-host.ts';
import { captureSteps, type CaptureContext } from '../../workflows/capture-image.ts';
import { previewSteps, recordedSyncChanges, updateSteps, type UpdateContext } from '../../workflows/update-host.ts';
import type { HostImageEnv } from '../../workflows/host-image-env.ts';

/** How many changed paths a job's result lists (the counts and bytes always cover all of them). */
export const LISTED_CHANGES = 1000;

export function hostImageEnv(env: DeployEnv): HostImageEnv {
  return {
    deploys: env.rt.deploys,
    log: env.log,
    imagesDir: env.images.config.imagesDir,
    local: new LocalShell(),
    ssh: { privateKey: env.ssh.privateKey, ...(env.ssh.user ? { user: env.ssh.user } : {}) },
    verifyTimeoutMs: env.timeouts.bootMs,
  };
}

export interface ImageCaptureResult {
  host: string;
  image: string;
  manifest?: ImageManifest;
}

export async function runImageCapture(
  env: HostImageEnv,
  data: ImageCaptureJobData,
  jobId: string,
  journal: Parameters<typeof runSteps>[3],
): Promise<ImageCaptureResult> {
  const ctx: CaptureContext = { env, data, jobId };
  await runSteps('image-capture', captureSteps, ctx, journal, env.log.child({ host: data.host, job: jobId }));
  return {
    host: data.host,
    image: ctx.result ? formatImageRef(ctx.result) : data.name,
    ...(ctx.result ? { manifest: ctx.result } : {}),
  };
}

export interface HostUpdateResult {
  host: string;
  image: string;
  dryRun: boolean;
  /** Counts and paths; a job resumed past its sync has the counts only (`listed` empty, `truncated`). */
  changes?: Omit<HostChangeSummary, 'changes'> & { listed: HostChangeSummary['changes']; truncated: boolean };
  /** What the update did (or would do) to the host's grub.cfg, in a line; absent when resumed past it. */
  bootloader?: string;
}

export async function runHostUpdate(
  env: HostImageEnv,
  data: HostUpdateJobData,
  jobId: string,
  journal: Parameters<typeof runSteps>[3],
): Promise<HostUpdateResult> {
  const ctx: UpdateContext = { env, data, jobId };
  const workflow = data.dryRun ? 'host-update-preview' : 'host-update';
  await runSteps(
    workflow,
    data.dryRun ? previewSteps : updateSteps,
    ctx,
    journal,
    env.log.child({ host: data.host, job: jobId }),
  );
  // Resumed past its sync: the paths are gone with the attempt that synced, the counts are on record.
  const c: HostChangeSummary | Omit<HostChangeSummary, 'changes'> | undefined =
    ctx.changes ?? (data.dryRun ? undefined : await recordedSyncChanges(env, data.host, jobId));
  const paths = ctx.changes?.changes;
  return {
    host: data.host,
    image: formatImageRef(data.image),
    dryRun: data.dryRun,
    ...(ctx.bootloader ? { bootloader: ctx.bootloader } : {}),
    ...(c
      ? {
          changes: {
            added: c.added,
            changed: c.changed,
            deleted: c.deleted,
            bytes: c.bytes,
            listed: paths ? paths.slice(0, LISTED_CHANGES) : [],
            truncated: paths ? paths.length > LISTED_CHANGES : true,
          },
        }
      : {}),
  };
}

export function processImageCapture(env: HostImageEnv, job: Job<ImageCaptureJobData>): Promise<ImageCaptureResult> {
  return runImageCapture(env, job.data, job.id ?? job.data.host, jobJournal(job));
}

export function processHostUpdate(env: HostImageEnv, job: Job<HostUpdateJobData>): Promise<HostUpdateResult> {
  return runHostUpdate(env, job.data, job.id ?? job.data.host, jobJournal(job));
}
