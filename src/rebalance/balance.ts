// The rebalancer's planner: a cluster snapshot in, a short list of live migrations out. Pure and
// deterministic, so it can run as a dry run, in tests and in benchmarks against Ganeti's hbal.
//
// Imbalance is the weighted standard deviation, across hosts, of CPU use (busy vCPUs / CPUs) and memory
// use (VM memory / host memory), the measure hbal's cluster score is built on. Performance mode moves,
// one at a time, the VM whose move lowers imbalance most, preferring cheap moves (little memory to copy)
// among nearly equal gains, until no move gains enough to be worth a migration. Density mode empties the
// least used hosts onto the others so whole hosts can be switched off, keeping one spare host's worth of
// memory. Whether a VM may go to a host at all is src/rebalance/rules.ts's to say (pin, maintenance and
// host exclusion, anti-affinity, affinity, host cooldown), in its documented order.

import { PlacementRules, whyNoSpare, type Purpose } from './rules.ts';

export interface BalanceHost {
  name: string;
  cpus: number;
  memMiB: number;
  /** Hosts in maintenance are drained and receive nothing. */
  maintenance?: boolean;
}

export interface BalanceVm {
  name: string;
  host: string;
  memMiB: number;
  vcpus: number;
  /** Busy vCPUs (from Ganglia's vm_cpu_pct / 100), 0..vcpus. */
  cpuLoad: number;
  pinned?: boolean;
  noRebalance?: boolean;
  antiAffinity?: string;
  /** Kept together with the other VMs of this group (src/rebalance/rules.ts). */
  affinity?: string;
  /** Hosts this VM must never run on. */
  excludeHosts?: readonly string[];
}

export interface BalanceOptions {
  mode?: 'performance' | 'density';
  cpuWeight?: number;
  memWeight?: number;
  maxMoves?: number;
  /** VMs moved recently: not moved again until their cooldown ends. */
  cooldown?: ReadonlySet<string>;
  /** Hosts a recent move touched: balancing neither takes from nor gives to them (drains still may). */
  hostCooldown?: ReadonlySet<string>;
  /** A move must lower imbalance by at least this fraction of the starting imbalance (default: 1%, or a
   *  quarter of one host's share on sites of more than 25 hosts). */
  minGainFraction?: number;
  /** Density mode: keep each host's CPU use at or below this after packing. */
  maxCpuUse?: number;
}

export interface BalanceMove {
  vm: string;
  from: string;
  to: string;
  memMiB: number;
  reason: string;
  imbalanceAfter: number;
}

export interface BalanceResult {
  moves: BalanceMove[];
  imbalanceBefore: number;
  imbalanceAfter: number;
  cpuStdBefore: number;
  cpuStdAfter: number;
  memStdBefore: number;
  memStdAfter: number;
  /** Hosts left without VMs (density mode frees them). */
  emptyHosts: string[];
  /** VMs that had to stay on a host in maintenance for lack of room elsewhere. */
  stuck: string[];
}

interface HostState {
  spec: BalanceHost;
  cpu: number;
  mem: number;
  vms: Set<BalanceVm>;
  groups: Map<string, number>;
}

class Cluster {
  readonly hosts = new Map<string, HostState>();
  readonly rules: PlacementRules;
  private active: HostState[] = [];
  // Sums over active hosts of u and u^2, for CPU and memory use: the std dev in O(1) after each move.
  private c1 = 0;
  private c2 = 0;
  private m1 = 0;
  private m2 = 0;

