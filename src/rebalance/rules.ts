// Where a VM may go, decided in one place with one precedence, for every placer: the rebalancer's moves
// (src/rebalance/balance.ts), its maintenance drain, and failover's restarts (src/failover/placement.ts).
//
//   pin > maintenance (and per-VM host exclusion) > anti-affinity > affinity > balance
//
// A higher rule is never broken for a lower one: a pinned VM stays on a host in maintenance (reported as
// stuck); a drain or failover moves a VM even if that separates it from its affinity group, but never onto
// a host where its anti-affinity group already runs; balancing never separates an affinity group, never
// touches a host that is cooling down, and density packing keeps one spare host's worth of memory.
//
// The rebalancer asks two questions here, "may this VM move at all" (whyUnmovable) and "may it be placed on
// that host, with the cluster as the moves so far leave it" (whyNotPlace); every phase of its planner and
// every intermediate step of a plan goes through them. Failover and drains use PlacementRules below.

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
  /** vCPUs the host's own Dom0 uses: they count in its vCPU-to-CPU ratio like the VMs' (default 0; hbal
   *  counts one CPU per node for the node itself, so htools snapshots get 1). */
  dom0Vcpus?: number;
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
  /** Kept together with the other VMs of this group. */
  affinity?: string;
  /** Hosts this VM must never run on. */
  excludeHosts?: readonly string[];
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

/**
 * The rules below anti-affinity for the balancer, over its working copies of the VMs (whose `host` follows
 * the moves): per-VM host exclusion; affinity (balancing never splits a group: a VM whose mates share its
 * host does not move alone, one whose mates run elsewhere goes only to them); and the per-host cooldown
 * (balancing neither takes from nor gives to a host a recent move touched; `draining()` lifts it, since a
 * drain outranks balance).
 */
export function siteRules(
  vms: readonly BalanceVm[],
  coolingHosts?: ReadonlySet<string>,
): { rules: PlacementRule[]; draining: (on: boolean) => void } {
  const groups = new Map<string, BalanceVm[]>();
  for (const v of vms)
    if (v.affinity) {
      const g = groups.get(v.affinity) ?? [];
      g.push(v);
      groups.set(v.affinity, g);
    }
  let drain = false;
  const rules: PlacementRule[] = [
    (vm, to) =>
      vm.excludeHosts?.includes(to.spec.name) ? `maintenance: ${vm.name} excludes ${to.spec.name}` : undefined,
    (vm, to) => {
      if (!vm.affinity || drain) return undefined;
      const mates = (groups.get(vm.affinity) ?? []).filter((m) => m.name !== vm.name);
      if (mates.some((m) => m.host === vm.host))
        return `affinity: moving ${vm.name} alone would split group ${vm.affinity} on ${vm.host}`;
      const away = [...new Set(mates.map((m) => m.host))].sort();
      return away.length && !away.includes(to.spec.name)
        ? `affinity: group ${vm.affinity} runs on ${away.join(', ')}, not ${to.spec.name}`
        : undefined;
    },
    (vm, to) => {
      if (drain || !coolingHosts?.size) return undefined;
      if (coolingHosts.has(vm.host)) return `balance: ${vm.host} is cooling down after a recent move`;
      if (coolingHosts.has(to.spec.name)) return `balance: ${to.spec.name} is cooling down after a recent move`;
      return undefined;
    },
  ];
  return { rules, draining: (on) => void (drain = on) };
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
  if (o.maxVcpuRatio !== undefined && (to.vcpus + (h.dom0Vcpus ?? 0) + vm.vcpus) / h.cpus > o.maxVcpuRatio + 1e-9)
    return `${h.name} would exceed ${o.maxVcpuRatio} vCPUs per CPU`;
  if (vm.antiAffinity && (to.groups.get(vm.antiAffinity) ?? 0) > 0)
    return `anti-affinity group ${vm.antiAffinity} already on ${h.name}`;
  for (const rule of o.extraRules ?? []) {
    const why = rule(vm, to);
    if (why) return why;
  }
  return undefined;
}

