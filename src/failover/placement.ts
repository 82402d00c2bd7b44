// Where the VMs of a fenced host go: a new desired state in which they run on the surviving hosts with
// room, highest priority first. Pure: the failover workflow writes the result as a site version, and the
// plan engine creates the VMs (their old domains died with the host, so there is nothing to migrate).

import { addVm, capacityOf, emptyLoad, loadByHost, whyNotFits, type HostLoad } from '../site/capacity.ts';
import type { HostSpec, Site, VmSpec } from '../site/model.ts';
import type { ObservedState } from '../site/observed.ts';

export interface Evacuation {
  site: Site;
  /** VMs given a new host, in the order they were placed (priority, then name). */
  restarted: { vm: string; to: string; priority: number }[];
  /** VMs left on the failed host, with the reason: they start again when it returns or room is made. */
  stranded: { vm: string; why: string }[];
}

export interface EvacuationOptions {
  /** Hosts that must not receive VMs besides the failed one (other suspects, fenced hosts). */
  unavailable?: ReadonlySet<string>;
  /** What agents report: the capacity of implied hosts (a paper-format <DOM0> declares none). */
  observed?: ObservedState;
}

export function evacuate(site: Site, failedHost: string, opts: EvacuationOptions = {}): Evacuation {
  const failed = site.hosts.find((h) => h.name === failedHost);
  if (!failed) throw new Error(`host ${failedHost} is not in the site file`);
  const loads = loadByHost(site.vms);
  const candidates = site.hosts.filter(
    (h) => h.name !== failedHost && !h.maintenance && !opts.unavailable?.has(h.name),
  );
  // Anti-affinity groups present on each candidate, so a restarted VM avoids its group's other members.
  const groupsOn = new Map<string, Set<string>>(candidates.map((h) => [h.name, new Set()]));
  for (const v of site.vms)
    if (v.placement.antiAffinity && v.host !== failedHost) groupsOn.get(v.host)?.add(v.placement.antiAffinity);

  const evacuees = site.vms
    .filter((v) => v.host === failedHost)
    .sort((a, b) => b.placement.priority - a.placement.priority || a.name.localeCompare(b.name));
  const moved = new Map<string, string>();
  const restarted: Evacuation['restarted'] = [];
  const stranded: Evacuation['stranded'] = [];
  const managed = new Set(site.vms.map((v) => v.name));
  // An implied host nobody has observed has no known room: it takes no evacuee.
  const capacity = (h: HostSpec) =>
    capacityOf(h, opts.observed, (vm) => managed.has(vm)) ?? {
      host: h.name,
      memMiB: 0,
      cpus: 0,
      source: 'observed' as const,
    };
  const freeOf = (h: HostSpec, load: HostLoad) => capacity(h).memMiB - load.memMiB;
  for (const vm of evacuees) {
    if (vm.placement.pinned) {
      stranded.push({ vm: vm.name, why: `pinned to ${failedHost}` });
      continue;
    }
    // A VM run from a config file restarts only where that file is (the plan would refuse it elsewhere).
    const file = site.templates.find((t) => t.name === vm.config)?.configFile;
    const hasFile = (h: HostSpec) => {
      const files = opts.observed?.hosts[h.name]?.configFiles;
      return !file || !files || files.some((f) => f.name === file);
    };
    const reachable = candidates.filter(hasFile);
    const fits = reachable.filter((h) => {
      const load = loads.get(h.name) ?? emptyLoad();
      return !whyNotFits(capacity(h), load, vm);
    });
    if (!fits.length) {
      stranded.push({
        vm: vm.name,
        why:
          candidates.length && !reachable.length
            ? `no surviving host holds its config file ${file}`
            : `no surviving host has ${vm.memMiB} MiB and ${vm.vcpus} CPUs free${reachable.length < candidates.length ? ` among those holding ${file}` : ''}`,
      });
      continue;
    }
    const group = vm.placement.antiAffinity;
    const apart = group ? fits.filter((h) => !groupsOn.get(h.name)!.has(group)) : fits;
    // Spread: the host with the most free memory, so the survivors share the extra load.
    const pool = apart.length ? apart : fits;
    const best = pool.reduce((a, b) =>
      freeOf(b, loads.get(b.name) ?? emptyLoad()) > freeOf(a, loads.get(a.name) ?? emptyLoad()) ? b : a,
    );
    let load = loads.get(best.name);
    if (!load) loads.set(best.name, (load = emptyLoad()));
    addVm(load, vm);
    if (group) groupsOn.get(best.name)!.add(group);
    moved.set(vm.name, best.name);
    restarted.push({ vm: vm.name, to: best.name, priority: vm.placement.priority });
  }
  const vms: VmSpec[] = site.vms.map((v) => (moved.has(v.name) ? { ...v, host: moved.get(v.name)! } : v));
  // The failed host stays in the inventory, in maintenance, so nothing is placed on it until an operator
  // has looked at it and clears the flag.
  const hosts = site.hosts.map((h) => (h.name === failedHost ? { ...h, maintenance: true } : h));
  return { site: { ...site, hosts, vms }, restarted, stranded };
}
