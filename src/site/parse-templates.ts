// Reads a site file's <Templates>: each Template's type, limits, boot files, extra xl text, bridge and disks,
// each checked. A refused Template is remembered so that VMs naming it get no second error.

import type { DiskSpec, PoolSpec, TemplateSpec } from './model.ts';
import { readPooledDisk } from './parse-disk-pool.ts';
import { asArray, attr, MAX_MEM_MIB, MAX_VCPUS, text, type Collector, type XmlNode } from './parse-nodes.ts';
import { checkConfigText, checkName, checkPath, parseInteger } from './validate.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

/** Reports a refused value of one Template, at `at` (the Template's own place when not given). */
type Refuse = (element: string, message: string, at?: ElementPos) => void;

export function readTemplates(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  refused: Set<string>,
  pools: ReadonlyMap<string, PoolSpec> = new Map(),
): TemplateSpec[] {
  const templates: TemplateSpec[] = [];
  if (root.Templates === undefined) return templates;
  const tPos = childPos(rootPos, 'Templates');
  const tNode = (root.Templates && typeof root.Templates === 'object' ? root.Templates : {}) as XmlNode;
  c.unknown(tNode, tPos, 'Templates', [], ['Template']);
  const names = new Set<string>();
  asArray(tNode.Template).forEach((node, i) => {
    const template = readTemplate(c, node, childPos(tPos, 'Template', i), names, refused, pools);
    if (template) templates.push(template);
  });
  return templates;
}

/** One <Template>, or undefined when anything in it is refused (its name then goes into `refused`). */
function readTemplate(
  c: Collector,
  node: XmlNode,
  p: ElementPos | undefined,
  names: Set<string>,
  refused: Set<string>,
  pools: ReadonlyMap<string, PoolSpec>,
): TemplateSpec | undefined {
  const name = attr(node, 'name');
  const label = `Template[name=${name ?? '?'}]`;
  c.unknown(
    node,
    p,
    label,
    ['name', 'type', 'maxmem', 'maxvcpus', 'weight'],
    ['Kernel', 'Ramdisk', 'Bootloader', 'Extra', 'Disk', 'Bridge'],
  );
  let ok = true;
  const bad: Refuse = (el, msg, at = p) => {
    c.error(at, el, msg);
    ok = false;
  };
  const nErr = checkName(name, 'template name');
  if (nErr) bad(label, nErr);
  else if (names.has(name!)) bad(label, `template ${name} is declared twice; give each Template its own name`);
  if (name) names.add(name);
  const type = attr(node, 'type') ?? 'pvh';
  if (type !== 'pv' && type !== 'pvh' && type !== 'hvm')
    bad(`${label}@type`, `type ${JSON.stringify(type)} is not one of pv, pvh, hvm`);
  const { maxMemMiB, maxVcpus, weight } = readTemplateLimits(node, label, bad);
  const pathOf = (key: string) => {
    const v = text(node[key]);
    if (v === undefined || v === '') return undefined;
    const e = checkPath(v, key);
    if (e) bad(`${label}/${key}`, e, childPos(p, key) ?? p);
    return v;
  };
  const kernel = pathOf('Kernel');
  const ramdisk = pathOf('Ramdisk');
  const bootloader = pathOf('Bootloader');
  if (!kernel && !bootloader && type !== 'hvm') bad(label, `a ${type} template needs a <Kernel> or a <Bootloader>`);
  const extra = text(node.Extra);
  if (extra) {
    const e = checkConfigText(extra, 'Extra');
    if (e) bad(`${label}/Extra`, e, childPos(p, 'Extra') ?? p);
  }
  const bridge = text(node.Bridge)?.trim() || 'xenbr0';
  const bErr = checkName(bridge, 'Bridge');
  if (bErr) bad(`${label}/Bridge`, bErr, childPos(p, 'Bridge') ?? p);
  const disks = readDisks(c, node, p, label, bad, pools);
  if (!ok) {
    if (name) refused.add(`template:${name}`);
    return undefined;
  }
  return {
    name: name!,
    type: type as TemplateSpec['type'],
    disks,
    bridge,
    implied: false,
    pos: c.pos(p),
    ...(kernel ? { kernel } : {}),
    ...(ramdisk ? { ramdisk } : {}),
    ...(bootloader ? { bootloader } : {}),
    ...(extra ? { extra } : {}),
    ...(maxMemMiB !== undefined ? { maxMemMiB } : {}),
    ...(maxVcpus !== undefined ? { maxVcpus } : {}),
    ...(weight !== undefined ? { weight } : {}),
  };
}

