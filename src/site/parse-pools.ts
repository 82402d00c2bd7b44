// Reads a site file's <Pools>: where VM disks live (a directory, a volume group or an NFS export) and which hosts
// have each. Optional: the paper's files have none, and a Disk without a pool is a path XSM does not manage.

import type { PoolSpec, PoolType } from './model.ts';
import { asArray, attr, type Collector, type XmlNode } from './parse-nodes.ts';
import { checkAddress, checkName, checkPath } from './validate.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

const POOL_ATTRS = ['name', 'type', 'path', 'vg', 'thinpool', 'server', 'export', 'hosts'];

/**
 * The declared pools. `hostNames` are the hosts a pool's `hosts` may name (undefined: the file lists none, so
 * any safe name is taken, like a paper-format DOM0).
 */
export function readPools(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  hostNames: ReadonlySet<string> | undefined,
): PoolSpec[] {
  const pools: PoolSpec[] = [];
  if (root.Pools === undefined) return pools;
  const pPos = childPos(rootPos, 'Pools');
  const node = (root.Pools && typeof root.Pools === 'object' ? root.Pools : {}) as XmlNode;
  c.unknown(node, pPos, 'Pools', [], ['Pool']);
  const names = new Set<string>();
  asArray(node.Pool).forEach((n, i) => {
    const pool = readPool(c, n, childPos(pPos, 'Pool', i), names, hostNames);
    if (pool) pools.push(pool);
  });
  return pools;
}

function readPool(
  c: Collector,
  node: XmlNode,
  p: ElementPos | undefined,
  names: Set<string>,
  hostNames: ReadonlySet<string> | undefined,
): PoolSpec | undefined {
  const name = attr(node, 'name');
  const label = `Pool[name=${name ?? '?'}]`;
  c.unknown(node, p, label, POOL_ATTRS, []);
  let ok = true;
  const bad = (el: string, msg: string) => {
    c.error(p, el, msg);
    ok = false;
  };
  const nErr = checkName(name, 'pool name');
  if (nErr) bad(label, nErr);
  else if (names.has(name!)) bad(label, `pool ${name} is declared twice; give each Pool its own name`);
  if (name) names.add(name);
  const type = attr(node, 'type');
  if (type !== 'file' && type !== 'lvm' && type !== 'nfs') {
    bad(`${label}@type`, `type ${JSON.stringify(type ?? '')} is not one of file, lvm, nfs`);
    return undefined;
  }
  const fields = typeFields(node, type, label, bad);
  const hosts = poolHosts(attr(node, 'hosts'), label, hostNames, bad);
  if (!ok) return undefined;
  return { name: name!, type, ...fields, ...(hosts ? { hosts } : {}), pos: c.pos(p) };
}

/** What each type needs: a directory (file), a volume group (lvm), a server, export and mount point (nfs). */
function typeFields(
  node: XmlNode,
  type: PoolType,
  label: string,
  bad: (el: string, msg: string) => void,
): Partial<PoolSpec> {
  const needs: Record<PoolType, string[]> = { file: ['path'], lvm: ['vg'], nfs: ['server', 'export', 'path'] };
  const allowed: Record<PoolType, string[]> = {
    file: ['path'],
    lvm: ['vg', 'thinpool'],
    nfs: ['server', 'export', 'path'],
  };
  for (const key of ['path', 'vg', 'thinpool', 'server', 'export'])
    if (attr(node, key) !== undefined && !allowed[type].includes(key))
      bad(`${label}@${key}`, `${key} does not apply to a ${type} pool (it takes ${allowed[type].join(', ')})`);
  for (const key of needs[type])
    if (attr(node, key) === undefined) bad(`${label}@${key}`, `a ${type} pool needs ${key}="..."`);
  const out: Partial<PoolSpec> = {};
  const path = attr(node, 'path');
  if (path !== undefined && allowed[type].includes('path')) {
    const e = checkPath(path, 'path');
    if (e) bad(`${label}@path`, e);
    out.path = path.replace(/\/+$/, '') || '/';
  }
  for (const [key, field] of [
    ['vg', 'vg'],
    ['thinpool', 'thinPool'],
  ] as const) {
    const v = attr(node, key);
    if (v === undefined || type !== 'lvm') continue;
    const e = checkName(v, key);
    if (e) bad(`${label}@${key}`, e);
    out[field] = v;
  }
  if (type === 'nfs') {
    const server = attr(node, 'server');
    const exp = attr(node, 'export');
    if (server !== undefined) {
      const e = checkAddress(server, 'server');
      if (e) bad(`${label}@server`, e);
      out.server = server;
    }
    if (exp !== undefined) {
      const e = checkPath(exp, 'export');
      if (e) bad(`${label}@export`, e);
      out.export = exp;
    }
  }
  return out;
}

/** The `hosts` list: names separated by spaces or commas, each a host of the site, no repeats. */
function poolHosts(
  value: string | undefined,
  label: string,
  hostNames: ReadonlySet<string> | undefined,
  bad: (el: string, msg: string) => void,
): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(/[\s,]+/).filter(Boolean);
  if (!list.length) bad(`${label}@hosts`, 'hosts is empty; name the hosts that have the pool, or leave hosts out');
  const seen = new Set<string>();
  for (const h of list) {
    const e = checkName(h, 'host');
    if (e) bad(`${label}@hosts`, e);
    else if (seen.has(h)) bad(`${label}@hosts`, `host ${h} is listed twice`);
    else if (hostNames && !hostNames.has(h))
      bad(`${label}@hosts`, `host ${h} is not in <Hosts>; list only declared hosts`);
    seen.add(h);
  }
  return list;
}
