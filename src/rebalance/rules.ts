// Where a VM may go: the one place the rebalancer asks "may this VM move at all" and "may this VM be
// placed on that host, with the cluster as the moves so far leave it". Every phase of the planner (draining
// maintenance, spreading load, packing for density) and every intermediate step of a plan goes through
// these two functions, so a new rule is one more entry here and holds everywhere at once.

/** A host as the rebalancer sees it. */
export interface BalanceHost {
  name: string;
  cpus: number;
  /** Memory VMs may use on this host (physical memory less Dom0 and anything XSM does not manage). */
  memMiB: number;
  /** Physical memory, the denominator of the free-memory share hbal scores; default `memMiB`. */
  totalMemMiB?: number;
  /** Memory kept free on top of the VMs (a reserve for Dom0 growth or restarts); default 0. */
  reservedMemMiB?: number;
  /** What CPU load is divided by before it is compared across hosts: the CPU count (default), or 1 for
   *  hbal's absolute load (its utilisation pool). */
  loadPool?: number;
  /** Hosts in maintenance are drained and receive nothing. */
  maintenance?: boolean;
}

/** A VM as the rebalancer sees it. */
export interface BalanceVm {
  name: string;
  host: string;
  memMiB: number;
  vcpus: number;
  /** Busy vCPUs (from Ganglia's vm_cpu_pct / 100), 0..vcpus. */
  cpuLoad: number;
  /** hbal's other dynamic loads (its -U file's memory, disk and network columns); default 0. */
  memLoad?: number;
  diskLoad?: number;
  netLoad?: number;
  pinned?: boolean;
  noRebalance?: boolean;
  antiAffinity?: string;
}

/** What a placement rule may look at: a host's current totals under the moves planned so far. */
export interface HostView {
  readonly spec: BalanceHost;
  /** Memory of the VMs on it now. */
  readonly mem: number;
  /** vCPUs of the VMs on it now. */
  readonly vcpus: number;
  /** Anti-affinity group -> number of its VMs on this host now. */
  readonly groups: ReadonlyMap<string, number>;
  readonly vms: ReadonlySet<BalanceVm>;
}

/** A rule refuses a placement by naming why; undefined lets it through. */
export type PlacementRule = (vm: BalanceVm, to: HostView) => string | undefined;

/** The inputs every rule reads, beside the VM and the host. */
export interface RuleOptions {
  /** VMs moved recently: not moved again until their cooldown ends. */
  cooldown?: ReadonlySet<string>;
  /** False for a VM that cannot move live (its disks would have to be copied): never proposed. */
  canMoveLive?: (vm: BalanceVm) => boolean;
  /** Most vCPUs per physical CPU a host may carry after a move (hbal's vcpu-ratio); default: no limit. */
  maxVcpuRatio?: number;
  /** Rules added by other parts (affinity, exclusions, ...): checked after the built-in ones. */
  extraRules?: readonly PlacementRule[];
}

/** Why `vm` may not leave its host by the balancer's choice (undefined: it may). */
export function whyUnmovable(vm: BalanceVm, o: RuleOptions): string | undefined {
  if (vm.pinned) return 'pinned';
  if (vm.noRebalance) return 'noRebalance';
  if (o.cooldown?.has(vm.name)) return 'cooling down after a recent move';
  if (o.canMoveLive && !o.canMoveLive(vm)) return 'cannot move live';
  return undefined;
}

/**
 * Why `vm` may not be placed on `to` as the cluster stands (undefined: it may). Capacity is checked against
 * the host's current totals, so a plan checked move by move respects capacity at every intermediate step.
 */
export function whyNotPlace(vm: BalanceVm, to: HostView, o: RuleOptions): string | undefined {
  const h = to.spec;
  if (h.maintenance) return `${h.name} is in maintenance`;
  if (to.mem + vm.memMiB > h.memMiB - (h.reservedMemMiB ?? 0)) return `${h.name} lacks memory`;
  if (vm.vcpus > h.cpus) return `${h.name} has fewer CPUs than ${vm.name} has vCPUs`;
  if (o.maxVcpuRatio !== undefined && (to.vcpus + vm.vcpus) / h.cpus > o.maxVcpuRatio + 1e-9)
    return `${h.name} would exceed ${o.maxVcpuRatio} vCPUs per CPU`;
  if (vm.antiAffinity && (to.groups.get(vm.antiAffinity) ?? 0) > 0)
    return `anti-affinity group ${vm.antiAffinity} already on ${h.name}`;
  for (const rule of o.extraRules ?? []) {
    const why = rule(vm, to);
    if (why) return why;
  }
  return undefined;
}
