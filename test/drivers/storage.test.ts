import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalShell, type CommandResult, type RunOptions, type Shell } from '../../src/drivers/shell.ts';
import { parseDf, parseFind, parseLvs, parseVgs, ShellStorage } from '../../src/drivers/storage/shell-storage.ts';
import { imageSha, provisionSimPool, SimPoolStore, SimulatedStorage } from '../../src/drivers/storage/simulated.ts';
import { StorageRefusal } from '../../src/drivers/storage/storage.ts';
import type { PoolSpec } from '../../src/site/model.ts';
import type { VmDisk } from '../../src/site/storage.ts';

const fx = (f: string) => readFileSync(new URL(`./fixtures/storage/${f}`, import.meta.url), 'utf8');

class RecordedShell implements Shell {
  readonly where = 'recorded';
  calls: string[] = [];
  constructor(private readonly answer: (line: string) => CommandResult = () => ok()) {}
  async run(program: string, args: readonly string[], _o: RunOptions = {}): Promise<CommandResult> {
    const line = [program, ...args].join(' ');
    this.calls.push(line);
    return this.answer(line);
  }
}
const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string): CommandResult => ({ code: 1, stdout: '', stderr });
const progress = async () => {};

const filePool = (path: string): PoolSpec => ({ name: 'local', type: 'file', path });
const lvmPool: PoolSpec = { name: 'vg', type: 'lvm', vg: 'vg0', thinPool: 'thin0' };
const nfsPool: PoolSpec = {
  name: 'shared',
  type: 'nfs',
  server: '192.168.5.1',
  export: '/export/xen',
  path: '/mnt/xsm/shared',
  hosts: ['h1', 'h2'],
};
function disk(pool: PoolSpec, vm: string, clone: VmDisk['clone'] = 'copy', image = 'deb12.img'): VmDisk {
  const path =
    pool.type === 'lvm'
      ? `/dev/${pool.vg}/${vm}-xvda`
      : `${pool.path}/${vm}-xvda.${clone === 'overlay' ? 'qcow2' : 'img'}`;
  return { vdev: 'xvda', pool, image, clone, path, format: clone === 'overlay' ? 'qcow2' : 'raw' };
}

test('reads the space and contents of pools from recorded df, find, vgs and lvs output', (t) => {
  t.deepEqual(parseDf(fx('df.txt')), { sizeMiB: 258020, freeMiB: 78482 });
  t.deepEqual(parseFind(fx('find.txt')), [
    { name: 'sparse.img', sizeMiB: 2048 },
    { name: 'deb12.img', sizeMiB: 3 },
  ]);
  t.deepEqual(parseVgs(fx('vgs.txt')), { sizeMiB: 10236, freeMiB: 4092 });
  t.deepEqual(parseLvs(fx('lvs.txt'))[1], { name: 'thin0', sizeMiB: 8192, dataPercent: 12.5 });
  t.throws(() => parseDf('garbage'), { message: /unexpected df output/ });
});

test('a file pool on this machine: the real cp makes the disk under a temporary name, sha256sum checks it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-storage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(3 * 1048576, 7);
  await writeFile(join(dir, 'deb12.img'), bytes);
  const storage = new ShellStorage(new LocalShell(), 'here');
  const pool = filePool(dir);
  const [report] = await storage.report([pool]);
  t.like(report, { name: 'local', type: 'file', images: [{ name: 'deb12.img', sizeMiB: 3 }] });
  t.true(report!.freeMiB > 0 && report!.sizeMiB >= report!.freeMiB);
  const d = disk(pool, 'web1');
  t.false(await storage.exists(d));
  const seen: number[] = [];
  await storage.provision(d, async (p) => void seen.push(p));
  t.deepEqual(seen, [0, 100]);
  t.true(await storage.exists(d));
  await t.throwsAsync(stat(`${d.path}.part`));
  t.is(await storage.checksum(d), createHash('sha256').update(bytes).digest('hex'));
  t.deepEqual(await readFile(d.path), bytes);
  await storage.remove(d);
  t.false(await storage.exists(d));
});

