// The sfdisk script and the md/LVM commands a site-file layout becomes.
import test from 'ava';
import { layoutDisks, layoutTools, sfdiskScript, volumeCommands } from '../../src/deploy/layout.ts';

test('a volume group layout: BIOS boot, swap, a 20 GiB root by default, the rest an LVM partition', (t) => {
  const l = { swapMiB: 2048, volumeGroup: { name: 'vg0' } };
  t.is(
    sfdiskScript(l),
    [
      'label: gpt',
      'unit: sectors',
      '',
      'size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios"',
      'size=2048MiB, type=S, name="swap"',
      'size=20480MiB, type=L, name="root"',
      'type=V, name="vg"',
      '',
    ].join('\n'),
  );
  t.deepEqual(layoutTools(l), ['pvcreate', 'vgcreate']);
  t.deepEqual(
    volumeCommands(
      l,
      { root: ['/dev/sda3'], vg: ['/dev/sda4'] },
      { offset: 1, bytes: 2, biosOffset: 3, disks: ['/dev/sda'] },
    ),
    ["pvcreate -ff -y '/dev/sda4'", "vgcreate 'vg0' '/dev/sda4'"],
  );
});

test('RAID1: both disks partitioned alike (raid type), GRUB and root copied, md over the halves, VG on md1', (t) => {
  const l = {
    swapMiB: 0,
    rootMiB: 8192,
    volumeGroup: { name: 'vg0', sizeMiB: 4096 },
    raid1: ['/dev/sda', '/dev/sdb'] as [string, string],
  };
  t.regex(sfdiskScript(l), /size=8192MiB, type=R, name="root"\nsize=4096MiB, type=R, name="vg"\n$/);
  t.notRegex(sfdiskScript(l), /name="swap"/);
  t.deepEqual(layoutDisks(l, '/dev/sda'), ['/dev/sda', '/dev/sdb']);
  t.deepEqual(layoutTools(l), ['mdadm', 'pvcreate', 'vgcreate']);
  const cmds = volumeCommands(
    l,
    { root: ['/dev/sda2', '/dev/sdb2'], vg: ['/dev/sda3', '/dev/sdb3'] },
    { offset: 2097152, bytes: 8589934592, biosOffset: 1048576, disks: ['/dev/sda', '/dev/sdb'] },
  );
  t.is(cmds.length, 9);
  t.regex(cmds[0]!, /^dd if='\/dev\/sda' of='\/dev\/sdb' bs=4M skip=0 seek=0 count=440 /);
  t.regex(cmds[1]!, /skip=1048576 seek=1048576 count=1048576 /);
  t.regex(cmds[2]!, /skip=2097152 seek=2097152 count=8589934592 /);
  t.is(
    cmds[3],
    "mdadm --create /dev/md0 --run --level=1 --metadata=1.0 --assume-clean --raid-devices=2 '/dev/sda2' '/dev/sdb2'",
  );
  // The root file system grows to md0's size once the mirror exists, before anything else uses md0.
  t.deepEqual(cmds.slice(4, 6), ['e2fsck -f -y /dev/md0 || [ $? -lt 4 ]', 'resize2fs /dev/md0']);
  t.is(cmds[7], "pvcreate -ff -y '/dev/md1'");
});
