// The rebalancer's planner: a cluster snapshot in, a short list of live migrations out. Pure and
// deterministic (up to its time budget), so it runs as a dry run, in tests and in benchmarks against hbal.
//
// The score it lowers is hbal's cluster score (Ganeti htools' compCV, with the weights of Ganeti 3.0):
// the sum, across hosts, of the standard deviations of the free-memory share, the vCPU-to-CPU ratio and the
// dynamic loads (CPU, and hbal's memory, disk and network loads when given), plus the number of VMs on
// hosts that fail N+1 (their memory would not fit in what all the other hosts have free). Hard limits
// (memory with its reserve, vCPU ratio, anti-affinity, ...) are rules in rules.ts, checked at every step.
//
// Performance mode takes, one at a time, the move that lowers the score most (a VM already moved may be
// sent elsewhere instead, or back, without costing a migration), while the best move gains at least a share
// of the score as it stands. The threshold depends only on the current placement, so planning again from
// the result proposes nothing. Density mode empties the least used hosts onto the others.

import {
  siteRules,
  whyNoSpare,
  whyNotPlace,
  whyUnmovable,
  type BalanceHost,
  type BalanceVm,
  type RuleOptions,
} from './rules.ts';
export type { BalanceHost, BalanceVm, PlacementRule, HostView, RuleOptions } from './rules.ts';

export interface BalanceOptions extends RuleOptions {
  mode?: 'performance' | 'density';
  /** Weights of the CPU-load and memory terms (default 1, as hbal). */
  cpuWeight?: number;
  memWeight?: number;
  /** Weight of the vCPU-ratio term (default 1) and of each VM on a host failing N+1 (default 1). */
  vcpuWeight?: number;
  n1Weight?: number;
  maxMoves?: number;
  /** A move must lower the score by at least this fraction of the score as it stands (default: 0.6 / the
   *  number of hosts, at most 3%; a move's effect on a standard deviation shrinks like 1/n). */
  minGainFraction?: number;
  /** ... and by at least this much (default 1e-4). */
  minGain?: number;
  /** Stop searching after this long and keep the moves found so far (default 2000 ms). */
  timeBudgetMs?: number;
  /** Density mode: keep each host's CPU use at or below this after packing. */
  maxCpuUse?: number;
  /** Hosts a recent move touched: balancing neither takes from nor gives to them (drains still may). */
  hostCooldown?: ReadonlySet<string>;
}

export interface BalanceMove {
  vm: string;
  from: string;
  to: string;
  memMiB: number;
  reason: string;
  /** Predicted score before and after this move, the moves before it done. */
  scoreBefore: number;
  scoreAfter: number;
  /** Same as scoreAfter (kept for existing readers). */
  imbalanceAfter: number;
}

export interface BalanceResult {
  moves: BalanceMove[];
  /** The score (see the file header) before and after the moves. */
  imbalanceBefore: number;
  imbalanceAfter: number;
  /** XSM's former measure, for comparison: std dev of CPU use (busy vCPUs / CPUs) and of memory use. */
  cpuStdBefore: number;
  cpuStdAfter: number;
  memStdBefore: number;
  memStdAfter: number;
  /** Hosts left without VMs (density mode frees them). */
  emptyHosts: string[];
  /** VMs that had to stay on a host in maintenance for lack of room elsewhere. */
  stuck: string[];
  /** True when the time budget ended the search before it converged. */
  timedOut: boolean;
}

interface HostState {
  spec: BalanceHost;
  mem: number;
  vcpus: number;
  vms: Set<BalanceVm>;
  groups: Map<string, number>;
  /** Per scored dimension, the sum of the VMs' contributions, and the host's offset and scale. */
  sums: Float64Array;
  off: Float64Array;
  scale: Float64Array;
  active: boolean;
}

/** One standard-deviation term: a host's value is (sum of x(vm) + offset(host)) / scale(host). */
interface Dim {
  weight: number;
  x: (v: BalanceVm) => number;
  offset: (h: BalanceHost) => number;
  scale: (h: BalanceHost) => number;
}

function dimsFor(vms: readonly BalanceVm[], o: BalanceOptions): Dim[] {
  const dims: Dim[] = [
    // Free-memory share, sign flipped so that larger means fuller: -(memMiB - used) / totalMemMiB.
    {
      weight: o.memWeight ?? 1,
      x: (v) => v.memMiB,
      offset: (h) => -h.memMiB,
      scale: (h) => h.totalMemMiB ?? h.memMiB,
    },
    { weight: o.vcpuWeight ?? 1, x: (v) => v.vcpus, offset: (h) => h.dom0Vcpus ?? 0, scale: (h) => h.cpus },
    { weight: o.cpuWeight ?? 1, x: (v) => v.cpuLoad, offset: () => 0, scale: (h) => h.loadPool ?? h.cpus },
  ];
  // hbal's other dynamic loads, when the snapshot has them (absolute, like its utilisation pool of 1).
  for (const key of ['memLoad', 'diskLoad', 'netLoad'] as const)
    if (vms.some((v) => (v[key] ?? 0) !== 0))
      dims.push({ weight: 1, x: (v) => v[key] ?? 0, offset: () => 0, scale: () => 1 });
  return dims.filter((d) => d.weight !== 0);
}

