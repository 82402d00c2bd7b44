// VM disks on a real Dom0, through the same Shell (local, or SSH as root) the xl driver uses: `cp --reflink=auto
// --sparse=always` or `qemu-img create -f qcow2 -b` in file and NFS pools, `lvcreate -s` in LVM pools, `mount -t
// nfs` for NFS pools, `df` / `vgs` / `lvs` for space, `rsync` over SSH for a cold move's copy, `sha256sum` to check
// it. A disk is made under a temporary name and renamed, so a disk at its final path is always complete.

import { CommandError, runChecked, type Shell } from '../shell.ts';
import type { PoolSpec } from '../../site/model.ts';
import { poolLocation, type ObservedPool } from '../../site/observed.ts';
import { imagePath, poolOnHost } from '../../site/storage.ts';
import { StorageRefusal, type CopyTarget, type DiskProgress, type Storage, type VmDisk } from './storage.ts';

/** `df -B1M --output=size,avail PATH`: a header line, then size and available MiB. */
export function parseDf(stdout: string): { sizeMiB: number; freeMiB: number } {
  const line = stdout.trim().split('\n').at(-1)?.trim().split(/\s+/) ?? [];
  const [size, avail] = line.map((x) => Number(x.replace(/M$/, '')));
  if (!Number.isFinite(size) || !Number.isFinite(avail))
    throw new Error(`unexpected df output: ${stdout.slice(0, 200)}`);
  return { sizeMiB: size!, freeMiB: avail! };
}

/** `vgs --noheadings --units m --nosuffix -o vg_size,vg_free VG`. */
export function parseVgs(stdout: string): { sizeMiB: number; freeMiB: number } {
  const [size, free] = stdout.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(size) || !Number.isFinite(free))
    throw new Error(`unexpected vgs output: ${stdout.slice(0, 200)}`);
  return { sizeMiB: Math.floor(size!), freeMiB: Math.floor(free!) };
}

/** `lvs --noheadings --units m --nosuffix --separator , -o lv_name,lv_size,data_percent VG`: one LV a line. */
export function parseLvs(stdout: string): { name: string; sizeMiB: number; dataPercent?: number }[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [name, size, data] = l.split(',').map((x) => x.trim());
      return {
        name: name!,
        sizeMiB: Math.floor(Number(size)),
        ...(data ? { dataPercent: Number(data) } : {}),
      };
    });
}

/** `find DIR -maxdepth 1 -type f -printf '%s %f\n'`: size in bytes and name. */
export function parseFind(stdout: string): { name: string; sizeMiB: number }[] {
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const sp = l.indexOf(' ');
      return { name: l.slice(sp + 1), sizeMiB: Math.ceil(Number(l.slice(0, sp)) / 1048576) };
    });
}

const lvName = (disk: VmDisk) => disk.path.slice(disk.path.lastIndexOf('/') + 1);
const NO_SPACE = /No space left on device|Insufficient free space|insufficient free space/;

export class ShellStorage implements Storage {
  constructor(
    readonly shell: Shell,
    readonly hostName: string,
    /** SSH options for the Dom0-to-Dom0 copy (the same as xl migrate uses). */
    readonly sshCommand = 'ssh -o BatchMode=yes',
  ) {}

  private async run(program: string, args: readonly string[]) {
    try {
      return await runChecked(this.shell, program, args);
    } catch (e) {
      if (e instanceof CommandError && NO_SPACE.test(e.result.stderr))
        throw new StorageRefusal(this.hostName, e.message);
      throw e;
    }
  }

  private async ok(program: string, args: readonly string[]): Promise<boolean> {
    return (await this.shell.run(program, args)).code === 0;
  }

  /** Mounts an NFS pool where it is not mounted yet. */
  async mount(pool: PoolSpec): Promise<void> {
    if (await this.ok('mountpoint', ['-q', pool.path!])) return;
    await this.run('mkdir', ['-p', pool.path!]);
    await this.run('mount', ['-t', 'nfs', `${pool.server}:${pool.export}`, pool.path!]);
  }

  async report(pools: readonly PoolSpec[]): Promise<ObservedPool[]> {
    const out: ObservedPool[] = [];
    for (const pool of pools) {
      if (!poolOnHost(pool, this.hostName)) continue;
      try {
        out.push(await this.reportOne(pool));
      } catch {
        // A pool this host does not have (yet) is not reported: the planner then says it cannot see it.
      }
    }
    return out;
  }

