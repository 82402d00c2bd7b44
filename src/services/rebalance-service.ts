// Runs the rebalancer against the live site: snapshot (current site version + observed state + Ganglia
// CPU use) -> balance() -> a new site-file version with reason "rebalance", which the plan engine then
// carries out as live migrations. The file stays the truth. Runs on demand, as a dry run, or on a
// schedule (a BullMQ job scheduler on the control queue).

import { applyJobId, CONTROL_QUEUE, type RebalanceRequest } from '../runtime/queues.ts';
export type { RebalanceRequest } from '../runtime/queues.ts';
import { ConsentRequiredError, submitSite } from './site-service.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { capacityOf } from '../site/capacity.ts';
import { serializeSite } from '../site/serialize.ts';
import type { Site, VmSpec } from '../site/model.ts';
import { vmDisks } from '../site/storage.ts';
import { SYSTEM } from '../state/audit-store.ts';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import {
  balance,
  imbalanceOf,
  scoreOf,
  type BalanceHost,
  type BalanceOptions,
  type BalanceResult,
  type BalanceVm,
} from '../rebalance/balance.ts';

/** Hysteresis and cooldowns when the request does not say: act at 0.10, stop at 0.05, 30 and 10 minutes. */
export const REBALANCE_DEFAULTS = { actAbove: 0.1, stopBelow: 0.05, cooldownSec: 1800, hostCooldownSec: 600 };

/** The single-writer lease a rebalance holds while it plans and writes (src/state/lease-store.ts). */
export const REBALANCE_LEASE = 'rebalance';
const LEASE_MS = 120_000;

/** True when the VM has a disk only its host sees: no live move exists for it (NFS pools: see canMoveLive). */
function hasLocalDisk(site: Site, vm: VmSpec): boolean {
  return vmDisks(site, vm).some((d) => d.pool.type !== 'nfs');
}

export interface RebalanceOutcome extends BalanceResult {
  baseVersion: number;
  version?: number;
  /** Why the moves were not written: their plan would stop running VMs, which the rebalancer never does. */
  refused?: string;
  /** Why this run did nothing at all: another rebalancer holds the lease, or the last apply still runs. */
  skipped?: string;
  /** Why balancing moves were left out or cut short: the hysteresis thresholds. */
  held?: string;
}

/** Who asks for a manual rebalance: it moves only VMs of Sets this actor may change; it is the author. */
export interface RebalanceActor {
  name: string;
  /** True for a VM of a Set the actor owns (src/api/ownership.ts); others stay where they are. */
  mayMove: (set: string) => boolean;
}