const std = (s1: number, s2: number, n: number) => (n === 0 ? 0 : Math.sqrt(Math.max(0, s2 / n - (s1 / n) ** 2)));

class Cluster {
  readonly hosts = new Map<string, HostState>();
  readonly list: HostState[];
  private readonly n: number;
  private readonly s1: Float64Array;
  private readonly s2: Float64Array;
  /** Free memory summed over active hosts, and the VMs on hosts failing N+1. */
  private free = 0;
  private n1 = 0;

  constructor(
    hosts: readonly BalanceHost[],
    vms: readonly BalanceVm[],
    readonly dims: readonly Dim[],
    readonly n1Weight: number,
  ) {
    for (const h of hosts) {
      if (this.hosts.has(h.name)) throw new Error(`host ${h.name} appears twice in the snapshot`);
      this.hosts.set(h.name, {
        spec: h,
        mem: 0,
        vcpus: 0,
        vms: new Set(),
        groups: new Map(),
        sums: new Float64Array(dims.length),
        off: Float64Array.from(dims, (d) => d.offset(h)),
        scale: Float64Array.from(dims, (d) => d.scale(h)),
        active: !h.maintenance,
      });
    }
    for (const v of vms) {
      const h = this.hosts.get(v.host);
      if (!h) throw new Error(`VM ${v.name} is on ${v.host}, which is not in the snapshot`);
      this.add(h, v);
    }
    this.list = [...this.hosts.values()];
    // Hosts in maintenance leave the statistics: they are being emptied, not balanced.
    this.n = this.list.filter((h) => h.active).length;
    this.s1 = new Float64Array(dims.length);
    this.s2 = new Float64Array(dims.length);
    for (const h of this.list) if (h.active) this.account(h, 1);
    this.recountN1();
  }
  private value(h: HostState, d: number, extra = 0): number {
    return (h.sums[d]! + extra + h.off[d]!) / h.scale[d]!;
  }
  /** A VM's contribution to each dimension (computed once per VM). */
  private readonly xs = new Map<BalanceVm, Float64Array>();
  xOf(v: BalanceVm): Float64Array {
    let x = this.xs.get(v);
    if (!x) {
      x = Float64Array.from(this.dims, (d) => d.x(v));
      this.xs.set(v, x);
    }
    return x;
  }
  private account(h: HostState, sign: 1 | -1) {
    for (let d = 0; d < this.dims.length; d++) {
      const u = this.value(h, d);
      this.s1[d]! += sign * u;
      this.s2[d]! += sign * u * u;
    }
  }
  private add(h: HostState, v: BalanceVm) {
    h.vms.add(v);
    h.mem += v.memMiB;
    h.vcpus += v.vcpus;
    const xs = this.xOf(v);
    for (let d = 0; d < this.dims.length; d++) h.sums[d]! += xs[d]!;
    if (v.antiAffinity) h.groups.set(v.antiAffinity, (h.groups.get(v.antiAffinity) ?? 0) + 1);
  }
  private remove(h: HostState, v: BalanceVm) {
    h.vms.delete(v);
    h.mem -= v.memMiB;
    h.vcpus -= v.vcpus;
    const xs = this.xOf(v);
    for (let d = 0; d < this.dims.length; d++) h.sums[d]! -= xs[d]!;
    if (v.antiAffinity) h.groups.set(v.antiAffinity, (h.groups.get(v.antiAffinity) ?? 1) - 1);
  }
  private static freeOf(h: HostState, mem = h.mem) {
    return Math.max(0, h.spec.memMiB - (h.spec.reservedMemMiB ?? 0) - mem);
  }
  /** A host fails N+1 when its VMs' memory exceeds what all the other active hosts have free together. */
  private static failsN1(used: number, ownFree: number, totalFree: number) {
    return used > 0 && used > totalFree - ownFree;
  }
  private recountN1() {
    this.free = 0;
    for (const h of this.list) if (h.active) this.free += Cluster.freeOf(h);
    this.n1 = 0;
    for (const h of this.list)
      if (h.active && Cluster.failsN1(h.mem, Cluster.freeOf(h), this.free)) this.n1 += h.vms.size;
  }
  /** Standard deviations per dimension, in the order of `dims`. */
  stds(): number[] {
    return this.dims.map((_, d) => std(this.s1[d]!, this.s2[d]!, this.n));
  }
  /** The standard-deviation part of the score (what the stopping bar is a fraction of). */
  spread(): number {
    return this.score() - this.n1Weight * this.n1;
  }
  score(): number {
    let s = this.n1Weight * this.n1;
    for (let d = 0; d < this.dims.length; d++) s += this.dims[d]!.weight * std(this.s1[d]!, this.s2[d]!, this.n);
    return s;
  }
  /** Score if `v` moved from `from` to `to`, without moving it. */
  scoreIfMoved(v: BalanceVm, from: HostState, to: HostState, xs = this.xOf(v)): number {
    let s = 0;
    for (let d = 0; d < this.dims.length; d++) {
      const dim = this.dims[d]!;
      const x = xs[d]!;
      let s1 = this.s1[d]!;
      let s2 = this.s2[d]!;
      if (x !== 0) {
        if (from.active) {
          const a = this.value(from, d);
          const b = this.value(from, d, -x);
          s1 += b - a;
          s2 += b * b - a * a;
        }
        if (to.active) {
          const a = this.value(to, d);
          const b = this.value(to, d, x);
          s1 += b - a;
          s2 += b * b - a * a;
        }
      }
      s += dim.weight * std(s1, s2, this.n);
    }
    return s + this.n1Weight * this.n1IfMoved(v, from, to);
  }
  /** Score if `v` (on `a`) and `w` (on `b`) swapped hosts, without moving them. */
  scoreIfSwapped(v: BalanceVm, a: HostState, w: BalanceVm, b: HostState, xv = this.xOf(v), xw = this.xOf(w)): number {
    let s = 0;
    for (let d = 0; d < this.dims.length; d++) {
      const dim = this.dims[d]!;
      const x = xw[d]! - xv[d]!;
      let s1 = this.s1[d]!;
      let s2 = this.s2[d]!;
      if (x !== 0) {
        const ua = this.value(a, d);
        const ua1 = this.value(a, d, x);
        const ub = this.value(b, d);
        const ub1 = this.value(b, d, -x);
        s1 += ua1 - ua + ub1 - ub;
        s2 += ua1 * ua1 - ua * ua + ub1 * ub1 - ub * ub;
      }
      s += dim.weight * std(s1, s2, this.n);
    }
    if (this.n1Weight === 0) return s;
    const dm = w.memMiB - v.memMiB;
    const n1 = this.n1 + this.n1Change(a, dm, 0, this.free) + this.n1Change(b, -dm, 0, this.free);
    return s + this.n1Weight * n1;
  }
  /** N+1 count after the move; exact between active hosts (total free memory does not change then). */
  private n1IfMoved(v: BalanceVm, from: HostState, to: HostState): number {
    if (this.n1Weight === 0) return 0;
    const F = this.free + (from.active ? 0 : -Math.min(v.memMiB, Cluster.freeOf(to)));
    return this.n1 + this.n1Change(from, -v.memMiB, -1, F) + this.n1Change(to, v.memMiB, 1, F);
  }
  /** How the N+1 count changes when `h` gains `dmem` memory and `dcount` VMs, with `F` free in all. */
  private n1Change(h: HostState, dmem: number, dcount: number, F: number): number {
    if (!h.active) return 0;
    let n = 0;
    if (Cluster.failsN1(h.mem, Cluster.freeOf(h), this.free)) n -= h.vms.size;
    if (Cluster.failsN1(h.mem + dmem, Cluster.freeOf(h, h.mem + dmem), F)) n += h.vms.size + dcount;
    return n;
  }
  move(v: BalanceVm, from: HostState, to: HostState) {
    if (from.active) this.account(from, -1);
    if (to.active) this.account(to, -1);
    this.remove(from, v);
    this.add(to, v);
    v.host = to.spec.name;
    if (from.active) this.account(from, 1);
    if (to.active) this.account(to, 1);
    this.recountN1();
  }
  /**
   * A floor under the score after any change that only moves VMs between the active hosts `a` and `b`:
   * each dimension's standard deviation at the best split of that dimension between the two (a quadratic
   * in the amount moved, minimised in closed form), and N+1 with both hosts passing (the others' N+1 cannot
   * change: free memory in all stays the same). The search skips a pair of hosts whose floor already
   * rules out the gain it needs, without scoring each VM (or exchange) between them.
   */
  floorBetween(a: HostState, b: HostState): number {
    const n = this.n;
    let s = 0;
    for (let d = 0; d < this.dims.length; d++) {
      const ua = this.value(a, d);
      const ub = this.value(b, d);
      const ia = 1 / a.scale[d]!;
      const ib = 1 / b.scale[d]!;
      const m1 = this.s1[d]! / n;
      const p = (ib - ia) / n;
      // Moving x from a to b: variance(x) = A x^2 + B x + C.
      const A = (ia * ia + ib * ib) / n - p * p;
      const B = (2 * (ub * ib - ua * ia)) / n - 2 * m1 * p;
      const C = this.s2[d]! / n - m1 * m1;
      const v = A > 0 ? C - (B * B) / (4 * A) : C;
      s += this.dims[d]!.weight * Math.sqrt(Math.max(0, v));
    }
    if (this.n1Weight === 0) return s;
    let n1 = this.n1;
    // Two statements, not a loop over [a, b]: this runs for every pair of hosts at every step, and the
    // cold planner's time is mostly garbage collection.
    if (Cluster.failsN1(a.mem, Cluster.freeOf(a), this.free)) n1 -= a.vms.size;
    if (Cluster.failsN1(b.mem, Cluster.freeOf(b), this.free)) n1 -= b.vms.size;
    return s + this.n1Weight * n1;
  }
  /** How much a host pushes the score up, per dimension: its weighted, standardised excess, into `out`. */
  excess(h: HostState, stds: readonly number[], out: Float64Array): void {
    for (let d = 0; d < this.dims.length; d++)
      out[d] = stds[d]! === 0 ? 0 : (this.dims[d]!.weight * (this.value(h, d) - this.s1[d]! / this.n)) / stds[d]!;
  }
  /** Load for density mode: memory and CPU use. */
  load(h: HostState) {
    return h.mem / h.spec.memMiB + this.cpuUse(h);
  }
  cpuUse(h: HostState) {
    let cpu = 0;
    for (const v of h.vms) cpu += v.cpuLoad;
    return cpu / h.spec.cpus;
  }
}

