// A host's disk layout as an sfdisk script (GPT: BIOS boot for GRUB, swap, root taking the rest), and
// reading back where the root partition landed, from `sfdisk --json`.

import { PermanentError } from '../lib/errors.ts';

export interface DiskLayout {
  swapMiB: number;
  /** Root size; absent: the rest of the disk. */
  rootMiB?: number;
}

export const DEFAULT_LAYOUT: DiskLayout = { swapMiB: 4096 };

export function sfdiskScript(layout: DiskLayout): string {
  if (!Number.isInteger(layout.swapMiB) || layout.swapMiB < 0)
    throw new PermanentError(`disk layout: swap ${layout.swapMiB} MiB is not a whole, non-negative number`);
  const lines = [
    'label: gpt',
    'unit: sectors',
    '',
    'size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios"',
  ];
  if (layout.swapMiB > 0) lines.push(`size=${layout.swapMiB}MiB, type=S, name="swap"`);
  lines.push(layout.rootMiB ? `size=${layout.rootMiB}MiB, type=L, name="root"` : 'type=L, name="root"');
  return lines.join('\n') + '\n';
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