  constructor(
    hosts: readonly BalanceHost[],
    vms: readonly BalanceVm[],
    readonly wc: number,
    readonly wm: number,
    hostCooldown?: ReadonlySet<string>,
  ) {
    this.rules = new PlacementRules(hosts, vms, hostCooldown ? { coolingHosts: hostCooldown } : {});
    for (const h of hosts) this.hosts.set(h.name, { spec: h, cpu: 0, mem: 0, vms: new Set(), groups: new Map() });
    for (const v of vms) {
      const h = this.hosts.get(v.host);
      if (!h) throw new Error(`VM ${v.name} is on ${v.host}, which is not in the snapshot`);
      this.add(h, v);
    }
    // Hosts in maintenance leave the statistics: they are being emptied, not balanced.
    this.active = [...this.hosts.values()].filter((h) => !h.spec.maintenance);
    for (const h of this.active) this.account(h, 1);
  }
  private cu(h: HostState) {
    return h.cpu / h.spec.cpus;
  }
  private mu(h: HostState) {
    return h.mem / h.spec.memMiB;
  }
  private account(h: HostState, sign: 1 | -1) {
    if (h.spec.maintenance) return;
    const c = this.cu(h);
    const m = this.mu(h);
    this.c1 += sign * c;
    this.c2 += sign * c * c;
    this.m1 += sign * m;
    this.m2 += sign * m * m;
  }
  private add(h: HostState, v: BalanceVm) {
    h.vms.add(v);
    h.cpu += v.cpuLoad;
    h.mem += v.memMiB;
    if (v.antiAffinity) h.groups.set(v.antiAffinity, (h.groups.get(v.antiAffinity) ?? 0) + 1);
  }
  private remove(h: HostState, v: BalanceVm) {
    h.vms.delete(v);
    h.cpu -= v.cpuLoad;
    h.mem -= v.memMiB;
    if (v.antiAffinity) h.groups.set(v.antiAffinity, (h.groups.get(v.antiAffinity) ?? 1) - 1);
  }
  static std(s1: number, s2: number, n: number): number {
    if (n === 0) return 0;
    const mean = s1 / n;
    return Math.sqrt(Math.max(0, s2 / n - mean * mean));
  }
  cpuStd() {
    return Cluster.std(this.c1, this.c2, this.active.length);
  }
  memStd() {
    return Cluster.std(this.m1, this.m2, this.active.length);
  }
  score() {
    return this.wc * this.cpuStd() + this.wm * this.memStd();
  }
  fits(v: BalanceVm, to: HostState, purpose: Purpose = 'balance'): boolean {
    if (to.mem + v.memMiB > to.spec.memMiB || v.vcpus > to.spec.cpus) return false;
    return this.rules.whyNot(v.name, to.spec.name, purpose) === undefined;
  }
  /** Imbalance if `v` moved from `from` to `to`, without moving it. */
  scoreIfMoved(v: BalanceVm, from: HostState, to: HostState): number {
    const n = this.active.length;
    let c1 = this.c1;
    let c2 = this.c2;
    let m1 = this.m1;
    let m2 = this.m2;
    for (const [h, dc, dm] of [
      [from, -v.cpuLoad, -v.memMiB],
      [to, v.cpuLoad, v.memMiB],
    ] as const) {
      if (h.spec.maintenance) continue;
      const c0 = this.cu(h);
      const cN = (h.cpu + dc) / h.spec.cpus;
      const m0 = this.mu(h);
      const mN = (h.mem + dm) / h.spec.memMiB;
      c1 += cN - c0;
      c2 += cN * cN - c0 * c0;
      m1 += mN - m0;
      m2 += mN * mN - m0 * m0;
    }
    return this.wc * Cluster.std(c1, c2, n) + this.wm * Cluster.std(m1, m2, n);
  }
  move(v: BalanceVm, from: HostState, to: HostState) {
    this.account(from, -1);
    this.account(to, -1);
    this.remove(from, v);
    this.add(to, v);
    this.rules.moved(v.name, to.spec.name);
    v.host = to.spec.name;
    this.account(from, 1);
    this.account(to, 1);
  }
  load(h: HostState) {
    return this.wc * this.cu(h) + this.wm * this.mu(h);
  }
}

const movable = (v: BalanceVm, cooldown: ReadonlySet<string>) => !v.pinned && !v.noRebalance && !cooldown.has(v.name);