/** XSM's former measure (std dev of CPU use and of memory use, relative to each host's size). */
function formerMeasure(
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  wc = 1,
  wm = 1,
): { imbalance: number; cpuStd: number; memStd: number } {
  const dims: Dim[] = [
    { weight: wc, x: (v) => v.cpuLoad, offset: () => 0, scale: (h) => h.cpus },
    { weight: wm, x: (v) => v.memMiB, offset: () => 0, scale: (h) => h.memMiB },
  ];
  const c = new Cluster(
    hosts,
    vms.map((v) => ({ ...v })),
    dims,
    0,
  );
  const [cpuStd, memStd] = c.stds() as [number, number];
  return { imbalance: wc * cpuStd + wm * memStd, cpuStd, memStd };
}

export function balance(
  hostsIn: readonly BalanceHost[],
  vmsIn: readonly BalanceVm[],
  opts: BalanceOptions = {},
): BalanceResult {
  const started = performance.now();
  const deadline = started + (opts.timeBudgetMs ?? 2000);
  // Work on copies: the caller's snapshot stays as it was.
  const vms = vmsIn.map((v) => ({ ...v }));
  // Exclusion, affinity and host cooldowns join the caller's rules, over these working copies.
  const site = siteRules(vms, opts.hostCooldown);
  opts = { ...opts, extraRules: [...(opts.extraRules ?? []), ...site.rules] };
  const dims = dimsFor(vms, opts);
  const c = new Cluster(hostsIn, vms, dims, opts.n1Weight ?? 1);
  const formerBefore = formerMeasure(hostsIn, vmsIn, opts.cpuWeight, opts.memWeight);
  const before = c.score();
  const run: BalanceRun = {
    c,
    opts,
    plan: [],
    stuck: [],
    maxMoves: opts.maxMoves ?? Infinity,
    deadline,
    timedOut: false,
    origin: new Map(vms.map((v) => [v, c.hosts.get(v.host)!])),
  };
  site.draining(true);
  drainMaintenance(run);
  site.draining(false);
  if ((opts.mode ?? 'performance') === 'performance') spreadLoad(run);
  else emptyHosts(run, opts.maxCpuUse ?? 0.8);
  const moves = predicted(hostsIn, vmsIn, dims, opts, run.plan);
  const placed = vms;
  const formerAfter = formerMeasure(hostsIn, placed, opts.cpuWeight, opts.memWeight);
  return {
    moves,
    imbalanceBefore: before,
    imbalanceAfter: c.score(),
    cpuStdBefore: formerBefore.cpuStd,
    cpuStdAfter: formerAfter.cpuStd,
    memStdBefore: formerBefore.memStd,
    memStdAfter: formerAfter.memStd,
    emptyHosts: c.list
      .filter((h) => h.vms.size === 0)
      .map((h) => h.spec.name)
      .sort(),
    stuck: run.stuck,
    timedOut: run.timedOut,
  };
}