test('the command lines for each pool kind, as run on a Dom0', async (t) => {
  const sh = new RecordedShell((line) => {
    if (line.startsWith('mountpoint')) return fail('');
    if (line.startsWith('lvs --noheadings --units m --nosuffix --separator')) return ok(fx('lvs.txt'));
    if (line.startsWith('vgs')) return ok(fx('vgs.txt'));
    if (line.startsWith('df')) return ok(fx('df.txt'));
    if (line.startsWith('find')) return ok(fx('find.txt'));
    if (line.startsWith('sha256sum') || line.includes(' sha256sum ')) return ok(fx('sha256sum.txt'));
    return ok();
  });
  const s = new ShellStorage(sh, 'xen01');
  await s.provision(disk(filePool('/srv/xen/pool'), 'a'), progress);
  await s.provision(disk(filePool('/srv/xen/pool'), 'b', 'overlay'), progress);
  await s.provision(disk(lvmPool, 'c', 'snapshot', 'deb12'), progress);
  await s.provision(disk(nfsPool, 'd'), progress);
  await s.copyTo(disk(filePool('/srv/xen/pool'), 'a'), { host: 'xen02', address: '192.168.5.102' }, progress);
  t.is(
    await s.checksumOn(disk(filePool('/srv/xen/pool'), 'a'), { host: 'xen02', address: '192.168.5.102' }),
    '02c9be7ae9d103cb8e04622fdb7e0a0c121621d2f507eb33261f10846e301fab',
  );
  const lvm = await s.report([lvmPool]);
  t.deepEqual(lvm[0], {
    name: 'vg',
    type: 'lvm',
    sizeMiB: 8192,
    freeMiB: 7168,
    images: [
      { name: 'deb12', sizeMiB: 2048 },
      { name: 'web1-xvda', sizeMiB: 2048 },
    ],
    vg: 'vg0',
    thinPool: 'thin0',
  });
  t.deepEqual(sh.calls.slice(0, 12), [
    'cp --reflink=auto --sparse=always /srv/xen/pool/deb12.img /srv/xen/pool/a-xvda.img.part',
    'mv -f /srv/xen/pool/a-xvda.img.part /srv/xen/pool/a-xvda.img',
    'qemu-img create -f qcow2 -F raw -b /srv/xen/pool/deb12.img /srv/xen/pool/b-xvda.qcow2.part',
    'mv -f /srv/xen/pool/b-xvda.qcow2.part /srv/xen/pool/b-xvda.qcow2',
    'lvcreate -s -kn -ay -n c-xvda vg0/deb12',
    'mountpoint -q /mnt/xsm/shared',
    'mkdir -p /mnt/xsm/shared',
    'mount -t nfs 192.168.5.1:/export/xen /mnt/xsm/shared',
    'cp --reflink=auto --sparse=always /mnt/xsm/shared/deb12.img /mnt/xsm/shared/d-xvda.img.part',
    'mv -f /mnt/xsm/shared/d-xvda.img.part /mnt/xsm/shared/d-xvda.img',
    'rsync --sparse --info=progress2 -e ssh -o BatchMode=yes /srv/xen/pool/a-xvda.img root@192.168.5.102:/srv/xen/pool/a-xvda.img',
    'ssh -o BatchMode=yes root@192.168.5.102 sha256sum /srv/xen/pool/a-xvda.img',
  ]);
});

test('out of space on a Dom0 is a refusal that does not retry', async (t) => {
  const s = new ShellStorage(
    new RecordedShell((line) =>
      line.startsWith('cp ')
        ? fail("cp: error writing '/srv/xen/pool/a-xvda.img.part': No space left on device")
        : ok(),
    ),
    'xen01',
  );
  await t.throwsAsync(s.provision(disk(filePool('/srv/xen/pool'), 'a'), progress), {
    instanceOf: StorageRefusal,
    message: /xen01: .*No space left on device/,
  });
});

test('the simulator: an NFS pool one space seen by the hosts that mount it, local pools per host, real free space', async (t) => {
  const store = new SimPoolStore();
  const images = [{ name: 'deb12.img', sizeMiB: 1024 }];
  provisionSimPool(store, { pool: nfsPool, sizeMiB: 3000, images });
  for (const host of ['h1', 'h2'])
    provisionSimPool(store, { pool: filePool('/srv/xen/pool'), host, sizeMiB: 2500, images });
  const h1 = new SimulatedStorage(store, 'h1', 0);
  const h2 = new SimulatedStorage(store, 'h2', 0);
  const h3 = new SimulatedStorage(store, 'h3', 0);
  const pools = [nfsPool, filePool('/srv/xen/pool')];
  await h1.report(pools);
  await h2.report(pools);
  t.deepEqual(await h3.report(pools), []);
  const shared = disk(nfsPool, 'vm1');
  const seen: number[] = [];
  await h1.provision(shared, async (p) => void seen.push(p));
  t.deepEqual(seen, [0, 25, 50, 75, 100]);
  // h2 sees the disk h1 made: same export.
  t.true(await h2.exists(shared));
  t.is((await h2.report(pools))[0]!.freeMiB, 3000 - 2048);
  // Local pools do not share: h2 does not see h1's local disk, and a second copy does not fit.
  const local = disk(filePool('/srv/xen/pool'), 'vm2');
  await h1.provision(local, progress);
  t.false(await h2.exists(local));
  await t.throwsAsync(h1.provision(disk(filePool('/srv/xen/pool'), 'vm3'), progress), {
    instanceOf: StorageRefusal,
    message: /No space left on device/,
  });
  // A cold move's copy lands on the other host with the same checksum.
  t.is(await h1.checksum(local), imageSha('local', 'deb12.img'));
  await h1.copyTo(local, { host: 'h2', address: 'h2' }, progress);
  t.is(await h1.checksumOn(local, { host: 'h2', address: 'h2' }), await h1.checksum(local));
  // h3 does not list the NFS pool: it never mounts it, sees no disk there, and cannot make one.
  t.false(await h3.exists(shared));
  await t.throwsAsync(h3.provision(disk(nfsPool, 'vm9'), progress), {
    instanceOf: StorageRefusal,
    message: /h3: \/mnt\/xsm\/shared: No such file or directory/,
  });
});
