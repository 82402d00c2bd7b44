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