/** One planned move: the VM goes from where it was at the start straight to `to`. */
interface PlannedMove {
  v: BalanceVm;
  from: HostState;
  to: HostState;
  reason: string;
}

/** One run's working state: the cluster as the plan so far leaves it. */
interface BalanceRun {
  c: Cluster;
  opts: BalanceOptions;
  plan: PlannedMove[];
  stuck: string[];
  maxMoves: number;
  deadline: number;
  timedOut: boolean;
  /** Where each VM was before the plan. */
  origin: Map<BalanceVm, HostState>;
}

/** Replays the plan from the snapshot, move by move, for each move's predicted score before and after. */
function predicted(
  hosts: readonly BalanceHost[],
  vmsIn: readonly BalanceVm[],
  dims: readonly Dim[],
  opts: BalanceOptions,
  plan: readonly PlannedMove[],
): BalanceMove[] {
  const vms = vmsIn.map((v) => ({ ...v }));
  const byName = new Map(vms.map((v) => [v.name, v]));
  const c = new Cluster(hosts, vms, dims, opts.n1Weight ?? 1);
  return plan.map((m) => {
    const v = byName.get(m.v.name)!;
    const scoreBefore = c.score();
    c.move(v, c.hosts.get(m.from.spec.name)!, c.hosts.get(m.to.spec.name)!);
    const scoreAfter = c.score();
    return {
      vm: v.name,
      from: m.from.spec.name,
      to: m.to.spec.name,
      memMiB: v.memMiB,
      reason: m.reason,
      scoreBefore,
      scoreAfter,
      imbalanceAfter: scoreAfter,
    };
  });
}

