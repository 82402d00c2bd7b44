// Capturing an installed Dom0 as a new image version (SystemImager's getimage), as a durable job on the
// deploy queue:  reach-host -> pull -> pack -> register -> clean
// pull rsyncs the host's root file system (without its identity: src/deploy/host-sync.ts) into a staging
// directory beside the images; pack makes the ext4 image deploy writes; register gives it the next version
// of the name. A resumed job skips finished steps; an interrupted pull or pack is simply run again (rsync
// sends only what is missing, mkfs rewrites its own file), and register finds a version it already added.

import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { captureArgs, runRsync } from '../src/deploy/host-sync.ts';
import { packTree, sha256File, type ImageManifest } from '../src/deploy/image.ts';
import { ImageCatalogue } from '../src/deploy/image-catalogue.ts';
import { runChecked } from '../src/drivers/shell.ts';
import type { ImageCaptureJobData } from '../src/runtime/queues.ts';
import type { Step } from '../src/lib/steps.ts';
import { jobFileName, withHostSsh, type HostImageEnv } from './host-image-env.ts';

export interface CaptureContext {
  env: HostImageEnv;
  data: ImageCaptureJobData;
  jobId: string;
  /** Set by register: the version this capture made. */
  result?: ImageManifest;
}

export function captureStagingDir(c: CaptureContext): string {
  return join(c.env.imagesDir, '.staging', jobFileName(c.jobId));
}

/** The packed image's path inside the images directory: the name's directory, one file per capture job. */
export function capturedImageFile(c: CaptureContext): string {
  return `${c.data.name}/captured-${jobFileName(c.jobId)}.img`;
}

export const captureSteps: readonly Step<CaptureContext>[] = [
  {
    name: 'reach-host',
    run: async (c, srt) => {
      await withHostSsh(c.env, c.data.host, c.data.address, async (ssh) => {
        const r = await c.env.local.run('ssh', [...ssh.sshArgs, 'true'], { timeoutMs: 60_000 });
        if (r.code !== 0)
          throw new Error(
            `host ${c.data.host} (${c.data.address}): SSH login failed (exit ${r.code}): ${r.stderr.trim() || 'no message'}; check that it accepts the deploy worker's key`,
          );
      });
      await srt.report({ message: `${c.data.host} answers over SSH with the host key recorded at install` });
    },
  },
  {
    name: 'pull',
    run: async (c, srt) => {
      const into = captureStagingDir(c);
      await runChecked(c.env.local, 'mkdir', ['-p', into]);
      await srt.report({ message: `rsync from ${c.data.host} into ${into}` });
      await withHostSsh(c.env, c.data.host, c.data.address, (ssh) =>
        runRsync(c.env.local, c.data.host, captureArgs(ssh, into)),
      );
    },
  },
  {
    name: 'pack',
    run: async (c, srt) => {
      const file = join(c.env.imagesDir, capturedImageFile(c));
      await runChecked(c.env.local, 'mkdir', ['-p', join(c.env.imagesDir, c.data.name)]);
      // Packed under a name nothing lists, then renamed: a crash mid-mkfs leaves no half image in place.
      const partial = `${file}.partial`;
      const packed = await packTree(c.env.local, captureStagingDir(c), partial);
      await rename(partial, file);
      await srt.report({ bytes: packed.bytes, totalBytes: packed.bytes, message: `ext4 image, ${packed.bytes} bytes` });
    },
  },
  {
    name: 'register',
    run: async (c, srt) => {
      const catalogue = new ImageCatalogue(c.env.imagesDir);
      const existing = await catalogue.byCaptureJob(c.data.name, c.jobId);
      if (existing) {
        c.result = existing;
        return;
      }
      const file = capturedImageFile(c);
      const path = join(c.env.imagesDir, file);
      c.result = await catalogue.add(c.data.name, file, {
        bytes: (await stat(path)).size,
        sha256: await sha256File(path),
        source: { kind: 'captured', host: c.data.host },
        description: `captured from ${c.data.host} (${c.data.address})`,
        captureJob: c.jobId,
      });
      await srt.report({ message: `${c.data.name}:${c.result.version} sha256 ${c.result.sha256.slice(0, 16)}…` });
    },
  },
  {
    name: 'clean',
    run: async (c) => {
      await rm(captureStagingDir(c), { recursive: true, force: true });
      c.result ??= await new ImageCatalogue(c.env.imagesDir).byCaptureJob(c.data.name, c.jobId);
    },
  },
];
