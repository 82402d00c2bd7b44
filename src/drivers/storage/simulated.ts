// Simulated storage: pools with a size and real free space, base images and disks with content (a sha256), an
// NFS pool one space that every host mounting it sees. It refuses what the real tools would (no space, no such
// image, not mounted) with their words, so workflows and plans meet the same limits as on a Dom0.

import { createHash } from 'node:crypto';
import type { PoolSpec } from '../../site/model.ts';
import { poolLocation, type ObservedPool } from '../../site/observed.ts';
import { imagePath, poolKey, poolOnHost } from '../../site/storage.ts';
import { StorageRefusal, type CopyTarget, type DiskProgress, type Storage, type VmDisk } from './storage.ts';

export interface SimFile {
  name: string;
  sizeMiB: number;
  /** What the bytes are: the sha256 a `sha256sum` of the file gives. */
  sha256: string;
}

/** One pool as it exists: on one host (file, lvm) or on an NFS server, mounted by `mounted`. */
export interface SimPool {
  name: string;
  type: PoolSpec['type'];
  sizeMiB: number;
  files: SimFile[];
  /** NFS only: hosts that have mounted the export. */
  mounted: string[];
  /** Every disk made or copied in, in order: what a test checks to see that nothing was done twice. */
  log: string[];
}

/** Where the simulated pools live; in memory, shared by every SimulatedStorage built on it. */
export class SimPoolStore {
  private readonly pools = new Map<string, SimPool>();
  get(key: string): SimPool | undefined {
    const p = this.pools.get(key);
    return p ? structuredClone(p) : undefined;
  }
  /** Runs `fn` on a copy and keeps it only when `fn` returns: a refusal half-way changes nothing. */
  update<T>(key: string, fn: (p: SimPool) => T): T {
    const p = this.pools.get(key);
    if (!p) throw new Error(`no simulated pool ${key}`);
    const copy = structuredClone(p);
    const out = fn(copy);
    this.pools.set(key, copy);
    return out;
  }
  put(key: string, pool: SimPool): void {
    this.pools.set(key, structuredClone(pool));
  }
}

export interface SimPoolSpec {
  pool: PoolSpec;
  /** The host whose pool this is (file, lvm); absent for NFS (one export for all). */
  host?: string;
  sizeMiB: number;
  images: { name: string; sizeMiB: number }[];
}

/** A base image's content: deterministic, so two hosts' copies of one image have one checksum. */
export function imageSha(pool: string, image: string): string {
  return createHash('sha256').update(`image:${pool}:${image}`).digest('hex');
}

export function provisionSimPool(store: SimPoolStore, spec: SimPoolSpec): void {
  const key = spec.pool.type === 'nfs' ? poolKey(spec.pool, '') : poolKey(spec.pool, spec.host ?? '');
  if (store.get(key)) return;
  store.put(key, {
    name: spec.pool.name,
    type: spec.pool.type,
    sizeMiB: spec.sizeMiB,
    files: spec.images.map((i) => ({ ...i, sha256: imageSha(spec.pool.name, i.name) })),
    mounted: [],
    log: [],
  });
}

const sleep = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());
const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);
const used = (p: SimPool) => p.files.reduce((s, f) => s + f.sizeMiB, 0);
/** What an overlay or a thin snapshot takes when it is made: its metadata. */
const SNAPSHOT_MIB = 1;

export class SimulatedStorage implements Storage {
  constructor(
    readonly store: SimPoolStore,
    readonly hostName: string,
    /** Time a copy takes per GiB (progress is reported in steps of a quarter). */
    readonly copyMsPerGiB = 40,
    /** Called right before and right after a disk operation takes effect (the scenario runner's crash hook). */
    readonly hook?: (op: 'provision' | 'copy', when: 'before' | 'after') => Promise<void>,
  ) {}

  private key(pool: PoolSpec, host = this.hostName): string {
    return poolKey(pool, host);
  }

  /** The pool instance this host sees, or a refusal in the words of the tool that would fail. */
  private seen(pool: PoolSpec, host = this.hostName): SimPool {
    const p = this.store.get(this.key(pool, host));
    if (!p || !poolOnHost(pool, host))
      throw new StorageRefusal(
        host,
        pool.type === 'lvm' ? `Volume group "${pool.vg}" not found` : `${pool.path}: No such file or directory`,
      );
    if (p.type === 'nfs' && !p.mounted.includes(host))
      throw new StorageRefusal(
        host,
        `${pool.path}: not mounted (mount -t nfs ${pool.server}:${pool.export} ${pool.path})`,
      );
    return p;
  }