/**
 * Drains hosts in maintenance, biggest VMs first, each to where it hurts the score least (beside its
 * affinity group when one of those hosts has room). Pinned VMs stay, reported stuck: pin ranks above
 * maintenance (src/rebalance/rules.ts).
 */
function drainMaintenance(run: BalanceRun): void {
  const { c, opts, plan, maxMoves } = run;
  for (const h of c.list.filter((x) => x.spec.maintenance)) {
    for (const v of [...h.vms].sort((a, b) => b.memMiB - a.memMiB || a.name.localeCompare(b.name))) {
      if (plan.length >= maxMoves) break;
      if (v.pinned) {
        run.stuck.push(v.name);
        continue;
      }
      let best: HostState | undefined;
      let bestScore = Infinity;
      for (const to of c.list) {
        if (to === h || whyNotPlace(v, to, opts) || (opts.canMoveLive && !opts.canMoveLive(v))) continue;
        // Joining the VM's affinity group outranks balance: such hosts score below any other.
        const beside = v.affinity && [...to.vms].some((m) => m.affinity === v.affinity);
        const s = c.scoreIfMoved(v, h, to) - (beside ? 1e6 : 0);
        if (s < bestScore - 1e-12) {
          best = to;
          bestScore = s;
        }
      }
      if (best) {
        plan.push({ v, from: h, to: best, reason: `${h.spec.name} is in maintenance` });
        c.move(v, h, best);
      } else run.stuck.push(v.name);
    }
  }
}

interface Candidate {
  v: BalanceVm;
  from: HostState;
  to: HostState;
  gain: number;
  /** The VM is already in the plan: this changes its destination (or cancels its move), costing nothing. */
  retarget: boolean;
}

/** Hosts worth taking VMs from and giving VMs to: all on small sites, the extremes on large ones. */
function candidateHosts(c: Cluster, K = 32): { sources: HostState[]; targets: HostState[] } {
  const active = c.list.filter((h) => h.active);
  if (active.length <= 2 * K) return { sources: active, targets: active };
  const stds = c.stds();
  const D = c.dims.length;
  // Each host's standardised excess per dimension, computed once (this runs at every step of the search).
  const excess = new Float64Array(active.length * D);
  active.forEach((h, i) => c.excess(h, stds, excess.subarray(i * D, (i + 1) * D)));
  const order = active.map((_, i) => i);
  // Highest pressure first; ties in snapshot order, so the search stays deterministic.
  const ranked = (p: (i: number) => number) => {
    const key = Float64Array.from(order, p);
    return [...order].sort((a, b) => key[b]! - key[a]! || a - b);
  };
  const sources = new Set<HostState>();
  const targets = new Set<HostState>();
  const pick = (r: number[], k: number) => {
    for (const i of r.slice(0, k)) sources.add(active[i]!);
    for (const i of r.slice(-k)) targets.add(active[i]!);
  };
  pick(
    ranked((i) => {
      let p = 0;
      for (let d = 0; d < D; d++) p += excess[i * D + d]!;
      return p;
    }),
    K,
  );
  // Per dimension too: a host far off in one dimension may sit near the middle of the sum.
  for (let d = 0; d < D; d++)
    pick(
      ranked((i) => excess[i * D + d]!),
      Math.ceil(K / 4),
    );
  return { sources: [...sources], targets: [...targets] };
}