/** The placement facts of one VM the rules need. */
export interface RuleVm {
  name: string;
  host: string;
  pinned?: boolean;
  antiAffinity?: string;
  affinity?: string;
  excludeHosts?: readonly string[];
}

export interface RuleHost {
  name: string;
  maintenance?: boolean;
}

/**
 * Why a VM moves, which sets how much the lower rules bind:
 * - `balance`: one move to spread load; every rule binds, an affinity group is never split;
 * - `pack`: density mode empties a host, all its VMs together: an affinity group moves as one;
 * - `evacuate`: a drain or a failover restart; affinity is only a preference (see `matesOn`).
 */
export type Purpose = 'balance' | 'pack' | 'evacuate';

/** The precedence, highest first, as documented in docs/operations.md. */
export const RULE_ORDER = ['pin', 'maintenance', 'anti-affinity', 'affinity', 'balance'] as const;

export interface RulesOptions {
  /** Hosts a recent move touched: balancing neither takes from nor gives to them. */
  coolingHosts?: ReadonlySet<string>;
}

/** VMs planned to move but not moved yet: name -> target host. */
export type Planned = ReadonlyMap<string, string>;

/**
 * The rules over a placement that changes as the caller moves VMs (`moved`). Group counts per host are
 * kept up to date, so a check costs a few map lookups.
 */
export class PlacementRules {
  private readonly vms = new Map<string, RuleVm>();
  private readonly hostOf = new Map<string, string>();
  private readonly maintenance = new Set<string>();
  /** host -> `a:group` / `f:group` -> VMs of that anti-affinity / affinity group there. */
  private readonly counts = new Map<string, Map<string, number>>();
  /** affinity group -> its members. */
  private readonly affinityMembers = new Map<string, string[]>();

  constructor(
    hosts: readonly RuleHost[],
    vms: readonly RuleVm[],
    private readonly opts: RulesOptions = {},
  ) {
    for (const h of hosts) if (h.maintenance) this.maintenance.add(h.name);
    for (const v of vms) {
      this.vms.set(v.name, v);
      this.hostOf.set(v.name, v.host);
      this.count(v, v.host, 1);
      if (v.affinity) {
        const m = this.affinityMembers.get(v.affinity) ?? [];
        m.push(v.name);
        this.affinityMembers.set(v.affinity, m);
      }
    }
  }

  private count(v: RuleVm, host: string, d: 1 | -1): void {
    let c = this.counts.get(host);
    if (!c) this.counts.set(host, (c = new Map()));
    if (v.antiAffinity) c.set(`a:${v.antiAffinity}`, (c.get(`a:${v.antiAffinity}`) ?? 0) + d);
    if (v.affinity) c.set(`f:${v.affinity}`, (c.get(`f:${v.affinity}`) ?? 0) + d);
  }

  /** Where `vm` runs now (as the moves so far leave it). */
  where(vm: string): string | undefined {
    return this.hostOf.get(vm);
  }

  /** `vm` now runs on `to`. */
  moved(vm: string, to: string): void {
    const v = this.vms.get(vm);
    const from = this.hostOf.get(vm);
    if (!v || from === undefined || from === to) return;
    this.count(v, from, -1);
    this.count(v, to, 1);
    this.hostOf.set(vm, to);
  }

  /** VMs of `key`'s group on `host`, other than `vm`, counting planned moves where they are planned to go. */
  private others(vm: string, key: string, host: string, planned?: Planned): number {
    let n = this.counts.get(host)?.get(key) ?? 0;
    const v = this.vms.get(vm)!;
    if (this.hostOf.get(vm) === host && this.keys(v).includes(key)) n -= 1;
    if (planned)
      for (const [name, to] of planned) {
        if (name === vm) continue;
        const p = this.vms.get(name);
        if (!p || !this.keys(p).includes(key)) continue;
        if (to === host) n += 1;
        if (this.hostOf.get(name) === host) n -= 1;
      }
    return n;
  }
  private keys(v: RuleVm): string[] {
    return [...(v.antiAffinity ? [`a:${v.antiAffinity}`] : []), ...(v.affinity ? [`f:${v.affinity}`] : [])];
  }

