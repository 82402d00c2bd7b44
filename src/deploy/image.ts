// Dom0 images: a root file system image (ext4, raw) with a manifest of its size and checksum, which is
// what every transfer method delivers into the root partition and what the installer verifies.
// `buildLabImage` makes a small one for the lab and the benchmark; scripts/build-image builds the real
// Dom0 image (Debian bookworm by debootstrap + Xen + xen-utils + openssh + ganglia-monitor + the agent).

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runChecked, LocalShell } from '../drivers/shell.ts';
import { PermanentError } from '../lib/errors.ts';

export interface ImageManifest {
  name: string;
  /** File name inside the images directory (the rsync module's root). */
  file: string;
  bytes: number;
  sha256: string;
  builtAt: string;
  description: string;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function writeManifest(
  imagesDir: string,
  name: string,
  file: string,
  description: string,
): Promise<ImageManifest> {
  const path = join(imagesDir, file);
  const m: ImageManifest = {
    name,
    file,
    bytes: (await stat(path)).size,
    sha256: await sha256File(path),
    builtAt: new Date().toISOString(),
    description,
  };
  await writeFile(join(imagesDir, `${name}.json`), JSON.stringify(m, null, 1) + '\n');
  return m;
}

export async function readManifest(imagesDir: string, name: string): Promise<ImageManifest> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new PermanentError(`image name "${name}" is not a plain file name`);
  const raw = await readFile(join(imagesDir, `${name}.json`), 'utf8').catch(() => {
    throw new PermanentError(
      `no image "${name}" in ${imagesDir}`,
      'build it with scripts/build-image or list the images directory',
    );
  });
  return JSON.parse(raw) as ImageManifest;
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
    const file = `${name}.img`;
    await rm(join(imagesDir, file), { force: true });
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