/** The best move from the current placement, or undefined when none gains at least `minGain`. */
/** Room for rounding between a pair's floor and the score of a move between them (scores are O(1)-O(100)). */
const CAP_SLACK = 1e-9;

function bestMove(run: BalanceRun, minGain: number, refused: ReadonlySet<string>): Candidate | undefined {
  const { c, opts, plan } = run;
  const planned = new Set(plan.map((m) => m.v));
  const full = plan.length >= run.maxMoves;
  const { sources, targets } = candidateHosts(c);
  const now = c.score();
  let best: Candidate | undefined;
  for (const from of sources) {
    // The most any move from `from` to each target can gain (see floorBetween): pairs that cannot reach
    // the bar are skipped without scoring each VM. It changes no answer, only how many are scored.
    const cap = targets.map((to) => (to === from ? -Infinity : now - c.floorBetween(from, to) + CAP_SLACK));
    for (const v of from.vms) {
      if (whyUnmovable(v, opts)) continue;
      const retarget = planned.has(v);
      if (full && !retarget) continue;
      const xs = c.xOf(v);
      for (let ti = 0; ti < targets.length; ti++) {
        const to = targets[ti]!;
        if (to === from || cap[ti]! < minGain || (best && cap[ti]! < best.gain * 0.95)) continue;
        // The score first: it is cheap and rules most candidates out, the rules only for those left.
        const gain = now - c.scoreIfMoved(v, from, to, xs);
        // `better` looks no further than 5% below the best gain so far.
        if (gain < minGain || (best && gain < best.gain * 0.95)) continue;
        const candidate = { v, from, to, gain, retarget };
        if (!better(candidate, best)) continue;
        if ((refused.size && refused.has(`${v.name}\0${to.spec.name}`)) || whyNotPlace(v, to, opts)) continue;
        best = candidate;
      }
    }
  }
  return best;
}

/** Prefers a bigger gain; among gains within 5%, a move that costs no migration, then less memory to copy. */
function better(a: Candidate, b: Candidate | undefined): boolean {
  if (!b) return true;
  if (a.gain > b.gain * 1.05) return true;
  if (a.gain < b.gain * 0.95) return false;
  if (a.retarget !== b.retarget) return a.retarget;
  if (a.v.memMiB !== b.v.memMiB) return a.v.memMiB < b.v.memMiB;
  if (a.gain !== b.gain) return a.gain > b.gain;
  return a.v.name < b.v.name || (a.v.name === b.v.name && a.to.spec.name < b.to.spec.name);
}

/**
 * The plan with `v`'s move replaced by one from its origin straight to `to`, put last (or dropped when
 * `to` is its origin), if every move of it still passes the rules in order; undefined otherwise.
 */
function replanned(
  run: BalanceRun,
  changes: readonly (readonly [BalanceVm, HostState])[],
  reason: string,
): PlannedMove[] | undefined {
  const { c, opts, origin } = run;
  const changed = new Set(changes.map(([v]) => v));
  const next = run.plan.filter((m) => !changed.has(m.v));
  for (const [v, to] of changes) if (to !== origin.get(v)) next.push({ v, from: origin.get(v)!, to, reason });
  // Replay on the snapshot: each move must fit where the moves before it leave the cluster.
  const copies = new Map<BalanceVm, BalanceVm>();
  const vms = [...origin].map(([vm, h]) => {
    const copy = { ...vm, host: h.spec.name };
    copies.set(vm, copy);
    return copy;
  });
  const replay = new Cluster(
    c.list.map((h) => h.spec),
    vms,
    [],
    0,
  );
  // Moves are tried in plan order; one that does not fit yet waits for the others to make room.
  const ordered: PlannedMove[] = [];
  let pending = next;
  while (pending.length) {
    const waiting: PlannedMove[] = [];
    for (const m of pending) {
      const target = replay.hosts.get(m.to.spec.name)!;
      const copy = copies.get(m.v)!;
      if (whyNotPlace(copy, target, opts)) waiting.push(m);
      else {
        replay.move(copy, replay.hosts.get(m.from.spec.name)!, target);
        ordered.push(m);
      }
    }
    if (waiting.length === pending.length) return undefined;
    pending = waiting;
  }
  return ordered;
}

