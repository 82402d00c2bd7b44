// Updating an installed Dom0 in place from an image version (SystemImager's updateclient), as a durable job
// on the deploy queue:  unpack -> sync -> verify-xen -> record      (a dry run: unpack -> preview)
// unpack keeps the image's files in a directory beside the images (once per version, checked against the
// manifest's SHA-256 first); sync rsyncs it onto the host with --delete, leaving the host's identity and
// data alone (src/deploy/host-sync.ts); verify-xen is deploy's (`xl info` over SSH with the recorded key);
// record notes the host's image N:V in its deploy record (GET /api/hosts/NAME/deploy). The preview is rsync
// --dry-run --itemize-changes: what would be added, changed and deleted, and how many bytes, with nothing
// on the host touched. Files in use are replaced as a package upgrade replaces them: running programs keep
// the old ones until restarted; a new Xen or kernel takes effect at the next boot.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseItemizedChanges, runRsync, updateArgs, type HostChangeSummary } from '../src/deploy/host-sync.ts';
import { sha256File, unpackImage } from '../src/deploy/image.ts';
import { formatImageRef } from '../src/deploy/image-catalogue.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { HostUpdateJobData } from '../src/runtime/queues.ts';
import type { Step } from '../src/lib/steps.ts';
import { verifyXen } from './deploy-host.ts';
import { hostKeyOf, withHostSsh, type HostImageEnv } from './host-image-env.ts';

export interface UpdateContext {
  env: HostImageEnv;
  data: HostUpdateJobData;
  jobId: string;
  /** What the sync (or the preview) changed or would change. */
  changes?: HostChangeSummary;
}

/** Where an image version's files are kept unpacked (shared by every update from that version). */
export function unpackedTree(env: HostImageEnv, data: HostUpdateJobData): string {
  return join(env.imagesDir, '.trees', data.image.name, String(data.image.version));
}

async function preview(c: UpdateContext, dryRun: boolean): Promise<HostChangeSummary> {
  const out = await withHostSsh(c.env, c.data.host, c.data.address, (ssh) =>
    runRsync(c.env.local, c.data.host, updateArgs(ssh, unpackedTree(c.env, c.data), dryRun)),
  );
  return parseItemizedChanges(out);
}

function describe(s: HostChangeSummary): string {
  return `${s.added} added, ${s.changed} changed, ${s.deleted} deleted, ${s.bytes} bytes`;
}

const unpack: Step<UpdateContext> = {
  name: 'unpack',
  run: async (c, srt) => {
    const tree = unpackedTree(c.env, c.data);
    const marker = `${tree}.done`;
    if ((await readFile(marker, 'utf8').catch(() => '')).trim() === c.data.image.sha256) return;
    const image = join(c.env.imagesDir, c.data.image.file);
    const sha = await sha256File(image).catch((e: Error) => {
      throw new PermanentError(
        `image ${formatImageRef(c.data.image)}: cannot read ${image}: ${e.message}`,
        'xsm image list shows the versions there are',
      );
    });
    if (sha !== c.data.image.sha256)
      throw new PermanentError(
        `image ${formatImageRef(c.data.image)}: ${image} has SHA-256 ${sha}, its manifest says ${c.data.image.sha256}; the host was not touched`,
        'the image file changed or is damaged: build or capture a new version',
      );
    const partial = `${tree}.partial`;
    await rm(partial, { recursive: true, force: true });
    await rm(tree, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    await unpackImage(c.env.local, image, partial);
    await rename(partial, tree);
    await writeFile(marker, c.data.image.sha256 + '\n');
    await srt.report({ message: `image ${formatImageRef(c.data.image)} unpacked into ${tree}` });
  },
};

export const updateSteps: readonly Step<UpdateContext>[] = [
  unpack,
  {
    name: 'sync',
    run: async (c, srt) => {
      c.changes = await preview(c, false);
      // Counts on record, so a job resumed past this step can still say what it changed.
      const { changes: _paths, ...counts } = c.changes;
      await c.env.deploys.setFields(c.data.host, { syncJob: c.jobId, syncChanges: JSON.stringify(counts) });
      await srt.report({ message: `${c.data.host} now has ${formatImageRef(c.data.image)}: ${describe(c.changes)}` });
    },
  },
  {
    name: 'verify-xen',
    run: async (c, srt) => {
      const info = await verifyXen({
        host: c.data.host,
        address: c.data.address,
        ...(c.env.ssh.port ? { port: c.env.ssh.port } : {}),
        privateKey: c.env.ssh.privateKey,
        hostKeySha256: await hostKeyOf(c.env, c.data.host),
        timeoutMs: c.env.verifyTimeoutMs,
        ...(c.data.expectMemMiB ? { expectMemMiB: c.data.expectMemMiB } : {}),
      });
      await srt.report({ message: `Xen ${info.xenVersion}: ${info.totalMemMiB} MiB, ${info.nrCpus} CPUs` });
    },
  },
  {
    name: 'record',
    run: async (c) => {
      await c.env.deploys.setFields(c.data.host, {
        image: formatImageRef(c.data.image),
        imageSha256: c.data.image.sha256,
        updatedAt: Date.now(),
        updateJob: c.jobId,
      });
    },
  },
];

export const previewSteps: readonly Step<UpdateContext>[] = [
  unpack,
  {
    name: 'preview',
    run: async (c, srt) => {
      c.changes = await preview(c, true);
      await srt.report({ message: `would change on ${c.data.host}: ${describe(c.changes)}` });
    },
  },
];

/** The counts a sync of job `jobId` recorded (a job resumed past its sync step reports these). */
export async function recordedSyncChanges(
  env: HostImageEnv,
  host: string,
  jobId: string,
): Promise<Omit<HostChangeSummary, 'changes'> | undefined> {
  if ((await env.deploys.field(host, 'syncJob')) !== jobId) return undefined;
  const raw = await env.deploys.field(host, 'syncChanges');
  return raw ? (JSON.parse(raw) as Omit<HostChangeSummary, 'changes'>) : undefined;
}
