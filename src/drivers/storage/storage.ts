// The one interface every workflow uses for VM disks on a host, beside the hypervisor driver. Two
// implementations: ShellStorage (cp, qemu-img, lvcreate, mount, df/vgs, rsync, sha256sum; locally or over the
// SSH shell the xl driver uses) and SimulatedStorage (pools with capacity, images and disks, NFS pools shared).

import type { PoolSpec } from '../../site/model.ts';
import type { ObservedPool } from '../../site/observed.ts';
import type { VmDisk } from '../../site/storage.ts';

export type { VmDisk } from '../../site/storage.ts';

/** Progress of a long disk operation: percent done and a few words. */
export type DiskProgress = (percent: number, message: string) => Promise<void>;

/** Where a cold move copies a disk: the target host's name (simulator) and Dom0 address (rsync over SSH). */
export interface CopyTarget {
  host: string;
  address: string;
}

export interface Storage {
  readonly hostName: string;
  /** The pools of `pools` this host has (mounting NFS pools it lists), with space, images and disks. */
  report(pools: readonly PoolSpec[]): Promise<ObservedPool[]>;
  /** True when the disk is there, complete (a half-made disk is never at its final path). */
  exists(disk: VmDisk): Promise<boolean>;
  /** Makes the disk from its base image (copy, qcow2 overlay or thin snapshot); refuses when out of space. */
  provision(disk: VmDisk, progress: DiskProgress): Promise<void>;
  /** Deletes the disk (absent: nothing to do). */
  remove(disk: VmDisk): Promise<void>;
  /** sha256 of the disk's content, hex. */
  checksum(disk: VmDisk): Promise<string>;
  /** sha256 of the disk's copy on another host (for a cold move's check). */
  checksumOn(disk: VmDisk, target: CopyTarget): Promise<string>;
  /** Copies the disk to the same path in the same pool on `target` (a cold move, the VM stopped). */
  copyTo(disk: VmDisk, target: CopyTarget, progress: DiskProgress): Promise<void>;
}

/** A refusal the storage gives that retrying cannot fix (no space, no such image): the job fails for good. */
export class StorageRefusal extends Error {
  constructor(
    readonly host: string,
    message: string,
  ) {
    super(`${host}: ${message}`);
    this.name = 'StorageRefusal';
  }
}