  async report(pools: readonly PoolSpec[]): Promise<ObservedPool[]> {
    const out: ObservedPool[] = [];
    for (const pool of pools) {
      if (!poolOnHost(pool, this.hostName)) continue;
      const key = this.key(pool);
      const p = this.store.get(key);
      if (!p) continue;
      this.mount(pool);
      out.push({
        name: pool.name,
        type: pool.type,
        sizeMiB: p.sizeMiB,
        freeMiB: p.sizeMiB - used(p),
        images: p.files.map((f) => ({ name: f.name, sizeMiB: f.sizeMiB })),
        ...poolLocation(pool),
      });
    }
    return out;
  }

  async exists(disk: VmDisk): Promise<boolean> {
    // An NFS mount point that is not mounted yet is an empty directory, as on a Dom0.
    const p = this.store.get(this.key(disk.pool));
    if (p?.type === 'nfs' && !p.mounted.includes(this.hostName)) return false;
    return this.seen(disk.pool).files.some((f) => f.name === base(disk.path));
  }

  /** `mount -t nfs` where the host lists the pool and has not mounted it yet (ShellStorage.mount). */
  private mount(pool: PoolSpec): void {
    const key = this.key(pool);
    const p = this.store.get(key);
    if (p?.type === 'nfs' && poolOnHost(pool, this.hostName) && !p.mounted.includes(this.hostName))
      this.store.update(key, (q) => void q.mounted.push(this.hostName));
  }

  async provision(disk: VmDisk, progress: DiskProgress): Promise<void> {
    this.mount(disk.pool);
    const p = this.seen(disk.pool);
    const image = p.files.find((f) => f.name === disk.image);
    if (!image)
      throw new StorageRefusal(
        this.hostName,
        `cannot stat '${imagePath(disk.pool, disk.image)}': No such file or directory`,
      );
    const need = disk.clone === 'copy' ? image.sizeMiB : SNAPSHOT_MIB;
    if (need > p.sizeMiB - used(p))
      throw new StorageRefusal(this.hostName, `error writing '${disk.path}': No space left on device`);
    if (disk.clone === 'copy')
      await this.progressively(image.sizeMiB, `copying ${disk.image} to ${disk.path}`, progress);
    await this.hook?.('provision', 'before');
    this.store.update(this.key(disk.pool), (q) => {
      q.log.push(`${this.hostName}: provision ${disk.path}`);
      if (need > q.sizeMiB - used(q))
        throw new StorageRefusal(this.hostName, `error writing '${disk.path}': No space left on device`);
      if (!q.files.some((f) => f.name === base(disk.path)))
        q.files.push({
          name: base(disk.path),
          // An overlay or snapshot reads as its image until the guest writes: the same content.
          sizeMiB: need,
          sha256: image.sha256,
        });
    });
    await this.hook?.('provision', 'after');
    await progress(100, `${disk.path} made from ${disk.image} (${disk.clone})`);
  }

  private async progressively(sizeMiB: number, what: string, progress: DiskProgress): Promise<void> {
    for (const pct of [0, 25, 50, 75]) {
      await progress(pct, `${what}: ${pct}%`);
      await sleep((this.copyMsPerGiB * sizeMiB) / 1024 / 4);
    }
  }

  async remove(disk: VmDisk): Promise<void> {
    this.seen(disk.pool);
    this.store.update(this.key(disk.pool), (q) => {
      q.files = q.files.filter((f) => f.name !== base(disk.path));
    });
  }

  private file(disk: VmDisk, host: string): SimFile {
    const f = this.seen(disk.pool, host).files.find((x) => x.name === base(disk.path));
    if (!f) throw new StorageRefusal(host, `${disk.path}: No such file or directory`);
    return f;
  }

  async checksum(disk: VmDisk): Promise<string> {
    return this.file(disk, this.hostName).sha256;
  }

  async checksumOn(disk: VmDisk, target: CopyTarget): Promise<string> {
    return this.file(disk, target.host).sha256;
  }

  async copyTo(disk: VmDisk, target: CopyTarget, progress: DiskProgress): Promise<void> {
    const src = this.file(disk, this.hostName);
    const dst = this.seen(disk.pool, target.host);
    if (src.sizeMiB > dst.sizeMiB - used(dst))
      throw new StorageRefusal(target.host, `rsync: write failed on "${disk.path}": No space left on device (28)`);
    await this.progressively(src.sizeMiB, `copying ${disk.path} to ${target.host}`, progress);
    await this.hook?.('copy', 'before');
    this.store.update(this.key(disk.pool, target.host), (q) => {
      q.log.push(`${this.hostName}: copy ${disk.path} to ${target.host}`);
      q.files = q.files.filter((f) => f.name !== src.name);
      q.files.push({ ...src });
    });
    await this.hook?.('copy', 'after');
    await progress(100, `${disk.path} copied to ${target.host}`);
  }
}
