// A host's disk layout as an sfdisk script (GPT: BIOS boot for GRUB, swap, root, optionally a partition
// for an LVM volume group, all mirrored on a second disk for RAID1), the commands that make the volume
// group and the mirror, and reading back where the root partition landed, from `sfdisk --json`.
// Layouts come from the site file (<Hosts><Layout>, checked there with located errors).

import { PermanentError } from '../lib/errors.ts';
import { shellQuote } from '../drivers/ssh/ssh-shell.ts';
import type { DiskLayoutSpec } from '../site/model.ts';

export type DiskLayout = Pick<DiskLayoutSpec, 'swapMiB' | 'rootMiB' | 'volumeGroup' | 'raid1'> & { name?: string };

export const DEFAULT_LAYOUT: DiskLayout = { swapMiB: 4096 };
/** Root size when a volume group takes the rest of the disk and the layout gives none. */
export const ROOT_MIB_WITH_VG = 20480;

export function sfdiskScript(layout: DiskLayout): string {
  if (!Number.isInteger(layout.swapMiB) || layout.swapMiB < 0)
    throw new PermanentError(`disk layout: swap ${layout.swapMiB} MiB is not a whole, non-negative number`);
  const raid = Boolean(layout.raid1);
  const lines = [
    'label: gpt',
    'unit: sectors',
    '',
    'size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios"',
  ];
  if (layout.swapMiB > 0) lines.push(`size=${layout.swapMiB}MiB, type=S, name="swap"`);
  const vg = layout.volumeGroup;
  const rootMiB = layout.rootMiB ?? (vg ? ROOT_MIB_WITH_VG : undefined);
  const rootType = raid ? 'R' : 'L';
  lines.push(rootMiB ? `size=${rootMiB}MiB, type=${rootType}, name="root"` : `type=${rootType}, name="root"`);
  if (vg) {
    const type = raid ? 'R' : 'V';
    lines.push(vg.sizeMiB ? `size=${vg.sizeMiB}MiB, type=${type}, name="vg"` : `type=${type}, name="vg"`);
  }
  return lines.join('\n') + '\n';
}

/** The disks a layout partitions: the deploy's disk, or both halves of its mirror. */
export function layoutDisks(layout: DiskLayout, disk: string): string[] {
  return layout.raid1 ? [...layout.raid1] : [disk];
}

/** The tools the installer needs beyond sfdisk for this layout (checked before any disk is touched). */
export function layoutTools(layout: DiskLayout): string[] {
  return [...(layout.raid1 ? ['mdadm'] : []), ...(layout.volumeGroup ? ['pvcreate', 'vgcreate'] : [])];
}

/**
 * After the image is on the first disk: the mirror's second half gets the same root bytes, then md
 * assembles both (metadata 1.0 sits at the end, so each half stays a plain ext4 partition to GRUB and
 * the checksum of the written region still holds); the volume group is made on its partition (or on
 * the mirror of the two vg partitions).
 */
export function volumeCommands(
  layout: DiskLayout,
  nodes: { root: string[]; vg: string[] },
  root: { offset: number; bytes: number; biosOffset: number; disks: string[] },
): string[] {
  const q = shellQuote;
  const out: string[] = [];
  let pv = nodes.vg[0];
  if (layout.raid1) {
    const [a, b] = root.disks;
    const copy = (offset: number, bytes: number) =>
      `dd if=${q(a!)} of=${q(b!)} bs=4M skip=${offset} seek=${offset} count=${bytes} iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc,fsync status=none`;
    // GRUB's boot code (the MBR's first 440 bytes, not the partition table) and its core in the BIOS boot
    // partition, so either disk boots alone; then the root file system, configured, with GRUB's files.
    out.push(copy(0, 440), copy(root.biosOffset, 1 << 20), copy(root.offset, root.bytes));
    out.push(
      `mdadm --create /dev/md0 --run --level=1 --metadata=1.0 --assume-clean --raid-devices=2 ${nodes.root.map(q).join(' ')}`,
      // The image's file system grown to the mirror (not the partition: md's metadata 1.0 is at its end),
      // as grow-root does for a root without a mirror; e2fsck's 1 and 2 mean it corrected something.
      'e2fsck -f -y /dev/md0 || [ $? -lt 4 ]',
      'resize2fs /dev/md0',
    );
    if (layout.volumeGroup) {
      out.push(`mdadm --create /dev/md1 --run --level=1 --metadata=1.0 --raid-devices=2 ${nodes.vg.map(q).join(' ')}`);
      pv = '/dev/md1';
    }
  }
  if (layout.volumeGroup && pv) out.push(`pvcreate -ff -y ${q(pv)}`, `vgcreate ${q(layout.volumeGroup.name)} ${q(pv)}`);
  return out;
}

export interface PartitionPlace {
  /** Byte offset and size of the partition on the disk. */
  offset: number;
  bytes: number;
  node: string;
}

/** Finds the partition named `name` in `sfdisk --json DISK` output. */
export function partitionFromJson(json: string, name: string, disk: string): PartitionPlace {
  let table: {
    partitiontable?: {
      sectorsize?: number;
      partitions?: { node: string; start: number; size: number; name?: string }[];
    };
  };
  try {
    table = JSON.parse(json);
  } catch {
    throw new PermanentError(`${disk}: sfdisk --json gave no JSON`);
  }
  const pt = table.partitiontable;
  const p = pt?.partitions?.find((x) => x.name === name);
  if (!pt || !p) throw new PermanentError(`${disk}: no partition named "${name}" after partitioning`);
  const sector = pt.sectorsize ?? 512;
  return { offset: p.start * sector, bytes: p.size * sector, node: p.node };
}