/** Performance mode: the best move at a time while it gains enough, within the time budget. */
function spreadLoad(run: BalanceRun): void {
  const { c, opts } = run;
  // One move changes a standard deviation over n hosts by about 1/n of it: the default bar falls with n.
  const active = c.list.filter((h) => h.active).length || 1;
  const fraction = opts.minGainFraction ?? Math.min(0.03, 0.6 / active);
  const floor = Math.max(opts.minGain ?? 1e-4, 1e-9);
  // Changes that fit in no order from the current placement: not tried again until the placement changes.
  const refused = new Set<string>();
  for (;;) {
    if (performance.now() > run.deadline) {
      run.timedOut = true;
      return;
    }
    const minGain = Math.max(floor, fraction * c.spread());
    const m = bestMove(run, minGain, refused);
    // An exchange of two VMs competes with the best single move, gain per added migration.
    const sw0 = m ? bestSwap(run, m.gain, refused, 4) : undefined;
    if (m && !sw0) {
      const reason = `lowers the score by ${m.gain.toFixed(4)}`;
      const next = m.retarget ? replanned(run, [[m.v, m.to]], reason) : undefined;
      if (next) run.plan = next;
      else if (run.plan.length < run.maxMoves) run.plan.push({ v: m.v, from: m.from, to: m.to, reason });
      else {
        refused.add(`${m.v.name}\0${m.to.spec.name}`);
        continue;
      }
      c.move(m.v, m.from, m.to);
      refused.clear();
      continue;
    }
    // No single move is worth it: try exchanging two VMs, which single moves cannot reach when both
    // hosts are full or each half of the exchange alone makes things worse.
    const sw = sw0 ?? bestSwap(run, minGain, refused);
    if (!sw) return;
    if (exchange(run, sw)) refused.clear();
    else refused.add(`${sw.v.name}\0${sw.w.name}`);
  }
}

/**
 * Carries out an exchange in the plan: folded into the VMs' planned moves when the whole plan still fits
 * step by step, else as two more moves from where the VMs are now, the one that fits first going first.
 * False when neither order fits (or the plan would grow past maxMoves).
 */
function exchange(run: BalanceRun, sw: Swap): boolean {
  const { c, opts } = run;
  const reason = `exchange of ${sw.v.name} and ${sw.w.name}: lowers the score by ${sw.gain.toFixed(4)}`;
  const folded = replanned(
    run,
    [
      [sw.v, sw.b],
      [sw.w, sw.a],
    ],
    reason,
  );
  if (folded && folded.length <= run.maxMoves) {
    run.plan = folded;
    c.move(sw.v, sw.a, sw.b);
    c.move(sw.w, sw.b, sw.a);
    return true;
  }
  if (run.plan.length + 2 > run.maxMoves) return false;
  for (const [x, from, y, to] of [
    [sw.v, sw.a, sw.w, sw.b],
    [sw.w, sw.b, sw.v, sw.a],
  ] as const) {
    if (whyNotPlace(x, to, opts)) continue;
    c.move(x, from, to);
    if (whyNotPlace(y, from, opts)) {
      c.move(x, to, from);
      continue;
    }
    c.move(y, to, from);
    run.plan.push({ v: x, from, to, reason }, { v: y, from: to, to: from, reason });
    return true;
  }
  return false;
}

interface Swap {
  v: BalanceVm;
  a: HostState;
  w: BalanceVm;
  b: HostState;
  gain: number;
}

/** The exchange of two VMs that gains most (at least `minGain`), among the most and least pressed hosts. */
function bestSwap(run: BalanceRun, minGain: number, refused: ReadonlySet<string>, K = 32): Swap | undefined {
  const { c, opts, plan } = run;
  const { sources, targets } = candidateHosts(c, K);
  const now = c.score();
  const planned = new Set(plan.map((m) => m.v));
  const free = (h: HostState) => h.spec.memMiB - (h.spec.reservedMemMiB ?? 0) - h.mem;
  const movableOn = new Map<HostState, BalanceVm[]>();
  for (const h of new Set([...sources, ...targets]))
    movableOn.set(
      h,
      [...h.vms].filter((v) => !whyUnmovable(v, opts)),
    );
  let best: Swap | undefined;
  for (const a of sources) {
    const freeA = free(a);
    for (const b of targets) {
      if (a === b) continue;
      // No exchange between a and b can gain more than this (see floorBetween): skip the pair when short.
      const cap = now - c.floorBetween(a, b) + CAP_SLACK;
      if (cap < minGain || (best && cap <= best.gain)) continue;
      const freeB = free(b);
      for (const v of movableOn.get(a)!) {
        const xv = c.xOf(v);
        for (const w of movableOn.get(b)!) {
          if (v.memMiB === w.memMiB && v.vcpus === w.vcpus && v.cpuLoad === w.cpuLoad) continue;
          // One of the two must fit first, with the other still in place.
          if (v.memMiB > freeB && w.memMiB > freeA) continue;
          const gain = now - c.scoreIfSwapped(v, a, w, b, xv);
          // Each migration the exchange adds to the plan must pay for itself.
          const cost = (planned.has(v) ? 0 : 1) + (planned.has(w) ? 0 : 1);
          if (gain < minGain * Math.max(1, cost) || (best && gain <= best.gain)) continue;
          if (refused.size && refused.has(`${v.name}\0${w.name}`)) continue;
          best = { v, a, w, b, gain };
        }
      }
    }
  }
  // The rules (anti-affinity, ratios, added rules) are checked on the exchange's own order by replanned().
  return best;
}

