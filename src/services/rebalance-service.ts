// Runs the rebalancer against the live site: snapshot (current site version + observed state + Ganglia
// CPU use) -> balance() -> a new site-file version with reason "rebalance", which the plan engine then
// carries out as live migrations. The file stays the truth. Runs on demand, as a dry run, or on a
// schedule (a BullMQ job scheduler on the control queue).

import { CONTROL_QUEUE, type RebalanceRequest } from '../runtime/queues.ts';
export type { RebalanceRequest } from '../runtime/queues.ts';
import { ConsentRequiredError, submitSite } from './site-service.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { capacityOf } from '../site/capacity.ts';
import { serializeSite } from '../site/serialize.ts';
import { SYSTEM } from '../state/audit-store.ts';
import { balance, type BalanceOptions, type BalanceResult } from '../rebalance/balance.ts';

export interface RebalanceOutcome extends BalanceResult {
  baseVersion: number;
  version?: number;
  /** Why the moves were not written: their plan would stop running VMs, which the rebalancer never does. */
  refused?: string;
}

/** Who asks for a manual rebalance: it moves only VMs of Sets this actor may change; it is the author. */
export interface RebalanceActor {
  name: string;
  /** True for a VM of a Set the actor owns (src/api/ownership.ts); others stay where they are. */
  mayMove: (set: string) => boolean;
}

export async function runRebalance(
  rt: ServiceRuntime,
  req: RebalanceRequest = {},
  actor?: RebalanceActor,
): Promise<RebalanceOutcome> {
  const baseVersion = await rt.sites.currentVersion();
  if (!baseVersion) throw new Error('no site version to rebalance; submit a site file first');
  const { site } = await rt.sites.load(baseVersion);
  const metrics = rt.metrics;
  const observed = await rt.observed.all();
  // CPU load: Ganglia's vm_cpu_pct when the poller has it, else assume each vCPU half busy.
  const loads = await Promise.all(site.vms.map(async (v) => (await metrics.latest(v.name))?.metrics.vm_cpu_pct?.v));
  const cooling = await rt.cooldowns.cooling(site.vms.map((v) => v.name));
  // Implied hosts (a paper-format <DOM0>) have the room their agent observes, as the planner sees it.
  const managed = new Set(site.vms.map((v) => v.name));
  const hosts = site.hosts.flatMap((h) => {
    const cap = capacityOf(h, observed, (vm) => managed.has(vm));
    return cap ? [{ name: h.name, cpus: cap.cpus || 1, memMiB: cap.memMiB || 1, maintenance: h.maintenance }] : [];
  });
  const vms = site.vms.map((v, i) => ({
    name: v.name,
    host: v.host,
    memMiB: v.memMiB,
    vcpus: v.vcpus,
    cpuLoad: typeof loads[i] === 'number' ? Math.min(v.vcpus, (loads[i] as number) / 100) : v.vcpus / 2,
    // A VM the actor may not move is held in place, but its load still counts.
    pinned: v.placement.pinned || (actor !== undefined && !actor.mayMove(v.set)),
    noRebalance: v.placement.noRebalance,
    ...(v.placement.antiAffinity ? { antiAffinity: v.placement.antiAffinity } : {}),
  }));
  const opts: BalanceOptions = {
    mode: req.mode ?? 'performance',
    maxMoves: req.maxMoves ?? 8,
    cooldown: cooling,
  };
  const result = balance(hosts, vms, opts);
  if (req.dryRun || result.moves.length === 0) return { ...result, baseVersion };
  const to = new Map(result.moves.map((m) => [m.vm, m.to]));
  const next = { ...site, vms: site.vms.map((v) => (to.has(v.name) ? { ...v, host: to.get(v.name)! } : v)) };
  // The predicted score before and after each move is stored with the version, in its reason.
  const predicted = result.moves
    .map((m) => `${m.vm} ${m.from}->${m.to} ${m.scoreBefore.toFixed(4)}->${m.scoreAfter.toFixed(4)}`)
    .join(', ');
  const reason = `rebalance (${opts.mode}): ${result.moves.length} live migration${result.moves.length === 1 ? '' : 's'}, score ${result.imbalanceBefore.toFixed(4)} -> ${result.imbalanceAfter.toFixed(4)} (predicted: ${predicted})`;
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
    return { ...result, baseVersion, refused: `not written: ${e.message}` };
  }
  if (stored.unchanged) return { ...result, baseVersion };
  const version = stored.version;
  // A manual rebalance is audited as its request; the scheduled one as the system identity.
  if (!actor)
    await rt.audit.append({
      user: SYSTEM.rebalance.name,
      role: SYSTEM.rebalance.role,
      from: 'internal',
      kind: 'rebalance',
      what: `${result.moves.length} live migration${result.moves.length === 1 ? '' : 's'}: ${result.moves.map((m) => `${m.vm} ${m.from}->${m.to}`).join(', ')}`,
      outcome: 'ok',
      version,
      reason,
    });
  const ttl = req.cooldownSec ?? 1800;
  if (ttl > 0) for (const m of result.moves) await rt.cooldowns.start(m.vm, version, ttl);
  return { ...result, baseVersion, version };
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