export function balance(
  hostsIn: readonly BalanceHost[],
  vmsIn: readonly BalanceVm[],
  opts: BalanceOptions = {},
): BalanceResult {
  // Work on copies: the caller's snapshot stays as it was.
  const vms = vmsIn.map((v) => ({ ...v }));
  const c = new Cluster(hostsIn, vms, opts.cpuWeight ?? 1, opts.memWeight ?? 1, opts.hostCooldown);
  const cpuStdBefore = c.cpuStd();
  const memStdBefore = c.memStd();
  const before = c.score();
  const moves: BalanceMove[] = [];
  const run: BalanceRun = {
    c,
    hosts: [...c.hosts.values()],
    moves,
    stuck: [],
    maxMoves: opts.maxMoves ?? Infinity,
    cooldown: opts.cooldown ?? new Set<string>(),
    record: (v, from, to, reason) => {
      c.move(v, from, to);
      moves.push({
        vm: v.name,
        from: from.spec.name,
        to: to.spec.name,
        memMiB: v.memMiB,
        reason,
        imbalanceAfter: c.score(),
      });
    },
  };
  drainMaintenance(run);
  if ((opts.mode ?? 'performance') === 'performance') spreadLoad(run, before, opts.minGainFraction);
  else emptyHosts(run, opts.maxCpuUse ?? 0.8);
  return {
    moves,
    imbalanceBefore: before,
    imbalanceAfter: c.score(),
    cpuStdBefore,
    cpuStdAfter: c.cpuStd(),
    memStdBefore,
    memStdAfter: c.memStd(),
    emptyHosts: run.hosts
      .filter((h) => h.vms.size === 0)
      .map((h) => h.spec.name)
      .sort(),
    stuck: run.stuck,
  };
}

/** One run's working state: the cluster as the moves so far leave it, and how a move is recorded. */
interface BalanceRun {
  c: Cluster;
  hosts: HostState[];
  moves: BalanceMove[];
  /** VMs of hosts in maintenance that fit nowhere. */
  stuck: string[];
  maxMoves: number;
  cooldown: ReadonlySet<string>;
  record(v: BalanceVm, from: HostState, to: HostState, reason: string): void;
}

/**
 * Drains hosts in maintenance, biggest VMs first, each to where it hurts balance least (beside its affinity
 * group when one has room). Pinned VMs stay: pin ranks above maintenance (src/rebalance/rules.ts).
 */
function drainMaintenance(run: BalanceRun): void {
  const { c, hosts, moves, maxMoves } = run;
  for (const h of hosts.filter((x) => x.spec.maintenance)) {
    for (const v of [...h.vms].sort((a, b) => b.memMiB - a.memMiB || a.name.localeCompare(b.name))) {
      if (moves.length >= maxMoves) break;
      let best: HostState | undefined;
      let bestScore = Infinity;
      for (const to of hosts) {
        if (to === h || !c.fits(v, to, 'evacuate')) continue;
        // Joining the VM's affinity group outranks balance: such hosts score below any other.
        const s = c.scoreIfMoved(v, h, to) - (c.rules.matesOn(v.name, to.spec.name) > 0 ? 1e6 : 0);
        if (s < bestScore - 1e-12) {
          best = to;
          bestScore = s;
        }
      }
      if (best) run.record(v, h, best, `${h.spec.name} is in maintenance`);
      else run.stuck.push(v.name);
    }
  }
}

/** Performance mode: one best move at a time (biggest gain, then least memory) while a move gains enough. */
function spreadLoad(run: BalanceRun, before: number, minGainFraction: number | undefined): void {
  const { c, hosts, moves, maxMoves, cooldown } = run;
  // A move's effect on a standard deviation over n hosts shrinks like 1/n: on large sites the bar is a
  // quarter of one host's share of the imbalance, so balancing does not stop after the first moves.
  const n = hosts.filter((h) => !h.spec.maintenance).length || 1;
  const minGain = Math.max(
    1e-6,
    minGainFraction !== undefined ? minGainFraction * before : Math.min(0.01 * before, (0.25 * before) / n),
  );
  // Candidate sources are the most loaded hosts, targets the least loaded: a move between two hosts
  // near the mean changes little. K bounds the work per step on large sites.
  const K = Math.min(24, hosts.length);
  while (moves.length < maxMoves) {
    const ranked = hosts
      .filter((h) => !h.spec.maintenance)
      .sort((a, b) => c.load(b) - c.load(a) || a.spec.name.localeCompare(b.spec.name));
    const sources = ranked.slice(0, K);
    const targets = ranked.slice(-K).reverse();
    const now = c.score();
    let best: { v: BalanceVm; from: HostState; to: HostState; gain: number } | undefined;
    for (const from of sources) {
      for (const v of from.vms) {
        if (!movable(v, cooldown)) continue;
        for (const to of targets) {
          if (to === from || !c.fits(v, to)) continue;
          const gain = now - c.scoreIfMoved(v, from, to);
          if (gain < minGain) continue;
          // Among nearly equal gains, move less memory (a shorter migration).
          if (
            !best ||
            gain > best.gain * 1.05 ||
            (gain > best.gain * 0.95 && v.memMiB < best.v.memMiB) ||
            (gain > best.gain * 0.95 && v.memMiB === best.v.memMiB && v.name < best.v.name)
          ) {
            best = { v, from, to, gain };
          }
        }
      }
    }
    if (!best) break;
    run.record(best.v, best.from, best.to, `lowers imbalance by ${best.gain.toFixed(4)}`);
  }
}