/**
 * Density mode: empties hosts, least loaded first; a host is emptied only if all its VMs fit elsewhere
 * (best fit: the fullest host with room), so no half-emptied host is left behind.
 */
function emptyHosts(run: BalanceRun, maxCpu: number): void {
  const { c, opts, plan, maxMoves } = run;
  const order = c.list
    .filter((h) => h.active && h.vms.size > 0)
    .sort((a, b) => c.load(a) - c.load(b) || a.spec.name.localeCompare(b.spec.name));
  const emptied = new Set<HostState>();
  for (const h of order) {
    const vmsHere = [...h.vms];
    if (vmsHere.some((v) => whyUnmovable(v, opts))) continue;
    if (plan.length + vmsHere.length > maxMoves) continue;
    const moved: [BalanceVm, HostState][] = [];
    let ok = true;
    for (const v of vmsHere.sort((a, b) => b.memMiB - a.memMiB || a.name.localeCompare(b.name))) {
      const to = c.list
        .filter(
          (x) =>
            x !== h &&
            !emptied.has(x) &&
            x.vms.size > 0 &&
            !whyNotPlace(v, x, opts) &&
            c.cpuUse(x) + v.cpuLoad / x.spec.cpus <= maxCpu,
        )
        .sort((a, b) => b.mem - a.mem || a.spec.name.localeCompare(b.spec.name))[0];
      if (!to) {
        ok = false;
        break;
      }
      c.move(v, h, to);
      moved.push([v, to]);
    }
    // Density keeps one spare host's worth of memory: any running host could fail and its VMs still fit.
    if (ok && whyNoSpare(runningHosts(c, emptied, h))) ok = false;
    if (!ok) {
      // Put back what was moved: this host stays as it was.
      for (const [v, to] of moved.reverse()) c.move(v, to, h);
      continue;
    }
    for (const [v, to] of moved) plan.push({ v, from: h, to, reason: `empties ${h.spec.name} (density)` });
    emptied.add(h);
  }
}

/** The hosts that would still run VMs after emptying `h`, with their memory as the moves leave it. */
function runningHosts(c: Cluster, emptied: ReadonlySet<HostState>, h: HostState) {
  return c.list
    .filter((x) => x !== h && !emptied.has(x) && x.active && x.vms.size > 0)
    .map((x) => ({
      name: x.spec.name,
      memMiB: x.spec.memMiB,
      usedMiB: x.mem,
      largestVmMiB: Math.max(0, ...[...x.vms].map((v) => v.memMiB)),
    }));
}

/** The score of a placement (the planner's objective), and XSM's former measure beside it. */
export function scoreOf(
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  opts: BalanceOptions = {},
): { score: number; former: number } {
  const copy = vms.map((v) => ({ ...v }));
  const c = new Cluster(hosts, copy, dimsFor(copy, opts), opts.n1Weight ?? 1);
  return { score: c.score(), former: formerMeasure(hosts, vms, opts.cpuWeight, opts.memWeight).imbalance };
}

/** The floor `Cluster.floorBetween` puts under any change between hosts `a` and `b` (for its tests). */
export function pairFloor(
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  a: string,
  b: string,
  opts: BalanceOptions = {},
): number {
  const copy = vms.map((v) => ({ ...v }));
  const c = new Cluster(hosts, copy, dimsFor(copy, opts), opts.n1Weight ?? 1);
  return c.floorBetween(c.hosts.get(a)!, c.hosts.get(b)!);
}

/** XSM's former imbalance measure, for any placement (a column of the benchmark). */
export function imbalanceOf(
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  weights: { cpuWeight?: number; memWeight?: number } = {},
): { imbalance: number; cpuStd: number; memStd: number } {
  return formerMeasure(hosts, vms, weights.cpuWeight, weights.memWeight);
}