/** The optional maxmem, maxvcpus and weight attributes: each undefined when not given. */
function readTemplateLimits(
  node: XmlNode,
  label: string,
  bad: Refuse,
): { maxMemMiB?: number; maxVcpus?: number; weight?: number } {
  const opt = (key: string, what: string, min: number, max: number) => {
    const v = attr(node, key);
    if (v === undefined) return undefined;
    const r = parseInteger(v, what, min, max);
    if (r.error) bad(`${label}@${key}`, r.error);
    return r.value;
  };
  const maxMemMiB = opt('maxmem', 'maxmem (MiB)', 16, MAX_MEM_MIB);
  const maxVcpus = opt('maxvcpus', 'maxvcpus', 1, MAX_VCPUS);
  const weight = opt('weight', 'weight', 1, 65535);
  return { maxMemMiB, maxVcpus, weight };
}

/** A Template's <Disk> elements; a disk without a target is left out (and refused). */
function readDisks(
  c: Collector,
  node: XmlNode,
  p: ElementPos | undefined,
  label: string,
  bad: Refuse,
  pools: ReadonlyMap<string, PoolSpec>,
): DiskSpec[] {
  const disks: DiskSpec[] = [];
  const vdevs = new Set<string>();
  asArray(node.Disk).forEach((d, di) => {
    const dp = childPos(p, 'Disk', di);
    const el = `${label}/Disk[${di + 1}]`;
    c.unknown(d, dp, el, ['target', 'vdev', 'format', 'access', 'pool', 'image', 'clone'], []);
    const vdev = attr(d, 'vdev') ?? 'xvda';
    const pooled = readPooledDisk(d, vdev, pools, (msg) => bad(el, msg, dp));
    const target = pooled?.target ?? attr(d, 'target');
    const tErr = pooled || attr(d, 'pool') !== undefined ? undefined : checkPath(target, 'disk target');
    if (tErr) bad(el, tErr, dp);
    if (!/^(xvd|hd|sd)[a-z]{1,2}$/.test(vdev))
      bad(el, `vdev ${JSON.stringify(vdev)} must look like xvda, hda or sda`, dp);
    else if (vdevs.has(vdev)) bad(el, `vdev ${vdev} is used by two disks`, dp);
    vdevs.add(vdev);
    const format = attr(d, 'format') ?? pooled?.format ?? 'raw';
    if (pooled && format !== pooled.format)
      bad(el, `a disk made by ${pooled.clone} is ${pooled.format}, not ${format}; leave format out`, dp);
    if (format !== 'raw' && format !== 'qcow2' && format !== 'vhd')
      bad(el, `format ${JSON.stringify(format)} is not raw, qcow2 or vhd`, dp);
    const access = attr(d, 'access') ?? 'rw';
    if (access !== 'rw' && access !== 'ro') bad(el, `access ${JSON.stringify(access)} is not rw or ro`, dp);
    if (target)
      disks.push({
        target,
        vdev,
        format: format as DiskSpec['format'],
        access: access as DiskSpec['access'],
        ...(pooled ? { pool: pooled.pool, image: pooled.image, clone: pooled.clone } : {}),
      });
  });
  return disks;
}