  /** Members of `vm`'s affinity group (itself excluded) on `host`: where an evacuee would rather go. */
  matesOn(vm: string, host: string, planned?: Planned): number {
    const v = this.vms.get(vm);
    return v?.affinity ? this.others(vm, `f:${v.affinity}`, host, planned) : 0;
  }

  /** Hosts other than `except` where members of `vm`'s affinity group run (planned moves counted). */
  private matesElsewhere(vm: string, except: string, planned?: Planned): string[] {
    const v = this.vms.get(vm)!;
    if (!v.affinity) return [];
    const out = new Set<string>();
    for (const m of this.affinityMembers.get(v.affinity) ?? []) {
      if (m === vm) continue;
      const h = planned?.get(m) ?? this.hostOf.get(m)!;
      if (h !== except) out.add(h);
    }
    return [...out].sort();
  }

  /**
   * Why `vm` may not go to `to` for `purpose`, naming the rule that says no; undefined when it may.
   * Capacity is the caller's to check. `planned`: moves decided but not made yet (density packing).
   */
  whyNot(vm: string, to: string, purpose: Purpose, planned?: Planned): string | undefined {
    const v = this.vms.get(vm);
    if (!v) return `${vm} is not in the snapshot`;
    const from = this.hostOf.get(vm)!;
    if (to === from) return `${vm} already runs on ${to}`;
    if (v.pinned) return `pin: ${vm} is pinned to ${from}`;
    if (this.maintenance.has(to)) return `maintenance: ${to} is in maintenance`;
    if (v.excludeHosts?.includes(to)) return `maintenance: ${vm} excludes ${to}`;
    if (v.antiAffinity && this.others(vm, `a:${v.antiAffinity}`, to, planned) > 0)
      return `anti-affinity: a VM of group ${v.antiAffinity} runs on ${to}`;
    if (purpose === 'evacuate') return undefined;
    if (v.affinity) {
      if (purpose === 'balance' && this.others(vm, `f:${v.affinity}`, from, planned) > 0)
        return `affinity: moving ${vm} alone would split group ${v.affinity} on ${from}`;
      const away = this.matesElsewhere(vm, from, planned);
      if (away.length && !away.includes(to))
        return `affinity: group ${v.affinity} runs on ${away.join(', ')}, not ${to}`;
    }
    if (this.opts.coolingHosts?.has(from)) return `balance: ${from} is cooling down after a recent move`;
    if (this.opts.coolingHosts?.has(to)) return `balance: ${to} is cooling down after a recent move`;
    return undefined;
  }
}

/** One host's memory as density packing would leave it. */
export interface SpareHost {
  name: string;
  memMiB: number;
  usedMiB: number;
  /** Its biggest VM: a VM restarts whole on one host, so free memory summed across hosts is not enough. */
  largestVmMiB?: number;
}

/**
 * Density mode's reserve: the hosts left running (those with VMs) must together have as much free memory
 * as each one of them uses, and one of the others must have room for its biggest VM, so that any one can
 * fail (or be drained) and its VMs still fit (in memory). Returns why not, or undefined when it holds.
 */
export function whyNoSpare(running: readonly SpareHost[]): string | undefined {
  const freeOf = (h: SpareHost) => Math.max(0, h.memMiB - h.usedMiB);
  const free = running.reduce((s, h) => s + freeOf(h), 0);
  // The two roomiest hosts: the roomiest other host is the first, or the second when the first fails.
  const [first, second] = [...running].sort((a, b) => freeOf(b) - freeOf(a));
  for (const h of running) {
    if (free - freeOf(h) < h.usedMiB)
      return `the other hosts could not take ${h.name}'s ${h.usedMiB} MiB if it failed (spare capacity)`;
    const roomiest = h === first ? second : first;
    const biggest = h.largestVmMiB ?? 0;
    if (biggest > 0 && (!roomiest || freeOf(roomiest) < biggest))
      return `no other host has room for ${h.name}'s biggest VM (${biggest} MiB) if it failed (spare capacity)`;
  }
  return undefined;
}