/**
 * Density mode: empties hosts, least loaded first; a host is emptied only if all its VMs fit elsewhere
 * (best fit: the fullest host with room), so no half-emptied host is left behind.
 */
function emptyHosts(run: BalanceRun, maxCpu: number): void {
  const { c, hosts, moves, maxMoves, cooldown } = run;
  const order = hosts
    .filter((h) => !h.spec.maintenance && h.vms.size > 0)
    .sort((a, b) => c.load(a) - c.load(b) || a.spec.name.localeCompare(b.spec.name));
  const emptied = new Set<HostState>();
  for (const h of order) {
    const vmsHere = [...h.vms];
    if (vmsHere.some((v) => !movable(v, cooldown))) continue;
    if (moves.length + vmsHere.length > maxMoves) continue;
    const plan: [BalanceVm, HostState][] = [];
    const extra = new Map<HostState, { mem: number; cpu: number; groups: string[] }>();
    const room = (to: HostState, v: BalanceVm) => {
      const e = extra.get(to) ?? { mem: 0, cpu: 0, groups: [] };
      if (to === h || emptied.has(to) || to.spec.maintenance || to.vms.size === 0) return false;
      if (to.mem + e.mem + v.memMiB > to.spec.memMiB) return false;
      if ((to.cpu + e.cpu + v.cpuLoad) / to.spec.cpus > maxCpu) return false;
      const planned = new Map(plan.map(([pv, pt]) => [pv.name, pt.spec.name]));
      return c.rules.whyNot(v.name, to.spec.name, 'pack', planned) === undefined;
    };
    let ok = true;
    for (const v of vmsHere.sort((a, b) => b.memMiB - a.memMiB || a.name.localeCompare(b.name))) {
      const to = hosts
        .filter((x) => room(x, v))
        .sort(
          (a, b) =>
            b.mem + (extra.get(b)?.mem ?? 0) - (a.mem + (extra.get(a)?.mem ?? 0)) ||
            a.spec.name.localeCompare(b.spec.name),
        )[0];
      if (!to) {
        ok = false;
        break;
      }
      const e = extra.get(to) ?? { mem: 0, cpu: 0, groups: [] };
      extra.set(to, {
        mem: e.mem + v.memMiB,
        cpu: e.cpu + v.cpuLoad,
        groups: v.antiAffinity ? [...e.groups, v.antiAffinity] : e.groups,
      });
      plan.push([v, to]);
    }
    if (!ok || !keepsSpare(hosts, h, emptied, extra)) continue;
    for (const [v, to] of plan) run.record(v, h, to, `empties ${h.spec.name} (density)`);
    emptied.add(h);
  }
}

/** Whether emptying `h` (its VMs going as `extra` says) leaves one spare host's worth of memory. */
function keepsSpare(
  hosts: readonly HostState[],
  h: HostState,
  emptied: ReadonlySet<HostState>,
  extra: ReadonlyMap<HostState, { mem: number }>,
): boolean {
  const running = hosts
    .filter((x) => x !== h && !emptied.has(x) && !x.spec.maintenance && x.vms.size > 0)
    .map((x) => ({ name: x.spec.name, memMiB: x.spec.memMiB, usedMiB: x.mem + (extra.get(x)?.mem ?? 0) }));
  return whyNoSpare(running) === undefined;
}

/** The same imbalance measure, for any placement (used to score hbal's answer in the benchmark). */
export function imbalanceOf(
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  weights: { cpuWeight?: number; memWeight?: number } = {},
): { imbalance: number; cpuStd: number; memStd: number } {
  const c = new Cluster(
    hosts,
    vms.map((v) => ({ ...v })),
    weights.cpuWeight ?? 1,
    weights.memWeight ?? 1,
  );
  return { imbalance: c.score(), cpuStd: c.cpuStd(), memStd: c.memStd() };
}
