// Dom0 images: a root file system image (ext4, raw) with a manifest of its size and checksum, which is
// what every transfer method delivers into the root partition and what the installer verifies.
// `buildLabImage` makes a small one for the lab and the benchmark; scripts/build-image builds the real
// Dom0 image (Debian bookworm by debootstrap + Xen + xen-utils + openssh + ganglia-monitor + the agent).

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runChecked, LocalShell, type Shell } from '../drivers/shell.ts';
import { PermanentError } from '../lib/errors.ts';
import { ImageCatalogue } from './image-catalogue.ts';

/** Where an image version came from: scripts/build-image (or the lab), or a capture from an installed Dom0. */
export type ImageSource = { kind: 'built' } | { kind: 'captured'; host: string };

export interface ImageManifest {
  name: string;
  /** The version within `name` (1, 2, ...; 0 for an unversioned manifest from before the catalogue). */
  version: number;
  /** Path inside the images directory (the rsync module's root), e.g. `dom0/3.img`. */
  file: string;
  bytes: number;
  sha256: string;
  createdAt: string;
  /** The same as createdAt; kept for deploy jobs and manifests written before versions existed. */
  builtAt: string;
  source: ImageSource;
  description: string;
  /** The capture job that made this version (what lets a resumed capture find it instead of adding another). */
  captureJob?: string;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Records `file` (relative to `imagesDir`, already there) as a new built version of image `name`. */
export async function writeManifest(
  imagesDir: string,
  name: string,
  file: string,
  description: string,
): Promise<ImageManifest> {
  const path = join(imagesDir, file);
  return new ImageCatalogue(imagesDir).add(name, file, {
    bytes: (await stat(path)).size,
    sha256: await sha256File(path),
    source: { kind: 'built' },
    description,
  });
}

/** The manifest `ref` (`NAME` for the newest version, or `NAME:VERSION`) names; refuses unknown ones. */
export async function readManifest(imagesDir: string, ref: string): Promise<ImageManifest> {
  return new ImageCatalogue(imagesDir).resolve(ref);
}

/**
 * A small bootable-shaped root file system for the lab: Debian-like /etc, and `payloadMiB` of random
 * data so that its size (and the transfer time) is what a benchmark asks for.
 */
export async function buildLabImage(
  imagesDir: string,
  name: string,
  opts: { sizeMiB: number; payloadMiB: number },
): Promise<ImageManifest> {
  const tree = await mkdtemp(join(tmpdir(), 'xsm-image-'));
  try {
    await mkdir(join(tree, 'etc/ssh'), { recursive: true });
    await mkdir(join(tree, 'etc/network/interfaces.d'), { recursive: true });
    await mkdir(join(tree, 'etc/xsm'), { recursive: true });
    await mkdir(join(tree, 'usr/share/xsm'), { recursive: true });
    await mkdir(join(tree, 'root/.ssh'), { recursive: true });
    // /boot as Debian's xen-hypervisor and linux-image packages leave it; the lab's firmware checks that
    // GRUB's entry names files that are there (the lab never executes them).
    await mkdir(join(tree, 'boot'), { recursive: true });
    for (const f of ['xen-4.17-amd64.gz', 'vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-28-amd64'])
      await writeFile(join(tree, 'boot', f), `lab stand-in for ${f}\n`);
    await writeFile(join(tree, 'etc/hostname'), 'unconfigured\n');
    await writeFile(
      join(tree, 'etc/os-release'),
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm) — XSM lab Dom0"\nID=debian\nVERSION_ID="12"\n',
    );
    const chunk = 1 << 20;
    const parts: Buffer[] = [];
    for (let i = 0; i < opts.payloadMiB; i++) parts.push(randomBytes(chunk));
    await writeFile(join(tree, 'usr/share/xsm/payload'), Buffer.concat(parts));
    await mkdir(imagesDir, { recursive: true });
    // A file per build, so an earlier version (maybe being deployed) is never overwritten.
    await mkdir(join(imagesDir, name), { recursive: true });
    const file = `${name}/lab-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}.img`;
    await runChecked(new LocalShell(), 'mkfs.ext4', [
      '-q',
      '-F',
      '-L',
      'root',
      '-d',
      tree,
      join(imagesDir, file),
      `${opts.sizeMiB}M`,
    ]);
    return await writeManifest(imagesDir, name, file, `lab Dom0 root file system, ${opts.payloadMiB} MiB payload`);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

/**
 * Packs a root file system tree into the image format deploy writes (ext4, raw, labelled root), sized for
 * what the tree holds plus room to grow; returns the file's size and SHA-256.
 */
export async function packTree(
  shell: Shell,
  tree: string,
  imagePath: string,
): Promise<{ bytes: number; sha256: string }> {
  const du = await runChecked(shell, 'du', ['-s', '--block-size=1', '--apparent-size', tree]);
  const used = Number(du.stdout.split(/\s+/)[0]);
  const count = await runChecked(shell, 'sh', ['-c', 'find "$1" -xdev | wc -l', 'count', tree]);
  const inodes = Math.ceil(Number(count.stdout.trim()) * 1.3) + 4096;
  // Metadata and block rounding of many small files: 30% more than the bytes, and 64 MiB for a small tree.
  const sizeMiB = Math.max(64, Math.ceil((used * 1.3) / 1048576) + 64);
  await runChecked(shell, 'mkfs.ext4', [
    '-q',
    '-F',
    '-L',
    'root',
    '-N',
    String(inodes),
    '-d',
    tree,
    imagePath,
    `${sizeMiB}M`,
  ]);
  return { bytes: (await stat(imagePath)).size, sha256: await sha256File(imagePath) };
}

/** Unpacks an image's file system into `into` (an empty directory) without mounting it (debugfs rdump). */
export async function unpackImage(shell: Shell, imagePath: string, into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  const r = await runChecked(shell, 'debugfs', ['-R', `rdump / ${into}`, imagePath]);
  // debugfs exits 0 even when a dump fails; it says so on stderr.
  const bad = r.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
  if (bad.length) throw new Error(`unpacking ${imagePath} into ${into}: ${bad.slice(0, 3).join(' ')}`);
  await rm(join(into, 'lost+found'), { recursive: true, force: true });
}

/** Block size and count of the ext4 file system at `device`, from its superblock (dumpe2fs -h). */
export async function filesystemSize(shell: Shell, device: string): Promise<{ blockSize: number; blocks: number }> {
  const r = await runChecked(shell, 'dumpe2fs', ['-h', device]);
  const blocks = Number(/^Block count:\s+(\d+)/m.exec(r.stdout)?.[1]);
  const blockSize = Number(/^Block size:\s+(\d+)/m.exec(r.stdout)?.[1]);
  if (!blocks || !blockSize) throw new Error(`${shell.where}: dumpe2fs -h ${device} shows no block count or size`);
  return { blockSize, blocks };
}

/**
 * Grows the ext4 file system in the region `offset`..`offset + bytes` of `disk` (its root partition) to
 * fill it: an image is sized to its content, the root partition to the disk, and without this the rest of
 * the partition stays unused. On a disk that is a block device it works on the partition's node (`node`,
 * from sfdisk); on a disk that is a file (the netns lab's) the region is attached as a loop device of
 * exactly the partition's size. Never DISK?offset=N: resize2fs takes a disk that is a regular file for the
 * file system's own and truncates it to the file system's size, which cut the partition's tail and the
 * GPT's backup header off the lab's disk files.
 * Safe to run again after a crash: loop devices left on the region are detached first, e2fsck -f repairs
 * what an interrupted resize left, and resize2fs to the size the file system already has does nothing.
 */
export async function growFilesystem(
  shell: Shell,
  region: { disk: string; offset: number; bytes: number; node?: string },
): Promise<{ fromBytes: number; toBytes: number }> {
  const { disk, offset, bytes, node } = region;
  const isBlock = node !== undefined && (await shell.run('test', ['-b', disk])).code === 0;
  const stale = await shell.run('losetup', ['-n', '-O', 'NAME', '-j', disk, '-o', String(offset)]);
  for (const dev of stale.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean))
    await runChecked(shell, 'losetup', ['-d', dev]);
  const before = await filesystemSize(shell, `${disk}?offset=${offset}`);
  if (before.blocks * before.blockSize > bytes)
    throw new PermanentError(
      `${shell.where}: the file system at ${disk} offset ${offset} has ${before.blocks * before.blockSize} bytes, more than its partition's ${bytes}`,
      'use a larger disk or a smaller swap in the layout',
    );
  const dev = isBlock
    ? node
    : (
        await runChecked(shell, 'losetup', [
          '--find',
          '--show',
          '-o',
          String(offset),
          '--sizelimit',
          String(bytes),
          disk,
        ])
      ).stdout.trim();
  try {
    const fsck = await shell.run('e2fsck', ['-f', '-y', dev]);
    // 0: clean, 1: errors corrected, 2: corrected, reboot advised (meaningless here, nothing is mounted).
    if (fsck.code > 2)
      throw new PermanentError(
        `${shell.where}: e2fsck -f -y on the root partition of ${disk} exited ${fsck.code}: ${(fsck.stderr || fsck.stdout).trim().split('\n').slice(-2).join(' ')}`,
        'deploy the host again: the image is rewritten, since its checksum no longer matches what is on the disk',
      );
    await runChecked(shell, 'resize2fs', [dev]);
    const after = await filesystemSize(shell, dev);
    const want = Math.floor(bytes / after.blockSize);
    if (after.blocks !== want)
      throw new Error(`${shell.where}: resize2fs left the root file system at ${after.blocks} blocks, not ${want}`);
    return { fromBytes: before.blocks * before.blockSize, toBytes: after.blocks * after.blockSize };
  } finally {
    if (!isBlock) await shell.run('losetup', ['-d', dev]);
  }
}
