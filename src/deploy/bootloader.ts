// Local boot: an installed Dom0 boots Xen from its own disk with GRUB, as a Debian install with
// xen-hypervisor does, so it needs no deploy server at boot. The installer mounts the new root file
// system, finds the Xen hypervisor and the Dom0 kernel the image carries in /boot (as Debian's
// /etc/grub.d/20_linux_xen does), writes grub.cfg with Debian's Xen entry and runs grub-install on the
// disk (i386-pc: boot.img in the MBR, core.img in the GPT's BIOS boot partition).

import { PermanentError } from '../lib/errors.ts';
import { shellQuote } from '../drivers/ssh/ssh-shell.ts';

/** What the image's /boot holds, as `ls /boot` lists it. */
export interface BootFiles {
  xen: string;
  kernel: string;
  initrd?: string;
}

/** The newest of names like `vmlinuz-6.1.0-18-amd64` (version-sorted, as update-grub sorts). */
function newest(names: readonly string[], prefix: RegExp): string | undefined {
  const ms = names.filter((n) => prefix.test(n));
  ms.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  return ms.at(-1);
}

/**
 * Picks Xen and the Dom0 kernel from the image's /boot listing. Debian installs the hypervisor as
 * `xen-4.17-amd64.gz` (GRUB loads it compressed) and the kernel as `vmlinuz-VERSION`, with its
 * `initrd.img-VERSION` beside it.
 */
export function bootFilesFrom(listing: readonly string[], host: string): BootFiles {
  const xen = newest(listing, /^xen-[0-9.]+(-[a-z0-9]+)?\.gz$/);
  const kernel = newest(listing, /^vmlinuz-/);
  if (!xen || !kernel)
    throw new PermanentError(
      `${host}: the image's /boot has ${xen ? '' : 'no Xen hypervisor (xen-*.gz)'}${!xen && !kernel ? ' and ' : ''}${kernel ? '' : 'no Dom0 kernel (vmlinuz-*)'}: GRUB would have nothing to boot`,
      'rebuild the image with xen-hypervisor-4.17-amd64 and a linux-image package (scripts/build-image)',
    );
  const initrd = `initrd.img-${kernel.slice('vmlinuz-'.length)}`;
  return { xen, kernel, ...(listing.includes(initrd) ? { initrd } : {}) };
}

/**
 * grub.cfg with Debian's Xen entry (the shape of /etc/grub.d/20_linux_xen): Xen by multiboot2, the
 * Dom0 kernel and initrd as its modules. `placeholder` is the word GRUB's multiboot2 passes as argv[0],
 * which Xen drops. The root file system is found by its label, so the entry holds for any layout.
 */
