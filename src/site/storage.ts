// Where a VM's disks are and which hosts can reach them: the facts that decide whether a VM can move live
// (its disks on storage both hosts share), must move cold with a disk copy, or cannot be restarted on a host
// at all. Pure: the planner, failover placement and the rebalancer ask these questions of a Site.

import type { DiskClone, DiskSpec, PoolSpec, Site, TemplateSpec, VmSpec } from './model.ts';

/** A disk XSM provisions: its pool, its base image and its path for one VM. */
export interface VmDisk {
  vdev: string;
  pool: PoolSpec;
  image: string;
  clone: DiskClone;
  /** The disk's path (file, nfs) or device (lvm) on a host that has the pool, `{vm}` replaced. */
  path: string;
  format: DiskSpec['format'];
}

/** The clone a pool type makes unless the Disk says otherwise. */
export function defaultClone(pool: PoolSpec): DiskClone {
  return pool.type === 'lvm' ? 'snapshot' : 'copy';
}

/** Where a pooled disk lives, with `{vm}` for the VM's name (the same rule on every host). */
export function pooledTarget(pool: PoolSpec, vdev: string, clone: DiskClone): string {
  if (pool.type === 'lvm') return `/dev/${pool.vg}/{vm}-${vdev}`;
  return `${pool.path}/{vm}-${vdev}.${clone === 'overlay' ? 'qcow2' : 'img'}`;
}

/** Where a pool's base image is on a host that has the pool. */
export function imagePath(pool: PoolSpec, image: string): string {
  return pool.type === 'lvm' ? `/dev/${pool.vg}/${image}` : `${pool.path}/${image}`;
}

export function poolOnHost(pool: PoolSpec, host: string): boolean {
  return !pool.hosts || pool.hosts.includes(host);
}

/** A pool one host alone sees (file, lvm) is counted per host; an NFS pool is one space shared by its hosts. */
export function poolKey(pool: PoolSpec, host: string): string {
  return pool.type === 'nfs' ? pool.name : `${pool.name}@${host}`;
}

/** True when a disk in `pool` on `from` is the same disk on `to` (an NFS pool both mount). */
export function poolShared(pool: PoolSpec, from: string, to: string): boolean {
  return pool.type === 'nfs' && poolOnHost(pool, from) && poolOnHost(pool, to);
}

/** The pooled disks of a VM whose template is `template`; disks without a pool are not XSM's. */
export function templateDisks(template: TemplateSpec | undefined, pools: readonly PoolSpec[], vm: string): VmDisk[] {
  const byName = new Map(pools.map((p) => [p.name, p]));
  const out: VmDisk[] = [];
  for (const d of template?.disks ?? []) {
    const pool = d.pool ? byName.get(d.pool) : undefined;
    if (!pool || !d.image) continue;
    const { pos: _pos, ...where } = pool;
    out.push({
      vdev: d.vdev,
      pool: where,
      image: d.image,
      clone: d.clone ?? defaultClone(pool),
      path: d.target.replaceAll('{vm}', vm),
      format: d.format,
    });
  }
  return out;
}

export function vmDisks(site: Site, vm: VmSpec): VmDisk[] {
  return templateDisks(
    site.templates.find((t) => t.name === vm.config),
    site.pools ?? [],
    vm.name,
  );
}

/** Why `host` cannot reach the VM's disks (one reason per disk), or [] when it can. */
export function unreachableFrom(site: Site, vm: VmSpec, from: string, host: string): string[] {
  const why: string[] = [];
  for (const d of vmDisks(site, vm)) {
    if (d.pool.type === 'nfs') {
      if (!poolOnHost(d.pool, host))
        why.push(`disk ${d.vdev} is in NFS pool ${d.pool.name}, which ${host} does not mount`);
    } else if (host !== from)
      why.push(`disk ${d.vdev} is in ${d.pool.type} pool ${d.pool.name} on ${from}, which only ${from} sees`);
  }
  return why;
}

/**
 * Can `vm` move live from `from` to `to`: are all its disks on storage both hosts share? Disks in no pool are
 * taken to be at the same path on every host, as XSM always assumed for them (docs/site-file.md). The
 * rebalancer passes this as its "may this move be live" predicate.
 */
export function canMoveLive(site: Site, vm: VmSpec, from: string, to: string): boolean {
  return whyNotLive(site, vm, from, to).length === 0;
}

/** Why a live move is impossible (one reason per disk), or [] when it is possible. */
export function whyNotLive(site: Site, vm: VmSpec, from: string, to: string): string[] {
  return vmDisks(site, vm)
    .filter((d) => !poolShared(d.pool, from, to))
    .map((d) =>
      d.pool.type === 'nfs'
        ? `disk ${d.vdev} is in NFS pool ${d.pool.name}, which ${poolOnHost(d.pool, from) ? to : from} does not mount`
        : `disk ${d.vdev} is in ${d.pool.type} pool ${d.pool.name}, which each host has for itself`,
    );
}

/** A predicate the rebalancer takes: may this VM move live between these two hosts? */
export function liveMovePredicate(site: Site): (vm: string, from: string, to: string) => boolean {
  const vms = new Map(site.vms.map((v) => [v.name, v]));
  return (name, from, to) => {
    const vm = vms.get(name);
    return vm ? canMoveLive(site, vm, from, to) : true;
  };
}
