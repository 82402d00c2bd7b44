// What is really running, as host agents report it to Redis. The planner uses it to skip work already
// done and to notice drift; the rebalancer and failover read it with the Ganglia metrics.

import type { DomainInfo } from './domain.ts';

export interface ObservedHost {
  name: string;
  /** Epoch ms of the agent's last heartbeat. */
  heartbeatAt: number;
  totalMemMiB: number;
  freeMemMiB: number;
  nrCpus: number;
  /** Guest domains only (Domain-0 excluded). */
  domains: DomainInfo[];
  /**
   * Set by failover once the host was fenced (powered off and confirmed off): its domains are gone and
   * nothing may be started there until its agent reports again. The agent's next report clears it.
   */
  fencedAt?: number;
  /** The site's storage pools this host sees (absent: the agent reports none, or the site declares none). */
  pools?: ObservedPool[];
  /** The agent's xl config directory (default /etc/xen): where a VM's `config="NAME"` finds NAME.cfg. */
  configDir?: string;
  /**
   * The xl config files in `configDir`, sorted by name. Absent when the agent does not report them (an
   * older agent): the planner then cannot check a VM's file there, and says so.
   */
  configFiles?: ConfigFileInfo[];
}

/** One xl config file a Dom0 holds. */
export interface ConfigFileInfo {
  /** File name inside the config directory, e.g. `apache_svr.cfg`. */
  name: string;
  /** sha256 of its bytes, hex: two hosts hold the same file when these match. */
  sha256: string;
  /** The `name = "..."` the file gives its domain, when it gives one (what `xsm site import` matches). */
  domain?: string;
}

/** A storage pool as one host sees it: its space and the base images and disks in it. */
export interface ObservedPool {
  name: string;
  type: 'file' | 'lvm' | 'nfs';
  sizeMiB: number;
  freeMiB: number;
  /** Files (file, nfs) or logical volumes (lvm) in the pool, by name, with their size. */
  images: { name: string; sizeMiB: number }[];
  /**
   * Where the pool is, as the host has it (the <Pool> attributes): `xsm site import` writes <Pools> from these.
   * Absent from an older agent's report.
   */
  path?: string;
  vg?: string;
  thinPool?: string;
  server?: string;
  export?: string;
}

/** A pool's location fields (the <Pool> attributes besides name, type and hosts), for a report. */
export function poolLocation(pool: {
  path?: string;
  vg?: string;
  thinPool?: string;
  server?: string;
  export?: string;
}): Pick<ObservedPool, 'path' | 'vg' | 'thinPool' | 'server' | 'export'> {
  const out: Pick<ObservedPool, 'path' | 'vg' | 'thinPool' | 'server' | 'export'> = {};
  if (pool.path !== undefined) out.path = pool.path;
  if (pool.vg !== undefined) out.vg = pool.vg;
  if (pool.thinPool !== undefined) out.thinPool = pool.thinPool;
  if (pool.server !== undefined) out.server = pool.server;
  if (pool.export !== undefined) out.export = pool.export;
  return out;
}

export interface ObservedState {
  hosts: Record<string, ObservedHost>;
}

/** Where each VM is observed running, by name. A VM seen on two hosts (mid-migration) maps to the first. */
export function observedPlacement(observed: ObservedState): Map<string, string> {
  const at = new Map<string, string>();
  for (const host of Object.values(observed.hosts)) {
    for (const d of host.domains) if (!at.has(d.name)) at.set(d.name, host.name);
  }
  return at;
}
