// Updating an installed Dom0 in place from an image version (SystemImager's updateclient), as a durable job
// on the deploy queue:  unpack -> sync -> bootloader -> verify-xen -> record
// (a dry run: unpack -> preview, which also says what the bootloader step would do)
// unpack keeps the image's files in a directory beside the images (once per version, checked against the
// manifest's SHA-256 first); sync rsyncs it onto the host with --delete, leaving the host's identity and
// data alone (src/deploy/host-sync.ts); verify-xen is deploy's (`xl info` over SSH with the recorded key);
// record notes the host's image N:V in its deploy record (GET /api/hosts/NAME/deploy). The preview is rsync
// --dry-run --itemize-changes: what would be added, changed and deleted, and how many bytes, with nothing
// on the host touched. Files in use are replaced as a package upgrade replaces them: running programs keep
// the old ones until restarted; a new Xen or kernel takes effect at the next boot. The sync replaces /boot's
// Xen and kernel (old versions deleted) but not /boot/grub (GRUB's modules match the boot code on the
// disk), so the bootloader step re-renders grub.cfg's Xen entry for the Xen and kernel now in /boot, with
// the host's own arguments: without it the host would boot a kernel that is gone.

import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { grubAfterUpdate, type GrubUpdate } from '../src/deploy/bootloader.ts';
import {
  parseItemizedChanges,
  runRsync,
  updateArgs,
  type HostChangeSummary,
  type PinnedSsh,
} from '../src/deploy/host-sync.ts';
import { shellQuote } from '../src/drivers/ssh/ssh-shell.ts';
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
  /** What the bootloader step did (or, in a dry run, would do) to grub.cfg, in a line. */
  bootloader?: string;
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

/** Runs a shell line on the host over the pinned SSH session. */
function onHost(c: UpdateContext, ssh: PinnedSsh, line: string, input?: string) {
  return c.env.local.run('ssh', [...ssh.sshArgs, line], { timeoutMs: 120_000, ...(input ? { input } : {}) });
}

/** The host's grub.cfg (undefined: it has none) and where it is. */
async function hostGrubCfg(c: UpdateContext, ssh: PinnedSsh): Promise<{ path: string; cfg?: string }> {
  const path = `${(c.env.ssh.root ?? '/').replace(/\/*$/, '')}/boot/grub/grub.cfg`;
  const r = await onHost(c, ssh, `if [ -f ${shellQuote(path)} ]; then cat ${shellQuote(path)}; else exit 3; fi`);
  if (r.code === 3) return { path };
  if (r.code !== 0) throw new Error(`host ${c.data.host}: reading ${path} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return { path, cfg: r.stdout };
}

const NO_GRUB =
  'no /boot/grub/grub.cfg on the host (it boots Xen from the deploy server, or by a boot loader XSM did not write): nothing to re-render';

function describeGrub(u: GrubUpdate, dryRun: boolean): string {
  const now = `${u.files.xen} and ${u.files.kernel}`;
  if (!u.changed) return `grub.cfg already boots ${now}`;
  return `grub.cfg ${dryRun ? 'would boot' : 'now boots'} ${now} (was ${u.was.xen} and ${u.was.kernel})`;
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
    name: 'bootloader',
    run: async (c, srt) => {
      c.bootloader = await withHostSsh(c.env, c.data.host, c.data.address, async (ssh) => {
        const { path, cfg } = await hostGrubCfg(c, ssh);
        if (cfg === undefined) return NO_GRUB;
        const boot = path.replace(/\/grub\/grub\.cfg$/, '');
        const ls = await onHost(c, ssh, `ls -1 ${shellQuote(boot)}`);
        if (ls.code !== 0) throw new Error(`host ${c.data.host}: listing ${boot} failed: ${ls.stderr.trim()}`);
        const u = grubAfterUpdate(cfg, ls.stdout.split('\n').filter(Boolean), c.data.host);
        if (u.changed) {
          // Written beside it and renamed over it: a crash leaves the old file or the new one, never half.
          const tmp = `${path}.xsm-new`;
          const w = await onHost(
            c,
            ssh,
            `cat > ${shellQuote(tmp)} && sync && mv -f ${shellQuote(tmp)} ${shellQuote(path)}`,
            u.cfg,
          );
          if (w.code !== 0) throw new Error(`host ${c.data.host}: writing ${path} failed: ${w.stderr.trim()}`);
          const back = await hostGrubCfg(c, ssh);
          if (back.cfg !== u.cfg) throw new Error(`host ${c.data.host}: ${path} does not read back as written`);
        }
        await c.env.deploys.setFields(c.data.host, { bootXen: u.files.xen, bootKernel: u.files.kernel });
        return describeGrub(u, false);
      });
      await srt.report({ message: c.bootloader });
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
      // What the bootloader step would do: the image's /boot (what the sync leaves on the host) against
      // the host's grub.cfg.
      c.bootloader = await withHostSsh(c.env, c.data.host, c.data.address, async (ssh) => {
        const { cfg } = await hostGrubCfg(c, ssh);
        if (cfg === undefined) return NO_GRUB;
        const listing = await readdir(join(unpackedTree(c.env, c.data), 'boot')).catch(() => []);
        return describeGrub(grubAfterUpdate(cfg, listing, c.data.host), true);
      });
      await srt.report({ message: `would change on ${c.data.host}: ${describe(c.changes)}; ${c.bootloader}` });
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
