// A template <Disk> that names a pool and a base image: XSM makes the disk from the image when it creates the VM,
// at a path of its own in the pool (src/site/storage.ts), so the Disk gives no target.

import type { DiskClone, DiskSpec, PoolSpec } from './model.ts';
import { attr, type XmlNode } from './parse-nodes.ts';
import { pooledTarget, defaultClone } from './storage.ts';
import { checkName } from './validate.ts';

export interface PooledDisk {
  pool: string;
  image: string;
  clone: DiskClone;
  target: string;
  format: DiskSpec['format'];
}

/** The Disk's pool, image and clone, checked; undefined when it names no pool (or is refused: `bad` was told). */
export function readPooledDisk(
  d: XmlNode,
  vdev: string,
  pools: ReadonlyMap<string, PoolSpec>,
  bad: (message: string) => void,
): PooledDisk | undefined {
  const poolName = attr(d, 'pool');
  const image = attr(d, 'image');
  const cloneText = attr(d, 'clone');
  if (poolName === undefined) {
    if (image !== undefined || cloneText !== undefined)
      bad(`image and clone need a pool="..." to make the disk in; declare one in <Pools>`);
    return undefined;
  }
  const pool = pools.get(poolName);
  if (!pool) {
    bad(
      `pool ${JSON.stringify(poolName)} is not declared in <Pools>${pools.size ? ` (declared: ${[...pools.keys()].join(', ')})` : ''}`,
    );
    return undefined;
  }
  if (attr(d, 'target') !== undefined)
    bad(
      `a disk in pool ${poolName} has its path chosen by XSM (${pooledTarget(pool, vdev, defaultClone(pool))}); leave target out`,
    );
  const iErr = checkName(image, `image (the base image in pool ${poolName})`);
  if (iErr) {
    bad(iErr);
    return undefined;
  }
  const clone = (cloneText ?? defaultClone(pool)) as DiskClone;
  const fits: Record<PoolSpec['type'], DiskClone[]> = {
    file: ['copy', 'overlay'],
    nfs: ['copy', 'overlay'],
    lvm: ['snapshot'],
  };
  if (!fits[pool.type].includes(clone)) {
    bad(
      `clone ${JSON.stringify(cloneText)} does not apply to ${pool.type} pool ${poolName} (it takes ${fits[pool.type].join(' or ')})`,
    );
    return undefined;
  }
  return {
    pool: poolName,
    image: image!,
    clone,
    target: pooledTarget(pool, vdev, clone),
    format: clone === 'overlay' ? 'qcow2' : 'raw',
  };
}
