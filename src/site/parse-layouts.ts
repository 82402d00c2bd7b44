// Reads the disk layouts of <Hosts>: <Layout name swap root fs> with an optional <VolumeGroup name size>
// (LVM for VM disks) and <Raid1 disks="A B">. Everything is checked here, before any deploy, so a bad
// layout is refused at its line, not half-way through partitioning a machine.

import type { DiskLayoutSpec } from './model.ts';
import { asArray, attr, type Collector, type XmlNode } from './parse-nodes.ts';
import { checkName, parseInteger } from './validate.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

/** Largest partition size accepted, MiB (1 PiB). */
const MAX_PART_MIB = 1 << 30;
const DEVICE = /^\/dev\/[A-Za-z0-9/._-]{1,100}$/;

/** Every <Layout name> in the file, valid or not: a host naming a refused layout gets no second error. */
export function layoutNames(hostsNode: XmlNode): Set<string> {
  return new Set(asArray(hostsNode.Layout).flatMap((n) => attr(n, 'name') ?? []));
}

export function readLayouts(c: Collector, hostsNode: XmlNode, hostsPos: ElementPos | undefined): DiskLayoutSpec[] {
  const layouts: DiskLayoutSpec[] = [];
  const seen = new Set<string>();
  asArray(hostsNode.Layout).forEach((node, i) => {
    const p = childPos(hostsPos, 'Layout', i);
    const name = attr(node, 'name');
    if (name !== undefined && seen.has(name)) {
      c.error(p, `Layout[name=${name}]`, `layout ${name} is declared twice; give each Layout its own name`);
      return;
    }
    if (name !== undefined) seen.add(name);
    const l = readLayout(c, node, p);
    if (l) layouts.push(l);
  });
  return layouts;
}

function readLayout(c: Collector, node: XmlNode, p: ElementPos | undefined): DiskLayoutSpec | undefined {
  const name = attr(node, 'name');
  const label = `Layout[name=${name ?? '?'}]`;
  c.unknown(node, p, label, ['name', 'swap', 'root', 'fs'], ['VolumeGroup', 'Raid1']);
  let ok = true;
  const bad = (el: string, msg: string, at = p) => {
    c.error(at, el, msg);
    ok = false;
  };
  const nErr = checkName(name, 'layout name');
  if (nErr) bad(label, nErr);
  const swap = parseInteger(attr(node, 'swap') ?? '0', 'swap (MiB)', 0, MAX_PART_MIB);
  if (swap.error) bad(`${label}@swap`, swap.error);
  const rootText = attr(node, 'root');
  const root = rootText === undefined ? undefined : parseInteger(rootText, 'root (MiB)', 64, MAX_PART_MIB);
  if (root?.error) bad(`${label}@root`, root.error);
  const fs = attr(node, 'fs') ?? 'ext4';
  if (fs !== 'ext4')
    bad(
      `${label}@fs`,
      `fs "${fs}": the root file system is the Dom0 image's, and the images are ext4; give fs="ext4" or leave it out`,
    );
  const vg = readVolumeGroup(c, node, p, label, bad);
  const raid1 = readRaid1(c, node, p, label, bad);
  if (!ok) return undefined;
  return {
    name: name!,
    swapMiB: swap.value!,
    fs: 'ext4',
    pos: c.pos(p),
    ...(root?.value !== undefined ? { rootMiB: root.value } : {}),
    ...(vg ? { volumeGroup: vg } : {}),
    ...(raid1 ? { raid1 } : {}),
  };
}

type Bad = (element: string, message: string, at?: ElementPos) => void;

function one(c: Collector, node: XmlNode, p: ElementPos | undefined, el: string, label: string, bad: Bad) {
  const list = asArray(node[el]);
  if (list.length > 1) bad(`${label}/${el}`, `a layout has at most one <${el}>`, childPos(p, el, 1));
  return list[0] ? { n: list[0], at: childPos(p, el, 0) } : undefined;
}

function readVolumeGroup(c: Collector, node: XmlNode, p: ElementPos | undefined, label: string, bad: Bad) {
  const v = one(c, node, p, 'VolumeGroup', label, bad);
  if (!v) return undefined;
  const el = `${label}/VolumeGroup`;
  c.unknown(v.n, v.at, el, ['name', 'size'], []);
  const name = attr(v.n, 'name');
  const e = checkName(name, 'volume group name');
  if (e) bad(el, e, v.at);
  const sizeText = attr(v.n, 'size');
  const size = sizeText === undefined ? undefined : parseInteger(sizeText, 'size (MiB)', 1024, MAX_PART_MIB);
  if (size?.error) bad(`${el}@size`, size.error, v.at);
  if (e || size?.error) return undefined;
  return { name: name!, ...(size?.value !== undefined ? { sizeMiB: size.value } : {}) };
}

function readRaid1(
  c: Collector,
  node: XmlNode,
  p: ElementPos | undefined,
  label: string,
  bad: Bad,
): [string, string] | undefined {
  const r = one(c, node, p, 'Raid1', label, bad);
  if (!r) return undefined;
  const el = `${label}/Raid1`;
  c.unknown(r.n, r.at, el, ['disks'], []);
  const disks = (attr(r.n, 'disks') ?? '').trim().split(/\s+/).filter(Boolean);
  if (disks.length !== 2) {
    bad(`${el}@disks`, `RAID1 mirrors two disks: give disks="/dev/sda /dev/sdb" (got ${disks.length})`, r.at);
    return undefined;
  }
  const wrong = disks.find((d) => !DEVICE.test(d));
  if (wrong) {
    bad(`${el}@disks`, `${JSON.stringify(wrong.slice(0, 60))} is not a device path such as /dev/sdb`, r.at);
    return undefined;
  }
  if (disks[0] === disks[1]) {
    bad(`${el}@disks`, `both halves of the mirror are ${disks[0]}; give two different disks`, r.at);
    return undefined;
  }
  return [disks[0]!, disks[1]!];
}