export function renderGrubXenCfg(f: BootFiles, args: { xenArgs: string; kernelArgs: string }): string {
  for (const [what, v] of [
    ['Xen arguments', args.xenArgs],
    ['Dom0 kernel arguments', args.kernelArgs],
  ] as const)
    if (/[\n'"{};]/.test(v)) throw new PermanentError(`${what} "${v}" contain a character grub.cfg would misread`);
  return [
    '# Written by XSM at deploy (src/deploy/bootloader.ts): Xen from the local disk.',
    'set default=0',
    'set timeout=2',
    'serial --unit=0 --speed=115200',
    'terminal_input console serial',
    'terminal_output console serial',
    "menuentry 'Debian GNU/Linux, with Xen hypervisor' --class debian --class gnu-linux --class xen {",
    '\tinsmod part_gpt',
    '\tinsmod ext2',
    '\tsearch --no-floppy --label --set=root root',
    `\techo\t'Loading Xen ${f.xen} ...'`,
    `\tmultiboot2\t/boot/${f.xen} placeholder ${args.xenArgs}`,
    `\techo\t'Loading Linux ${f.kernel} ...'`,
    `\tmodule2\t/boot/${f.kernel} placeholder ${args.kernelArgs}`,
    ...(f.initrd ? [`\techo\t'Loading initial ramdisk ...'`, `\tmodule2\t--nounzip\t/boot/${f.initrd}`] : []),
    '}',
    '',
  ].join('\n');
}

/** The first menu entry's Xen and modules, read back from a grub.cfg (what GRUB would load). */
export function parseGrubXenEntry(cfg: string): { xen: string; modules: string[] } | undefined {
  const entry = /menuentry [^{]*\{([^}]*)\}/.exec(cfg)?.[1];
  if (!entry) return undefined;
  const lines = entry.split('\n').map((l) => l.trim().split(/\s+/));
  const xen = lines.find((w) => w[0] === 'multiboot2')?.[1];
  const modules = lines.filter((w) => w[0] === 'module2').map((w) => w.find((x, i) => i > 0 && !x.startsWith('--'))!);
  return xen ? { xen, modules } : undefined;
}

/** Where the installer mounts the new root file system while installing GRUB (one per host). */
export function bootMountDir(host: string): string {
  return `/tmp/xsm-root-${host}`;
}

/** Where the new root file system is: its partition's device node and byte offset on the disk. */
export interface RootPartition {
  disk: string;
  node: string;
  offset: number;
}

/**
 * The shell lines run in the installer: mount the root partition, list /boot; then, with grub.cfg on
 * stdin, write it and run grub-install. The partition is mounted by its device node: grub-install maps
 * the file system under --boot-directory to a BIOS drive and partition, which it cannot do for a loop
 * device ("cannot find a GRUB drive for /dev/loop0"). A disk that is a plain file (the netns lab's) has
 * no partition nodes and is mounted at its offset instead. Only busybox is assumed (an installer
 * initramfs): no `mountpoint`, and its mount has no `offset=`.
 */
export function mountRootCommand(root: RootPartition, dir: string): string {
  const q = shellQuote;
  const mounted = `grep -qs ${q(` ${dir} `)} /proc/mounts`;
  const mount = `if [ -b ${q(root.node)} ]; then mount ${q(root.node)} ${q(dir)}; else mount -o loop,offset=${root.offset} ${q(root.disk)} ${q(dir)}; fi`;
  return `set -e; mkdir -p ${q(dir)}; ${mounted} || { ${mount}; }; ls -1 ${q(`${dir}/boot`)}`;
}

export function grubInstallCommand(disk: string, dir: string): string {
  const q = shellQuote;
  const boot = `${dir}/boot`;
  return [
    'set -e',
    `trap 'umount ${q(dir)} 2>/dev/null || true' EXIT`,
    `mkdir -p ${q(`${boot}/grub`)}`,
    `cat > ${q(`${boot}/grub/grub.cfg`)}`,
    `grub-install --target=i386-pc --boot-directory=${q(boot)} ${q(disk)} 2>&1`,
  ].join('; ');
}

export function unmountCommand(dir: string): string {
  return `umount ${shellQuote(dir)} 2>/dev/null || true`;
}

/**
 * The arguments of a grub.cfg's first entry: Xen's on its multiboot2 line, the Dom0 kernel's on the first
 * module2 line, each without GRUB's argv[0] word ("placeholder") that Xen drops.
 */
export function parseGrubXenArgs(cfg: string): { xenArgs: string; kernelArgs: string } | undefined {
  const entry = /menuentry [^{]*\{([^}]*)\}/.exec(cfg)?.[1];
  if (!entry) return undefined;
  const words = (kw: string) =>
    entry
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .find((w) => w[0] === kw && w[1] && !w[1].startsWith('--'));
  const xen = words('multiboot2');
  const kernel = words('module2');
  if (!xen || !kernel) return undefined;
  const args = (w: string[]) => w.slice(w[2] === 'placeholder' ? 3 : 2).join(' ');
  return { xenArgs: args(xen), kernelArgs: args(kernel) };
}

/** What an in-place update does to a host's grub.cfg once its /boot holds the image's Xen and kernel. */
export interface GrubUpdate {
  /** grub.cfg naming the Xen and kernel in /boot now, with the arguments the host's entry had. */
  cfg: string;
  files: BootFiles;
  /** What the host's entry loads before the update. */
  was: { xen: string; kernel: string };
  changed: boolean;
}

/**
 * Re-renders a host's Xen entry for the /boot an update leaves (`listing`): an update replaces /boot's
 * Xen and kernel with the image's (rsync --delete removes the old ones) but keeps /boot/grub (GRUB's
 * modules must match the boot code on the disk), so without this the host would look for a kernel that is
 * gone at its next boot. Xen's and the kernel's arguments are the host's own, kept from its entry.
 */
export function grubAfterUpdate(current: string, listing: readonly string[], host: string): GrubUpdate {
  const entry = parseGrubXenEntry(current);
  const args = parseGrubXenArgs(current);
  if (!entry || !args)
    throw new PermanentError(
      `${host}: /boot/grub/grub.cfg has no Xen entry (multiboot2 with a module2 kernel) that XSM can carry over to the new Xen and kernel`,
      "run update-grub on the host (Debian's 20_linux_xen), or redeploy it with xsm host deploy, before it reboots",
    );
  const files = bootFilesFrom(listing, host);
  const cfg = renderGrubXenCfg(files, args);
  const base = (p: string | undefined) => (p ?? '').replace(/^\/boot\//, '');
  return { cfg, files, was: { xen: base(entry.xen), kernel: base(entry.modules[0]) }, changed: cfg !== current };
}
