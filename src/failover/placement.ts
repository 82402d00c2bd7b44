// Where the VMs of a fenced host go: a new desired state in which they run on the surviving hosts with
// room, highest priority first. Pure: the failover workflow writes the result as a site version, and the
// plan engine creates the VMs (their old domains died with the host, so there is nothing to migrate).
// Where a VM may go is decided by src/rebalance/rules.ts, as for the rebalancer's drain: pinned VMs and
// excluded hosts are respected, anti-affinity is never broken, and a VM rejoins its affinity group if it can.

import { addVm, capacityOf, emptyLoad, loadByHost, whyNotFits, type HostLoad } from '../site/capacity.ts';
import type { HostSpec, Site, VmSpec } from '../site/model.ts';
import type { ObservedState } from '../site/observed.ts';
import { unreachableFrom } from '../site/storage.ts';
import { PlacementRules } from '../rebalance/rules.ts';

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
  // The failed host's VMs are gone, so they count for no group there.
  const rules = new PlacementRules(
    site.hosts,
    site.vms.map((v) => ({
      name: v.name,
      host: v.host,
      pinned: v.placement.pinned,
      ...(v.placement.antiAffinity ? { antiAffinity: v.placement.antiAffinity } : {}),
      ...(v.placement.affinity ? { affinity: v.placement.affinity } : {}),
      ...(v.placement.excludeHosts ? { excludeHosts: v.placement.excludeHosts } : {}),
    })),
  );
  const nowhere = `${failedHost}:failed`;
  for (const v of site.vms) if (v.host === failedHost) rules.moved(v.name, nowhere);

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
    // A VM restarts only where its disks are: an NFS pool the host mounts, not a failed host's local pool.
    const reachable = candidates.filter(hasFile);
    const reach = reachable.filter((h) => unreachableFrom(site, vm, failedHost, h.name).length === 0);
    if (reachable.length && !reach.length) {
      const why = [...new Set(candidates.flatMap((h) => unreachableFrom(site, vm, failedHost, h.name)))];
      stranded.push({ vm: vm.name, why: `no surviving host can reach its disks: ${why.join('; ')}` });
      continue;
    }
    const fits = reach.filter((h) => {
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
    const allowed = fits.filter((h) => rules.whyNot(vm.name, h.name, 'evacuate') === undefined);
    if (!allowed.length) {
      const why = fits.map((h) => `${h.name}: ${rules.whyNot(vm.name, h.name, 'evacuate')}`).join('; ');
      stranded.push({ vm: vm.name, why: `no host with room may take it (${why})` });
      continue;
    }
    // Beside its affinity group when one of those hosts has room; then spread: the host with the most free
    // memory, so the survivors share the extra load.
    const together = allowed.filter((h) => rules.matesOn(vm.name, h.name) > 0);
    const pool = together.length ? together : allowed;
    const best = pool.reduce((a, b) =>
      freeOf(b, loads.get(b.name) ?? emptyLoad()) > freeOf(a, loads.get(a.name) ?? emptyLoad()) ? b : a,
    );
    let load = loads.get(best.name);
    if (!load) loads.set(best.name, (load = emptyLoad()));
    addVm(load, vm);
    rules.moved(vm.name, best.name);
    moved.set(vm.name, best.name);
    restarted.push({ vm: vm.name, to: best.name, priority: vm.placement.priority });
  }
  const vms: VmSpec[] = site.vms.map((v) => (moved.has(v.name) ? { ...v, host: moved.get(v.name)! } : v));
  // The failed host stays in the inventory, in maintenance, so nothing is placed on it until an operator
  // has looked at it and clears the flag.
  const hosts = site.hosts.map((h) => (h.name === failedHost ? { ...h, maintenance: true } : h));
  return { site: { ...site, hosts, vms }, restarted, stranded };
}