/** Who this process is, as a lease holder: unique per run, readable in a "skipped" message. */
const holderId = () => `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

export async function runRebalance(
  rt: ServiceRuntime,
  req: RebalanceRequest = {},
  actor?: RebalanceActor,
): Promise<RebalanceOutcome> {
  // A dry run writes nothing, so it needs no lease: it is always answered.
  if (req.dryRun) return planRebalance(rt, req, actor);
  const holder = holderId();
  const lease = await rt.leases.acquire(REBALANCE_LEASE, holder, LEASE_MS);
  if (!lease.ok) {
    const baseVersion = await rt.sites.currentVersion();
    return { ...nothing(baseVersion), skipped: `skipped: another rebalancer (${lease.holder}) is acting now` };
  }
  try {
    return await planRebalance(rt, req, actor);
  } finally {
    await rt.leases.release(REBALANCE_LEASE, holder);
  }
}

function nothing(baseVersion: number): RebalanceOutcome {
  return {
    baseVersion,
    moves: [],
    imbalanceBefore: 0,
    imbalanceAfter: 0,
    cpuStdBefore: 0,
    cpuStdAfter: 0,
    memStdBefore: 0,
    memStdAfter: 0,
    emptyHosts: [],
    stuck: [],
    timedOut: false,
  };
}

/** The snapshot the balancer plans on: the current version's hosts and VMs, with CPU load from Ganglia. */
async function snapshot(rt: ServiceRuntime, site: Site, actor?: RebalanceActor) {
  const metrics = rt.metrics;
  const observed = await rt.observed.all();
  // CPU load: Ganglia's vm_cpu_pct when the poller has it, else assume each vCPU half busy.
  const loads = await Promise.all(site.vms.map(async (v) => (await metrics.latest(v.name))?.metrics.vm_cpu_pct?.v));
  // Implied hosts (a paper-format <DOM0>) have the room their agent observes, as the planner sees it.
  const managed = new Set(site.vms.map((v) => v.name));
  const hosts: BalanceHost[] = site.hosts.flatMap((h) => {
    const cap = capacityOf(h, observed, (vm) => managed.has(vm));
    return cap ? [{ name: h.name, cpus: cap.cpus || 1, memMiB: cap.memMiB || 1, maintenance: h.maintenance }] : [];
  });
  const vms: BalanceVm[] = site.vms.map((v, i) => ({
    name: v.name,
    host: v.host,
    memMiB: v.memMiB,
    vcpus: v.vcpus,
    cpuLoad: typeof loads[i] === 'number' ? Math.min(v.vcpus, (loads[i] as number) / 100) : v.vcpus / 2,
    // A VM the actor may not move is held in place, but its load still counts.
    // So is a VM with a disk in a pool only its host sees (file, lvm): it cannot move live anywhere.
    pinned: v.placement.pinned || (actor !== undefined && !actor.mayMove(v.set)) || hasLocalDisk(site, v),
    noRebalance: v.placement.noRebalance,
    ...(v.placement.antiAffinity ? { antiAffinity: v.placement.antiAffinity } : {}),
    ...(v.placement.affinity ? { affinity: v.placement.affinity } : {}),
    ...(v.placement.excludeHosts ? { excludeHosts: v.placement.excludeHosts } : {}),
  }));
  return { hosts, vms };
}

/**
 * Hysteresis: balancing moves are made only while engaged — from the run whose imbalance reaches
 * `actAbove` until one brings it to `stopBelow` — and a run stops at the first move that reaches
 * `stopBelow`. Drains of hosts in maintenance are never held back (maintenance outranks balance).
 * The thresholds are on the imbalance operators read (the standard deviations of CPU and memory use,
 * summed), not on the optimiser's score, whose scale depends on the site's size and N+1 terms.
 */
function applyHysteresis(
  result: BalanceResult,
  hosts: readonly BalanceHost[],
  vms: readonly BalanceVm[],
  t: { actAbove: number; stopBelow: number; engaged: boolean },
): { result: BalanceResult; engaged: boolean; held?: string } {
  const draining = new Set(hosts.filter((h) => h.maintenance).map((h) => h.name));
  const drains = result.moves.filter((m) => draining.has(m.from));
  const balancing = result.moves.filter((m) => !draining.has(m.from));
  const imbalanceWith = (moves: readonly { vm: string; to: string }[]) => {
    const to = new Map(moves.map((m) => [m.vm, m.to]));
    return imbalanceOf(
      hosts,
      vms.map((v) => ({ ...v, host: to.get(v.name) ?? v.host })),
    );
  };
  const before = imbalanceWith([]).imbalance;
  const engaged = t.engaged || before >= t.actAbove;
  let kept = balancing;
  let held: string | undefined;
  if (!engaged) {
    kept = [];
    if (balancing.length) held = `imbalance ${before.toFixed(3)} is below the act threshold ${t.actAbove}`;
  } else {
    const stopAt = balancing.findIndex(
      (_, i) => imbalanceWith([...drains, ...balancing.slice(0, i + 1)]).imbalance <= t.stopBelow,
    );
    if (stopAt >= 0 && stopAt < balancing.length - 1) {
      kept = balancing.slice(0, stopAt + 1);
      held = `stopped after ${kept.length} moves: imbalance reached the stop threshold ${t.stopBelow}`;
    }
  }
  const moves = [...drains, ...kept];
  const after = imbalanceWith(moves);
  const still = kept.length > 0 && after.imbalance > t.stopBelow;
  if (moves.length === result.moves.length) return { result, engaged: engaged && still };
  const to = new Map(moves.map((m) => [m.vm, m.to]));
  return {
    result: {
      ...result,
      moves,
      imbalanceAfter: scoreOf(
        hosts,
        vms.map((v) => ({ ...v, host: to.get(v.name) ?? v.host })),
      ).score,
      cpuStdAfter: after.cpuStd,
      memStdAfter: after.memStd,
    },
    engaged: engaged && still,
    ...(held ? { held } : {}),
  };
}

/** True while `version`'s apply runs, or is queued and has not started yet. */
async function applyUnfinished(rt: ServiceRuntime, version: number): Promise<boolean> {
  const status = await rt.applies.status(version);
  if (status) return status.state === 'applying';
  const job = (await rt.control().getJob(applyJobId(version))) as { getState?: () => Promise<string> } | undefined;
  const state = typeof job?.getState === 'function' ? await job.getState() : undefined;
  return state !== undefined && ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'].includes(state);
}

async function planRebalance(
  rt: ServiceRuntime,
  req: RebalanceRequest,
  actor?: RebalanceActor,
): Promise<RebalanceOutcome> {
  const baseVersion = await rt.sites.currentVersion();
  if (!baseVersion) throw new Error('no site version to rebalance; submit a site file first');
  if (!req.dryRun && (await applyUnfinished(rt, baseVersion)))
    return { ...nothing(baseVersion), skipped: `skipped: the apply of version ${baseVersion} is still running` };
  const { site } = await rt.sites.load(baseVersion);
  const { hosts, vms } = await snapshot(rt, site, actor);
  const opts: BalanceOptions = {
    mode: req.mode ?? 'performance',
    maxMoves: req.maxMoves ?? 8,
    cooldown: await rt.cooldowns.cooling(site.vms.map((v) => v.name)),
    hostCooldown: await rt.cooldowns.hostsCooling(hosts.map((h) => h.name)),
  };
  const t = {
    actAbove: req.actAbove ?? REBALANCE_DEFAULTS.actAbove,
    stopBelow: req.stopBelow ?? REBALANCE_DEFAULTS.stopBelow,
    engaged: await rt.cooldowns.engaged(),
  };
  // Density mode packs on purpose: its moves are not balancing, so hysteresis does not hold them.
  const h =
    opts.mode === 'density'
      ? { result: balance(hosts, vms, opts), engaged: t.engaged }
      : applyHysteresis(balance(hosts, vms, opts), hosts, vms, t);
  const result = h.result;
  const extra = h.held ? { held: h.held } : {};
  if (req.dryRun) return { ...result, baseVersion, ...extra };
  if (opts.mode !== 'density') await rt.cooldowns.setEngaged(h.engaged);
  if (result.moves.length === 0) return { ...result, baseVersion, ...extra };
  const written = await writeMoves(rt, req, site, baseVersion, result, actor);
  const draining = new Set(hosts.filter((x) => x.maintenance).map((x) => x.name));
  if (written.version) await afterWrite(rt, req, written.version, result, draining);
  return { ...result, baseVersion, ...written, ...extra };
}

/** Stores the moves as a new site version (applied at once); never one whose plan would stop a VM. */
async function writeMoves(
  rt: ServiceRuntime,
  req: RebalanceRequest,
  site: Site,
  baseVersion: number,
  result: BalanceResult,
  actor?: RebalanceActor,
): Promise<{ version?: number; refused?: string }> {
  const mode = req.mode ?? 'performance';
  const to = new Map(result.moves.map((m) => [m.vm, m.to]));
  const next = { ...site, vms: site.vms.map((v) => (to.has(v.name) ? { ...v, host: to.get(v.name)! } : v)) };
  // The predicted score before and after each move is stored with the version, in its reason.
  const predicted = result.moves
    .map((m) => `${m.vm} ${m.from}->${m.to} ${m.scoreBefore.toFixed(4)}->${m.scoreAfter.toFixed(4)}`)
    .join(', ');
  const reason = `rebalance (${mode}): ${result.moves.length} live migration${result.moves.length === 1 ? '' : 's'}, score ${result.imbalanceBefore.toFixed(4)} -> ${result.imbalanceAfter.toFixed(4)} (predicted: ${predicted})`;
  // Based on the version read: if an operator changed the site meanwhile, this is refused (409) and
  // the next run plans again from the new version. The rebalancer never stops a VM: a plan that would
  // (a cycle of moves broken by a cold move) is not written.
  let stored;
  try {
    stored = await submitSite(rt, {
      xml: serializeSite(next),
      file: `rebalance of v${baseVersion}`,
      base: baseVersion,
      author: actor?.name ?? SYSTEM.rebalance.name,
      reason,
      consent: 'none',
      apply: true,
    });
  } catch (e) {
    if (!(e instanceof ConsentRequiredError)) throw e;
    return { refused: `not written: ${e.message}` };
  }
  if (stored.unchanged) return {};
  // A manual rebalance is audited as its request; the scheduled one as the system identity.
  if (!actor)
    await rt.audit.append({
      user: SYSTEM.rebalance.name,
      role: SYSTEM.rebalance.role,
      from: 'internal',
      kind: 'rebalance',
      what: `${result.moves.length} live migration${result.moves.length === 1 ? '' : 's'}: ${result.moves.map((m) => `${m.vm} ${m.from}->${m.to}`).join(', ')}`,
      outcome: 'ok',
      version: stored.version,
      reason,
    });
  return { version: stored.version };
}

/** Cools the moved VMs and the hosts they left or reached, and records why each move was made. */
async function afterWrite(
  rt: ServiceRuntime,
  req: RebalanceRequest,
  version: number,
  result: BalanceResult,
  draining: ReadonlySet<string>,
): Promise<void> {
  const ttl = req.cooldownSec ?? REBALANCE_DEFAULTS.cooldownSec;
  if (ttl > 0) for (const m of result.moves) await rt.cooldowns.start(m.vm, version, ttl);
  const hostTtl = req.hostCooldownSec ?? REBALANCE_DEFAULTS.hostCooldownSec;
  const touched = new Set(result.moves.flatMap((m) => [m.from, m.to]));
  if (hostTtl > 0) for (const h of touched) await rt.cooldowns.startHost(h, version, hostTtl);
  let before = result.imbalanceBefore;
  for (const m of result.moves) {
    // A planner that predicts each move's gain says so on the move; else it is the drop in imbalance.
    const given = (m as { predictedGain?: unknown }).predictedGain;
    const predictedGain = typeof given === 'number' ? given : before - m.imbalanceAfter;
    before = m.imbalanceAfter;
    await rt.migrations.record({
      vm: m.vm,
      version,
      from: m.from,
      to: m.to,
      source: draining.has(m.from) ? 'drain' : 'rebalance',
      reason: m.reason,
      predictedGain,
    });
  }
}

/** Every `everyMs`, a `rebalance` job on the control queue (one schedule per site, replaced on change). */
export async function scheduleRebalance(rt: XsmRuntime, everyMs: number, req: RebalanceRequest = {}): Promise<void> {
  await rt
    .queue(CONTROL_QUEUE)
    .upsertJobScheduler(
      'rebalance',
      { every: everyMs },
      { name: 'rebalance', data: req, opts: { attempts: 1, removeOnComplete: { count: 100 } } },
    );
}
