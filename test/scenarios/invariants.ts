// The invariants every scenario must keep, written by hand from what operators must be able to trust —
// never a log recorded from a run. Each is a pure function of a run's trace that returns its violations
// (empty: it held), so each can be shown to fail on a crafted bad trace (invariants.test.ts).

import type { UpgradeView } from '../../src/services/upgrade-status.ts';

/** One domain as a host holds it at one moment. */
export interface DomainAt {
  name: string;
  state: string;
  memMiB: number;
  vcpus: number;
}

/** The whole simulated site after one change: every host's domains. */
export interface WorldState {
  /** What changed it: `h1` (a host's state was written), or `fault: ...`. */
  cause: string;
  hosts: Record<string, DomainAt[]>;
}

export interface PlannedAction {
  id: string;
  kind: string;
  vm: string;
  disruptive: boolean;
  /** Migrations: from where to where. */
  from?: string;
  to?: string;
}

/** One round of a rebalance step: what each control worker's run answered. */
export interface RebalanceRound {
  step: number;
  round: number;
  /** The step's last round. */
  last: boolean;
  results: { version?: number; skipped?: string; moves: { vm: string; from: string; to: string }[] }[];
}

export interface SubmitRecord {
  /** The version it stored; undefined when refused or unchanged. */
  version?: number;
  refused?: string;
  unchanged?: boolean;
}

export interface JobRecord {
  id: string;
  queue: string;
  version: number;
  state: string;
  /** The step its journal last showed (its progress), when it has one. */
  step?: string;
}

export interface OutcomeRecord {
  version: number;
  state: string;
  actions: { id: string; vm: string; outcome: string; reason?: string }[];
}

export interface DesiredVm {
  name: string;
  host: string;
  memMiB: number;
  vcpus: number;
}

export interface Trace {
  states: WorldState[];
  submits: SubmitRecord[];
  /** Every stored version's plan, as stored. */
  plans: Record<number, PlannedAction[]>;
  /** Every version stored, read from the store at the end. */
  storedVersions: number[];
  jobs: JobRecord[];
  /** VMs a fault stopped or destroyed behind XSM's back: their absence is not XSM's doing. */
  outOfBand: string[];
  /** Domains the scenario itself runs outside XSM (a memory hog): not managed VMs. */
  unmanaged: string[];
  /** The last stored version's desired VMs, and how its apply ended. */
  desired: DesiredVm[];
  outcome?: OutcomeRecord;
  /** The live-migration limits the agents ran with. */
  migrationLimits: { global: number; perSource: number; perTarget: number };
  /** Every rebalance run, round by round. */
  rebalances: RebalanceRound[];
  /** Each simulated host's memory for guests (MiB): what `noHostOverloaded` holds them to. */
  hostMemMiB?: Record<string, number>;
  /** After each drain or return step's apply: the VMs on the host then, and what the step promised. */
  hostChecks?: HostCheck[];
  /** Each upgrade step: how the upgrade ended, by its own account, and every host update started, in order. */
  upgrades?: { step: number; view?: UpgradeView; refused?: string; updates: string[]; crashed: boolean }[];
  /** Each host's VMs before the scenario's first upgrade step: what its return must bring back. */
  homes?: Map<string, string[]>;
  /** The toolstack calls on a stalled host and the stall's own lines (runner.ts, Stall), compared whole. */
  log?: string[];
}

/** A drain must leave its host empty; a return must bring back each VM it moved. */
export interface HostCheck {
  step: number;
  host: string;
  kind: 'drain' | 'return';
  /** The VMs the step moved (off the host for a drain, onto it for a return). */
  moved: string[];
  /** The domains on the host once the step's apply ended. */
  on: string[];
}

const RUNNING = new Set(['running', 'blocked']);
/** Up: running, or paused during a live migration's stop-and-copy (sender) or as the receiver's copy. */
const UP = new Set(['running', 'blocked', 'paused']);

function baseName(domain: string): string {
  return domain.replace(/--incoming$/, '');
}

/** 1. No VM runs on two hosts at once, at any moment. */
export function noVmRunsTwice(t: Trace): string[] {
  const out: string[] = [];
  t.states.forEach((st, i) => {
    const where = new Map<string, string[]>();
    for (const [host, domains] of Object.entries(st.hosts))
      for (const d of domains)
        if (RUNNING.has(d.state) && !d.name.endsWith('--incoming'))
          where.set(d.name, [...(where.get(d.name) ?? []), host]);
    for (const [vm, hosts] of where)
      if (hosts.length > 1) out.push(`state ${i} (${st.cause}): ${vm} runs on ${hosts.join(' and ')}`);
  });
  return out;
}

/**
 * 2. No VM goes down that no approved plan stopped: once up, a VM stays up (somewhere) unless a stored plan
 * has a disruptive action for it (remove, restart, cold move) or a fault took it down out of band.
 * A crashed domain counts as down.
 */
