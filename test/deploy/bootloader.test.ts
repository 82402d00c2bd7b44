// GRUB's Xen entry for local boot: which files it picks from the image's /boot, what grub.cfg says, and
// that a /boot without Xen is refused before anything is written.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootFilesFrom,
  grubAfterUpdate,
  mountRootCommand,
  parseGrubXenArgs,
  parseGrubXenEntry,
  renderGrubXenCfg,
} from '../../src/deploy/bootloader.ts';
import { PermanentError } from '../../src/lib/errors.ts';

const debianBoot = [
  'System.map-6.1.0-18-amd64',
  'config-6.1.0-28-amd64',
  'grub',
  'initrd.img-6.1.0-18-amd64',
  'initrd.img-6.1.0-28-amd64',
  'vmlinuz-6.1.0-18-amd64',
  'vmlinuz-6.1.0-28-amd64',
  'xen-4.17-amd64.config',
  'xen-4.17-amd64.efi',
  'xen-4.17-amd64.gz',
];

test('picks the newest kernel (version order, not text order), its initrd and the gzipped Xen', (t) => {
  t.deepEqual(bootFilesFrom([...debianBoot, 'vmlinuz-6.1.0-9-amd64'], 'xen01'), {
    xen: 'xen-4.17-amd64.gz',
    kernel: 'vmlinuz-6.1.0-28-amd64',
    initrd: 'initrd.img-6.1.0-28-amd64',
  });
});

