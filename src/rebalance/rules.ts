// Where a VM may go, decided in one place with one precedence, for every placer: the rebalancer's moves
// (src/rebalance/balance.ts), its maintenance drain, and failover's restarts (src/failover/placement.ts).
//
//   pin > maintenance (and per-VM host exclusion) > anti-affinity > affinity > balance
//
// A higher rule is never broken for a lower one: a pinned VM stays on a host in maintenance (reported as
// stuck); a drain or failover moves a VM even if that separates it from its affinity group, but never onto
// a host where its anti-affinity group already runs; balancing never separates an affinity group, never
// touches a host that is cooling down, and density packing keeps one spare host's worth of memory.

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
}

/**
 * Density mode's reserve: the hosts left running (those with VMs) must together have as much free memory
 * as each one of them uses, so that any one can fail (or be drained) and its VMs still fit (in memory).
 * Returns why not, or undefined when the reserve holds.
 */
export function whyNoSpare(running: readonly SpareHost[]): string | undefined {
  const freeOf = (h: SpareHost) => Math.max(0, h.memMiB - h.usedMiB);
  const free = running.reduce((s, h) => s + freeOf(h), 0);
  for (const h of running)
    if (free - freeOf(h) < h.usedMiB)
      return `the other hosts could not take ${h.name}'s ${h.usedMiB} MiB if it failed (spare capacity)`;
  return undefined;
}