export function noUnplannedDown(t: Trace): string[] {
  const allowed = new Set([
    ...t.outOfBand,
    ...Object.values(t.plans).flatMap((p) => p.filter((a) => a.disruptive || a.kind === 'remove').map((a) => a.vm)),
  ]);
  const out: string[] = [];
  const wasUp = new Set<string>();
  t.states.forEach((st, i) => {
    const up = new Set<string>();
    for (const domains of Object.values(st.hosts))
      for (const d of domains) if (UP.has(d.state)) up.add(baseName(d.name));
    for (const vm of wasUp)
      if (!up.has(vm) && !allowed.has(vm) && !t.unmanaged.includes(vm))
        out.push(`state ${i} (${st.cause}): ${vm} went down, and no approved plan stopped it`);
    for (const vm of up) wasUp.add(vm);
    for (const vm of [...wasUp]) if (!up.has(vm)) wasUp.delete(vm);
  });
  return out;
}

/**
 * 3. The run ends where the last version says, or its outcome names exactly what did not converge and why:
 * every desired VM runs once, on its host, at its size, and no removed VM is left — or the outcome has a
 * failed or blocked action, with a reason, for that VM.
 */
export function endsConvergedOrExplained(t: Trace): string[] {
  const final = t.states.at(-1);
  if (!final) return ['no state was recorded'];
  const explained = new Map<string, string>();
  for (const a of t.outcome?.actions ?? [])
    if ((a.outcome === 'failed' || a.outcome === 'blocked') && a.reason) explained.set(a.vm, a.reason);
  const out: string[] = [];
  const seen = new Map<string, { host: string; d: DomainAt }[]>();
  for (const [host, domains] of Object.entries(final.hosts))
    for (const d of domains)
      if (!t.unmanaged.includes(d.name)) seen.set(d.name, [...(seen.get(d.name) ?? []), { host, d }]);
  for (const vm of t.desired) {
    const at = seen.get(vm.name) ?? [];
    const ok =
      at.length === 1 &&
      at[0]!.host === vm.host &&
      RUNNING.has(at[0]!.d.state) &&
      at[0]!.d.memMiB === vm.memMiB &&
      at[0]!.d.vcpus === vm.vcpus;
    if (!ok && !explained.has(vm.name))
      out.push(
        `${vm.name} should run on ${vm.host} with ${vm.memMiB} MiB / ${vm.vcpus} vCPUs but is ${at.map((a) => `${a.d.state} on ${a.host} with ${a.d.memMiB} MiB / ${a.d.vcpus}`).join(', ') || 'nowhere'}, and the outcome does not say why`,
      );
  }
  const desired = new Set(t.desired.map((v) => v.name));
  for (const [name, at] of seen)
    if (!desired.has(name) && !explained.has(name))
      out.push(`${name} is not in the last version but is still on ${at.map((a) => a.host).join(', ')}`);
  if (t.outcome && t.outcome.state !== 'converged' && explained.size === 0)
    out.push(`the apply of version ${t.outcome.version} ended ${t.outcome.state} without naming what failed`);
  return out;
}

/** 4. Nothing from a refused submit is stored: the versions stored are exactly those submits were told. */
export function refusedStoresNothing(t: Trace): string[] {
  const told = new Set(t.submits.flatMap((s) => (s.version !== undefined && !s.unchanged ? [s.version] : [])));
  const out: string[] = [];
  for (const v of t.storedVersions) if (!told.has(v)) out.push(`version ${v} is stored, but no submit was told it was`);
  for (const v of told)
    if (!t.storedVersions.includes(v)) out.push(`a submit was told version ${v}, which is not stored`);
  for (const j of t.jobs)
    if (!t.storedVersions.includes(j.version))
      out.push(`job ${j.queue}/${j.id} ran for version ${j.version}, never stored`);
  return out;
}

/** 5. Every job that ran is an action of its version's approved plan (or a part of one). */
export function onlyPlannedActionsRan(t: Trace): string[] {
  const out: string[] = [];
  for (const j of t.jobs) {
    const plan = t.plans[j.version];
    if (!plan) {
      out.push(`job ${j.queue}/${j.id} ran for version ${j.version}, which has no stored plan`);
      continue;
    }
    const ids = plan.map((a) => `v${j.version}-${a.id.replace(/:/g, '-')}`);
    if (!ids.some((id) => j.id === id || j.id.startsWith(`${id}-`)))
      out.push(
        `job ${j.queue}/${j.id} is no action of version ${j.version}'s plan (${plan.map((a) => a.id).join(', ')})`,
      );
  }
  return out;
}

/**
 * 6. Live migrations never exceed the limits: at no recorded moment are more VMs in flight (held on two
 * hosts: the sender's copy and the receiver's) than the site-wide limit, nor more leaving one host or
 * reaching one host than the per-source and per-target limits. A VM's source is where it last ran alone.
 */
