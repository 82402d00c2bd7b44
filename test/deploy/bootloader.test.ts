// GRUB's Xen entry for local boot: which files it picks from the image's /boot, what grub.cfg says, and
// that a /boot without Xen is refused before anything is written.
import test from 'ava';
import { bootFilesFrom, parseGrubXenEntry, renderGrubXenCfg } from '../../src/deploy/bootloader.ts';
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
