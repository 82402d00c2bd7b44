// The VM list of GET /api/vms and `xsm status`: each VM the current version declares, where the agents
// observe it and whether as declared; and the domains they observe that no version declares.

import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { currentSite } from './site-service.ts';

export interface ObservedAt {
  host: string;
  state: string;
  memMiB: number;
  vcpus: number;
}

export interface VmListing {
  vms: {
    name: string;
    set: string;
    desired: { host: string; memMiB: number; vcpus: number; config: string };
    observed: ObservedAt[];
    inSync: boolean;
  }[];
  unmanaged: { name: string; observed: ObservedAt[] }[];
}

/** Reads only the site and observed stores, so a worker thread holding just those can build it. */
export async function listVms(rt: Pick<ServiceRuntime, 'sites' | 'observed'>): Promise<VmListing> {
  const { site } = await currentSite(rt);
  const observed = await rt.observed.all();
  const seen = new Map<string, ObservedAt[]>();
  for (const h of Object.values(observed.hosts)) {
    for (const d of h.domains) {
      const at = { host: h.name, state: d.state, memMiB: d.memMiB, vcpus: d.vcpus };
      const list = seen.get(d.name);
      if (list) list.push(at);
      else seen.set(d.name, [at]);
    }
  }
  const vms = (site?.vms ?? []).map((v) => {
    const at = seen.get(v.name) ?? [];
    seen.delete(v.name);
    const here = at.find((a) => a.host === v.host);
    return {
      name: v.name,
      set: v.set,
      desired: { host: v.host, memMiB: v.memMiB, vcpus: v.vcpus, config: v.config },
      observed: at,
      inSync: Boolean(here && at.length === 1 && here.memMiB === v.memMiB && here.vcpus === v.vcpus),
    };
  });
  return { vms, unmanaged: [...seen].map(([name, at]) => ({ name, observed: at })) };
}

/** One page of the list: `vms` in name order, `next` (the cursor of the following page) when more follow. */
export interface VmListPage extends VmListing {
  next?: string;
}

const byName = new WeakMap<VmListing, VmListing['vms']>();

/**
 * Up to `limit` VMs named after `after` (all from the first when absent), in name order (code-unit order, so
 * the same on every node); the domains no version declares come with the first page. Pages are cut from one
 * listing as it was built, sorted once per listing.
 */
export function vmListPage(listing: VmListing, limit: number, after?: string): VmListPage {
  let sorted = byName.get(listing);
  if (!sorted) {
    sorted = [...listing.vms].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    byName.set(listing, sorted);
  }
  let lo = 0;
  if (after !== undefined) {
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]!.name <= after) lo = mid + 1;
      else hi = mid;
    }
  }
  const vms = sorted.slice(lo, lo + limit);
  const more = lo + limit < sorted.length;
  return {
    vms,
    unmanaged: after === undefined ? listing.unmanaged : [],
    ...(more && vms.length ? { next: vms[vms.length - 1]!.name } : {}),
  };
}