export function migrationLimitsHeld(t: Trace): string[] {
  const out: string[] = [];
  const home = new Map<string, string>();
  t.states.forEach((st, i) => {
    const where = new Map<string, string[]>();
    for (const [host, domains] of Object.entries(st.hosts))
      for (const d of domains) {
        const vm = baseName(d.name);
        if (!where.get(vm)?.includes(host)) where.set(vm, [...(where.get(vm) ?? []), host]);
      }
    const leaving = new Map<string, string[]>();
    const reaching = new Map<string, string[]>();
    let inFlight = 0;
    for (const [vm, hosts] of where) {
      if (hosts.length === 1) {
        home.set(vm, hosts[0]!);
        continue;
      }
      inFlight++;
      const from = home.get(vm) ?? hosts[0]!;
      leaving.set(from, [...(leaving.get(from) ?? []), vm]);
      for (const to of hosts.filter((h) => h !== from)) reaching.set(to, [...(reaching.get(to) ?? []), vm]);
    }
    const at = `state ${i} (${st.cause})`;
    const l = t.migrationLimits;
    if (inFlight > l.global) out.push(`${at}: ${inFlight} live migrations at once, limit ${l.global}`);
    for (const [h, vms] of leaving)
      if (vms.length > l.perSource) out.push(`${at}: ${vms.join(', ')} leave ${h} at once, limit ${l.perSource}`);
    for (const [h, vms] of reaching)
      if (vms.length > l.perTarget) out.push(`${at}: ${vms.join(', ')} reach ${h} at once, limit ${l.perTarget}`);
  });
  return out;
}

/** 7. No two balancers act at once: of the runs of one round, at most one writes; the others say why not. */
export function oneBalancerAtATime(t: Trace): string[] {
  const out: string[] = [];
  for (const r of t.rebalances) {
    const wrote = r.results.filter((x) => x.version !== undefined);
    if (wrote.length > 1)
      out.push(`step ${r.step} round ${r.round}: ${wrote.length} rebalancers wrote versions at once`);
    if (r.results.length > 1)
      for (const x of r.results)
        if (x.version === undefined && x.moves.length > 0 && !x.skipped)
          out.push(`step ${r.step} round ${r.round}: a rebalancer had moves, wrote nothing and did not say why`);
  }
  return out;
}

/**
 * 8. No oscillation: no rebalance moves a VM back to a host an earlier one moved it off, and the last of
 * repeated rounds on unchanged metrics writes nothing (the rebalancer settles).
 */
export function noOscillation(t: Trace): string[] {
  const out: string[] = [];
  const left = new Map<string, Set<string>>();
  for (const r of t.rebalances) {
    for (const x of r.results) {
      if (x.version === undefined) continue;
      for (const m of x.moves) {
        if (left.get(m.vm)?.has(m.to))
          out.push(`step ${r.step} round ${r.round}: ${m.vm} moved back to ${m.to}, which a rebalance moved it off`);
        left.set(m.vm, new Set([...(left.get(m.vm) ?? []), m.from]));
      }
    }
    if (r.last && r.round > 0 && r.results.some((x) => x.version !== undefined))
      out.push(`step ${r.step}: still moving VMs after ${r.round + 1} rounds on the same metrics`);
  }
  return out;
}

/** 9. No simulated host ever holds more guest memory than it has, at any recorded moment (drains included). */
export function noHostOverloaded(t: Trace): string[] {
  const out: string[] = [];
  for (const [i, w] of t.states.entries())
    for (const [host, doms] of Object.entries(w.hosts)) {
      const cap = t.hostMemMiB?.[host];
      const used = doms.reduce((n, d) => n + d.memMiB, 0);
      if (cap !== undefined && used > cap) out.push(`state ${i} (${w.cause}): ${host} holds ${used} MiB of ${cap}`);
    }
  return out;
}

/** 10. A drain leaves its host with no domain; a return brings back every VM it said it moves. */
export function drainEmptiesReturnRestores(t: Trace): string[] {
  const out: string[] = [];
  for (const c of t.hostChecks ?? []) {
    if (c.kind === 'drain' && c.on.length)
      out.push(`step ${c.step}: ${c.host} still runs ${c.on.join(', ')} after its drain`);
    if (c.kind === 'return')
      for (const vm of c.moved.filter((v) => !c.on.includes(v)))
        out.push(`step ${c.step}: ${vm} was to return to ${c.host} but is not there`);
  }
  return out;
}

/**
 * 11. A completed job's journal says it is done: no run that had lost the job (its lock lapsed and the job
 * was handed over) wrote over the journal of the run that finished it.
 */
export function completedJournalsDone(t: Trace): string[] {
  return t.jobs
    .filter((j) => j.state === 'completed' && j.step !== undefined && j.step !== 'done')
    .map((j) => `job ${j.queue}/${j.id} completed, but its journal shows step ${j.step}`);
}

export const INVARIANTS = {
  noVmRunsTwice,
  noUnplannedDown,
  endsConvergedOrExplained,
  refusedStoresNothing,
  onlyPlannedActionsRan,
  migrationLimitsHeld,
  oneBalancerAtATime,
  noOscillation,
  noHostOverloaded,
  drainEmptiesReturnRestores,
  completedJournalsDone,
};