test('a /boot without Xen is refused, saying what is missing and how to fix the image', (t) => {
  const e = t.throws(() => bootFilesFrom(['vmlinuz-6.1.0-28-amd64'], 'xen01'), { instanceOf: PermanentError });
  t.regex(e!.message, /^xen01: the image's \/boot has no Xen hypervisor \(xen-\*\.gz\): GRUB would have nothing/);
  t.regex(e!.message, /scripts\/build-image/);
  t.throws(() => bootFilesFrom([], 'xen01'), { message: /no Xen hypervisor .* and no Dom0 kernel/ });
});

test("grub.cfg has Debian's Xen entry: multiboot2 Xen, the kernel and initrd as modules, root found by label", (t) => {
  const cfg = renderGrubXenCfg(bootFilesFrom(debianBoot, 'xen01'), {
    xenArgs: 'dom0_mem=4096M,max:4096M',
    kernelArgs: 'root=LABEL=root ro console=hvc0',
  });
  t.regex(cfg, /\n\tmultiboot2\t\/boot\/xen-4\.17-amd64\.gz placeholder dom0_mem=4096M,max:4096M\n/);
  t.regex(cfg, /\n\tmodule2\t\/boot\/vmlinuz-6\.1\.0-28-amd64 placeholder root=LABEL=root ro console=hvc0\n/);
  t.regex(cfg, /\n\tmodule2\t--nounzip\t\/boot\/initrd\.img-6\.1\.0-28-amd64\n/);
  t.regex(cfg, /search --no-floppy --label --set=root root/);
  t.deepEqual(parseGrubXenEntry(cfg), {
    xen: '/boot/xen-4.17-amd64.gz',
    modules: ['/boot/vmlinuz-6.1.0-28-amd64', '/boot/initrd.img-6.1.0-28-amd64'],
  });
});

test('arguments that would break grub.cfg are refused', (t) => {
  const f = bootFilesFrom(debianBoot, 'xen01');
  t.throws(() => renderGrubXenCfg(f, { xenArgs: 'a}; b', kernelArgs: '' }), { message: /Xen arguments/ });
});

/**
 * Runs the installer's mount-and-list line with `mount` on PATH replaced by one that records its
 * arguments and puts a /boot under the mount point (the rest is the machine's sh, grep and ls).
 */
function mountAndList(root: { disk: string; node: string; offset: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'xsm-bootloader-'));
  try {
    const bin = join(dir, 'bin');
    const log = join(dir, 'mount.log');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(
      join(bin, 'mount'),
      `#!/bin/sh\necho "$*" >> ${log}\neval "last=\\\${$#}"\nmkdir -p "$last/boot" && touch "$last/boot/xen-4.17-amd64.gz"\n`,
      { mode: 0o755 },
    );
    const mnt = join(dir, 'root');
    const listing = execFileSync('sh', ['-c', mountRootCommand(root, mnt)], {
      env: { PATH: `${bin}:/usr/bin:/bin` },
      encoding: 'utf8',
    });
    return { listing, mount: readFileSync(log, 'utf8').trim().replaceAll(mnt, 'MNT') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const blockDevice = readdirSync('/dev')
  .map((n) => `/dev/${n}`)
  .find((p) => {
    try {
      return statSync(p).isBlockDevice();
    } catch {
      return false;
    }
  });

test('the root partition is mounted by its device node, which grub-install can map to a BIOS drive', (t) => {
  if (!blockDevice) return t.pass('this machine has no block device in /dev to stand for a partition');
  const r = mountAndList({ disk: '/dev/sda', node: blockDevice, offset: 10485760 });
  t.is(r.mount, `${blockDevice} MNT`, 'no loop device: GRUB cannot find a drive for /dev/loopN');
  t.is(r.listing, 'xen-4.17-amd64.gz\n');
});

test('a disk that is a plain file (no partition nodes) is mounted at the root offset', (t) => {
  const r = mountAndList({ disk: '/var/lib/lab/disk.img', node: '/var/lib/lab/disk.img3', offset: 10485760 });
  t.is(r.mount, '-o loop,offset=10485760 /var/lib/lab/disk.img MNT');
});

test('the mount line needs only busybox: no mountpoint(1), no offset= for a partition node', (t) => {
  const line = mountRootCommand({ disk: '/dev/sda', node: '/dev/sda3', offset: 1 << 20 }, '/tmp/xsm-root-xen01');
  t.false(/\bmountpoint\b/.test(line));
  t.regex(line, /grep -qs ' \/tmp\/xsm-root-xen01 ' \/proc\/mounts/);
});

test('after an in-place update the Xen entry names the new Xen and kernel and keeps the host arguments', (t) => {
  const deployed = renderGrubXenCfg(bootFilesFrom(debianBoot, 'xen01'), {
    xenArgs: 'dom0=pvh dom0_mem=2048M',
    kernelArgs: 'root=LABEL=root ro console=hvc0',
  });
  t.deepEqual(parseGrubXenArgs(deployed), {
    xenArgs: 'dom0=pvh dom0_mem=2048M',
    kernelArgs: 'root=LABEL=root ro console=hvc0',
  });
  // The image's /boot: a newer Xen and kernel, the old ones gone (rsync --delete), GRUB's directory kept.
  const after = [
    'grub',
    'xen-4.19-amd64.gz',
    'vmlinuz-6.1.0-30-amd64',
    'initrd.img-6.1.0-30-amd64',
    'config-6.1.0-30-amd64',
  ];
  const u = grubAfterUpdate(deployed, after, 'xen01');
  t.true(u.changed);
  t.deepEqual(u.was, { xen: 'xen-4.17-amd64.gz', kernel: 'vmlinuz-6.1.0-28-amd64' });
  t.deepEqual(parseGrubXenEntry(u.cfg), {
    xen: '/boot/xen-4.19-amd64.gz',
    modules: ['/boot/vmlinuz-6.1.0-30-amd64', '/boot/initrd.img-6.1.0-30-amd64'],
  });
  t.deepEqual(parseGrubXenArgs(u.cfg), parseGrubXenArgs(deployed));
  // Run again on the result (a resumed job): nothing to change.
  const again = grubAfterUpdate(u.cfg, after, 'xen01');
  t.false(again.changed);
  t.is(again.cfg, u.cfg);
});

test('an update refuses a grub.cfg without a Xen entry and says what to run instead', (t) => {
  const e = t.throws(() =>
    grubAfterUpdate(
      "menuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1.0-28-amd64 root=/dev/sda2\n}\n",
      debianBoot,
      'xen01',
    ),
  );
  t.regex(e!.message, /^xen01: \/boot\/grub\/grub\.cfg has no Xen entry .*\(run update-grub on the host/);
});