  private async reportOne(pool: PoolSpec): Promise<ObservedPool> {
    if (pool.type === 'lvm') {
      const lvs = parseLvs(
        (
          await this.run('lvs', [
            '--noheadings',
            '--units',
            'm',
            '--nosuffix',
            '--separator',
            ',',
            '-o',
            'lv_name,lv_size,data_percent',
            pool.vg!,
          ])
        ).stdout,
      );
      let space = parseVgs(
        (await this.run('vgs', ['--noheadings', '--units', 'm', '--nosuffix', '-o', 'vg_size,vg_free', pool.vg!]))
          .stdout,
      );
      const thin = pool.thinPool ? lvs.find((l) => l.name === pool.thinPool) : undefined;
      if (thin)
        space = { sizeMiB: thin.sizeMiB, freeMiB: Math.floor(thin.sizeMiB * (1 - (thin.dataPercent ?? 0) / 100)) };
      const images = lvs.filter((l) => l.name !== pool.thinPool).map((l) => ({ name: l.name, sizeMiB: l.sizeMiB }));
      return { name: pool.name, type: pool.type, ...space, images, ...poolLocation(pool) };
    }
    if (pool.type === 'nfs') await this.mount(pool);
    const space = parseDf((await this.run('df', ['-B1M', '--output=size,avail', pool.path!])).stdout);
    const images = parseFind(
      (await this.run('find', [pool.path!, '-maxdepth', '1', '-type', 'f', '-printf', '%s %f\\n'])).stdout,
    );
    return { name: pool.name, type: pool.type, ...space, images, ...poolLocation(pool) };
  }

  async exists(disk: VmDisk): Promise<boolean> {
    if (disk.pool.type === 'lvm') return this.ok('lvs', [`${disk.pool.vg}/${lvName(disk)}`]);
    return this.ok('test', ['-f', disk.path]);
  }

  async provision(disk: VmDisk, progress: DiskProgress): Promise<void> {
    const image = imagePath(disk.pool, disk.image);
    if (disk.pool.type === 'nfs') await this.mount(disk.pool);
    await progress(0, `making ${disk.path} from ${image} (${disk.clone})`);
    if (disk.pool.type === 'lvm') {
      // A snapshot of a thin LV is thin and takes no size; a classic snapshot needs room for changes.
      const size = disk.pool.thinPool ? [] : ['-L', `${await this.lvSizeMiB(disk.pool, disk.image)}m`];
      await this.run('lvcreate', ['-s', ...size, '-kn', '-ay', '-n', lvName(disk), `${disk.pool.vg}/${disk.image}`]);
    } else {
      const part = `${disk.path}.part`;
      if (disk.clone === 'overlay')
        await this.run('qemu-img', ['create', '-f', 'qcow2', '-F', 'raw', '-b', image, part]);
      else await this.run('cp', ['--reflink=auto', '--sparse=always', image, part]);
      await this.run('mv', ['-f', part, disk.path]);
    }
    await progress(100, `${disk.path} made from ${disk.image}`);
  }

  private async lvSizeMiB(pool: PoolSpec, lv: string): Promise<number> {
    const r = await this.run('lvs', [
      '--noheadings',
      '--units',
      'm',
      '--nosuffix',
      '-o',
      'lv_size',
      `${pool.vg}/${lv}`,
    ]);
    return Math.ceil(Number(r.stdout.trim()));
  }

  async remove(disk: VmDisk): Promise<void> {
    if (disk.pool.type === 'lvm') {
      if (await this.exists(disk)) await this.run('lvremove', ['-y', `${disk.pool.vg}/${lvName(disk)}`]);
      return;
    }
    await this.run('rm', ['-f', disk.path]);
  }

  async checksum(disk: VmDisk): Promise<string> {
    return (await this.run('sha256sum', [disk.path])).stdout.trim().split(/\s+/)[0]!;
  }

  async checksumOn(disk: VmDisk, target: CopyTarget): Promise<string> {
    const r = await this.run(this.sshArgv()[0]!, [
      ...this.sshArgv().slice(1),
      `root@${target.address}`,
      'sha256sum',
      disk.path,
    ]);
    return r.stdout.trim().split(/\s+/)[0]!;
  }

  private sshArgv(): string[] {
    return this.sshCommand.split(/\s+/);
  }

  async copyTo(disk: VmDisk, target: CopyTarget, progress: DiskProgress): Promise<void> {
    const dest = `root@${target.address}:${disk.path}`;
    await progress(0, `copying ${disk.path} to ${target.host}`);
    if (disk.pool.type === 'lvm') {
      // The target LV must exist at the source's size before rsync writes into the device.
      const size = await this.lvSizeMiB(disk.pool, lvName(disk));
      const ssh = this.sshArgv();
      const there = await this.shell.run(ssh[0]!, [
        ...ssh.slice(1),
        `root@${target.address}`,
        'lvs',
        `${disk.pool.vg}/${lvName(disk)}`,
      ]);
      if (there.code !== 0)
        await this.run(ssh[0]!, [
          ...ssh.slice(1),
          `root@${target.address}`,
          'lvcreate',
          '-L',
          `${size}m`,
          '-n',
          lvName(disk),
          disk.pool.vg!,
        ]);
      await this.run('rsync', [
        '--copy-devices',
        '--write-devices',
        '--inplace',
        '--info=progress2',
        '-e',
        this.sshCommand,
        disk.path,
        dest,
      ]);
    } else {
      // rsync writes a temporary file and renames it when complete: the target never holds half a disk.
      await this.run('rsync', ['--sparse', '--info=progress2', '-e', this.sshCommand, disk.path, dest]);
    }
    await progress(100, `${disk.path} copied to ${target.host}`);
  }
}
