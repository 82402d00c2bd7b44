// The deploy's grow-root step on disk files: an ext4 image written into a larger root partition inside a
// disk (read as DISK?offset=N, as the installer does) is grown to the partition, keeps its files, and a
// second run (a resumed job after a crash) changes nothing. Needs root (loop devices).
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalShell, runChecked } from '../../src/drivers/shell.ts';
import { filesystemSize, growFilesystem } from '../../src/deploy/image.ts';

const sh = new LocalShell();
const rootTest = process.getuid?.() === 0 ? test : test.skip;
if (process.getuid?.() !== 0)
  test('grow-root on loop devices', (t) => (t.log('skipped: loop devices need root'), t.pass()));
const MiB = 1048576;

async function diskWithImage(t: { teardown(f: () => Promise<void>): void }, imageMiB: number, partMiB: number) {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-grow-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tree = join(dir, 'tree');
  await runChecked(sh, 'mkdir', ['-p', join(tree, 'etc')]);
  await writeFile(join(tree, 'etc/hostname'), 'image\n');
  const image = join(dir, 'root.img');
  await runChecked(sh, 'mkfs.ext4', ['-q', '-F', '-L', 'root', '-b', '4096', '-d', tree, image, `${imageMiB}M`]);
  // The disk: 1 MiB before the partition (where the GPT and the BIOS boot partition would be), the
  // partition, and 1 MiB after it that must stay untouched.
  const disk = join(dir, 'disk.img');
  const offset = MiB;
  await runChecked(sh, 'truncate', ['-s', `${1 + partMiB + 1}M`, disk]);
  await runChecked(sh, 'dd', [`if=${image}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
  await runChecked(sh, 'sh', [
    '-c',
    `printf 'AFTER' | dd of=${disk} bs=1M seek=${1 + partMiB} conv=notrunc status=none`,
  ]);
  return {
    disk,
    device: `${disk}?offset=${offset}`,
    region: { disk, offset, bytes: partMiB * MiB },
    bytes: partMiB * MiB,
  };
}

rootTest('grow-root: the image fills its partition, keeps its files, and a second run changes nothing', async (t) => {
  const d = await diskWithImage(t, 24, 100);
  t.deepEqual(await filesystemSize(sh, d.device), { blockSize: 4096, blocks: (24 * MiB) / 4096 });
  const g = await growFilesystem(sh, d.region);
  t.deepEqual(g, { fromBytes: 24 * MiB, toBytes: 100 * MiB });
  t.deepEqual(await filesystemSize(sh, d.device), { blockSize: 4096, blocks: (100 * MiB) / 4096 });
  const fsck = await sh.run('e2fsck', ['-f', '-n', d.device]);
  t.is(fsck.code, 0, fsck.stdout + fsck.stderr);
  const cat = await runChecked(sh, 'debugfs', ['-R', 'cat /etc/hostname', d.device]);
  t.is(cat.stdout, 'image\n');
  // The bytes after the partition are not the file system's.
  const after = await runChecked(sh, 'sh', ['-c', `dd if=${d.disk} bs=1M skip=101 count=1 status=none | head -c 5`]);
  t.is(after.stdout, 'AFTER');
  t.is((await runChecked(sh, 'losetup', ['-n', '-j', d.disk])).stdout, '', 'no loop device left behind');
  // Resumed after a crash that left the loop device attached, once the resize was done: same size.
  await runChecked(sh, 'losetup', ['--find', '-o', String(MiB), '--sizelimit', String(d.bytes), d.disk]);
  t.deepEqual(await growFilesystem(sh, d.region), { fromBytes: 100 * MiB, toBytes: 100 * MiB });
  t.is((await runChecked(sh, 'losetup', ['-n', '-j', d.disk])).stdout, '', 'the stale loop device was detached');
});

rootTest('grow-root: a partition that is not a whole number of blocks gets the whole blocks that fit', async (t) => {
  const d = await diskWithImage(t, 16, 50);
  const g = await growFilesystem(sh, { ...d.region, bytes: d.bytes - 1000 });
  t.is(g.toBytes, Math.floor((d.bytes - 1000) / 4096) * 4096);
});

rootTest('grow-root: a file system larger than its partition is refused, untouched, with what to do', async (t) => {
  const d = await diskWithImage(t, 40, 50);
  const e = await t.throwsAsync(growFilesystem(sh, { ...d.region, bytes: 32 * MiB }));
  t.regex(e!.message, /has 41943040 bytes, more than its partition's 33554432 \(use a larger disk/);
  t.is((await runChecked(sh, 'losetup', ['-n', '-j', d.disk])).stdout, '', 'no loop device left behind');
  t.is((await filesystemSize(sh, d.device)).blocks, (40 * MiB) / 4096);
});

rootTest('grow-root: a damaged file system is repaired by e2fsck before it is grown', async (t) => {
  const d = await diskWithImage(t, 24, 64);
  // An inode in use marked free in the bitmap, as a crash between metadata writes can leave.
  await runChecked(sh, 'debugfs', ['-w', '-R', 'freei /etc/hostname', d.device]);
  t.not((await sh.run('e2fsck', ['-f', '-n', d.device])).code, 0, 'the file system is damaged before the step');
  await growFilesystem(sh, d.region);
  t.is((await sh.run('e2fsck', ['-f', '-n', d.device])).code, 0);
  t.is((await filesystemSize(sh, d.device)).blocks, (64 * MiB) / 4096);
});

rootTest('grow-root: on a disk that is a block device it resizes the partition node, no loop device', async (t) => {
  const d = await diskWithImage(t, 24, 64);
  // A block-device disk and its root partition's node: two loop devices over the disk file.
  const attach = async (...args: string[]) =>
    (await runChecked(sh, 'losetup', ['--find', '--show', ...args, d.disk])).stdout.trim();
  const disk = await attach();
  const node = await attach('-o', String(MiB), '--sizelimit', String(d.bytes));
  t.teardown(async () => {
    await sh.run('losetup', ['-d', node]);
    await sh.run('losetup', ['-d', disk]);
  });
  const g = await growFilesystem(sh, { disk, offset: MiB, bytes: d.bytes, node });
  t.is(g.toBytes, 64 * MiB);
  t.is((await filesystemSize(sh, node)).blocks, (64 * MiB) / 4096);
  const attached = (await runChecked(sh, 'losetup', ['-n', '-O', 'NAME', '-j', d.disk])).stdout.trim().split('\n');
  t.deepEqual(attached.sort(), [disk, node].sort(), 'no loop device of its own');
});
