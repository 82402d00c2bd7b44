// Drain and return: `xsm host drain HOST` puts a host in maintenance and moves every VM off it in one new
// site version, spread by capacity and the placement rules (src/rebalance/balance.ts's maintenance drain,
// src/rebalance/rules.ts's precedence); `xsm host undrain HOST --return` clears maintenance and brings back
// the VMs that left in the drain. A pre-check comes first and lists every VM that cannot move and why; a
// drain that would leave a VM behind is refused whole, so nothing is half-applied. Which VMs left is kept
// in the migration history (source "drain"), so a return works after any restart.

import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { balance, type BalanceHost, type BalanceVm } from '../rebalance/balance.ts';
import { PlacementRules } from '../rebalance/rules.ts';
import { disruptiveActions, type Action } from '../site/actions.ts';
import { capacityOf } from '../site/capacity.ts';
import { EditError } from '../site/edit.ts';
import type { HostSpec, Site, VmSpec } from '../site/model.ts';
import type { ObservedState } from '../site/observed.ts';
import { serializeSite } from '../site/serialize.ts';
import { canMoveLive, whyNotLive } from '../site/storage.ts';
import type { PlanRecord } from '../state/site-store.ts';
import { currentSite, NoSiteError, previewPlan, submitSite, type Consent, type SubmitResult } from './site-service.ts';

/** One VM the drain (or return) moves. `live` false: a cold move (stop, copy, start), which needs consent. */
export interface HostMove {
  vm: string;
  from: string;
  to: string;
  memMiB: number;
  live: boolean;
}

/** One VM that cannot move, and why (pinned, no room, anti-affinity, disk not on shared storage). */
export interface Blocker {
  vm: string;
  why: string;
}

export interface HostChangeRequest {
  host: string;
  author: string;
  consent: Consent;
  dryRun?: boolean;
  reason?: string;
  /** Undrain only: bring back the VMs that left in the drain. */
  returnVms?: boolean;
  authorize?: (current: Site | undefined, next: Site) => void;
}

export interface HostChangeOutcome {
  host: string;
  base: number;
  reason: string;
  moves: HostMove[];
  /** Drain: VMs that cannot move (a non-empty list refuses the drain). Return: VMs that stay where they are. */
  blockers: Blocker[];
  /** VMs that can leave only by a cold move (disk not on shared storage): the submit needs consent for them. */
  cold: Blocker[];
  /** Set on a dry run: the plan the change would get now, stored nowhere. */
  preview?: PlanRecord;
  disruptive?: Action[];
  /** Set when the change was submitted. */
  result?: SubmitResult;
}

/** The reason every record of a drain carries: how a later return finds the drain's VMs. */
const drainReason = (host: string) => `drain of ${host}`;

function hostOrThrow(site: Site, host: string) {
  const h = site.hosts.find((x) => x.name === host);
  if (!h)
    throw new EditError(
      `no host named "${host}" in the current site version; known hosts: ${site.hosts.map((x) => x.name).join(', ')}`,
      404,
    );
  return h;
}

/** Hosts and VMs as the balancer sees them, `host` in maintenance; pinned VMs held, VMs that must move cold listed. */
async function drainSnapshot(rt: ServiceRuntime, site: Site, host: string) {
  const observed = await rt.observed.all();
  const managed = new Set(site.vms.map((v) => v.name));
  const hosts: BalanceHost[] = site.hosts.flatMap((h) => {
    const cap = capacityOf(h, observed, (vm) => managed.has(vm));
    return cap
      ? [{ name: h.name, cpus: cap.cpus || 1, memMiB: cap.memMiB || 1, maintenance: h.maintenance || h.name === host }]
      : [];
  });
  const blockers: Blocker[] = [];
  const cold: Blocker[] = [];
  // Other hosts in maintenance are the rebalancer's to drain: their VMs stay put here, taking no room.
  const elsewhere = new Set(site.hosts.filter((h) => h.maintenance && h.name !== host).map((h) => h.name));
  const vms: BalanceVm[] = site.vms.map((v) => {
    let held = elsewhere.has(v.host);
    if (v.host === host && v.placement.pinned) {
      blockers.push({ vm: v.name, why: `pinned to ${host}` });
      held = true;
    }
    const local = !held && v.host === host ? localDiskWhy(site, v) : undefined;
    if (local) cold.push({ vm: v.name, why: `${local}; a cold move (stop, copy, start) needs consent (--yes)` });
    return {
      name: v.name,
      host: v.host,
      memMiB: v.memMiB,
      vcpus: v.vcpus,
      cpuLoad: v.vcpus / 2,
      pinned: v.placement.pinned || held,
      ...(v.placement.antiAffinity ? { antiAffinity: v.placement.antiAffinity } : {}),
      ...(v.placement.affinity ? { affinity: v.placement.affinity } : {}),
      ...(v.placement.excludeHosts ? { excludeHosts: v.placement.excludeHosts } : {}),
    };
  });
  return { hosts, vms, blockers, cold };
}

/** Why the VM's disks keep it from moving live off its host (to any host), or undefined when they do not. */
function localDiskWhy(site: Site, vm: VmSpec): string | undefined {
  const others = site.hosts.filter((h) => h.name !== vm.host).map((h) => h.name);
  if (others.some((to) => canMoveLive(site, vm, vm.host, to))) return undefined;
  const why = others.length ? whyNotLive(site, vm, vm.host, others[0]!) : [];
  return `disk not on shared storage: ${why.join('; ') || 'no other host shares its disks'}`;
}

/** Why a VM the balancer could not place fits nowhere: the rule every host names, else no room. */
function whyStuck(hosts: readonly BalanceHost[], vms: readonly BalanceVm[], vm: BalanceVm, host: string): string {
  const rules = new PlacementRules(hosts, vms);
  const used = new Map<string, number>();
  for (const v of vms) used.set(v.host, (used.get(v.host) ?? 0) + v.memMiB);
  const said = new Set<string>();
  let mostFree = 0;
  for (const h of hosts) {
    if (h.name === host || h.maintenance) continue;
    const rule = rules.whyNot(vm.name, h.name, 'evacuate');
    if (rule) said.add(rule.split(':')[0]!);
    const free = h.memMiB - (used.get(h.name) ?? 0);
    if (!rule) mostFree = Math.max(mostFree, free);
  }
  if (said.has('anti-affinity') && mostFree < vm.memMiB)
    return `anti-affinity: group ${vm.antiAffinity} already runs on every other host with room`;
  return `no room: needs ${vm.memMiB} MiB, at most ${mostFree} MiB free on a host it may go to`;
}

/** The drain's moves and blockers, and the site it would make: `host` in maintenance, its VMs elsewhere. */
export async function planDrain(rt: ServiceRuntime, site: Site, host: string) {
  const { hosts, vms, blockers, cold } = await drainSnapshot(rt, site, host);
  const result = balance(hosts, vms, { mode: 'performance' });
  const drained = result.moves.filter((m) => m.from === host);
  const after = vms.map((v) => ({ ...v, host: drained.find((m) => m.vm === v.name)?.to ?? v.host }));
  for (const name of result.stuck) {
    const v = after.find((x) => x.name === name)!;
    if (v.host === host && !blockers.some((b) => b.vm === name))
      blockers.push({ vm: name, why: whyStuck(hosts, after, v, host) });
  }
  const byName = new Map(site.vms.map((v) => [v.name, v]));
  const moves: HostMove[] = drained.map((m) => ({
    vm: m.vm,
    from: host,
    to: m.to,
    memMiB: m.memMiB,
    live: canMoveLive(site, byName.get(m.vm)!, host, m.to),
  }));
  const to = new Map(moves.map((m) => [m.vm, m.to]));
  const observed = await rt.observed.all();
  const managed = new Set(site.vms.map((v) => v.name));
  const next: Site = {
    ...site,
    hosts: site.hosts.map((h) => {
      // Once one host is declared, a site file must declare them all.
      const d = site.hosts.find((x) => x.name === host)!.implied ? declared(h, observed, managed) : h;
      return h.name === host ? { ...d, maintenance: true } : d;
    }),
    vms: site.vms.map((v) => (to.has(v.name) ? { ...v, host: to.get(v.name)! } : v)),
  };
  const placed = new Set(moves.map((m) => m.vm));
  return {
    moves,
    blockers: blockers.sort((a, b) => a.vm.localeCompare(b.vm)),
    cold: cold.filter((c) => placed.has(c.vm)),
    next,
  };
}

/**
 * A host only a paper-format `<DOM0>` implies is written back only while a VM names it, so an empty one in
 * maintenance would vanish from the next version (and its flag with it): declare it (and so every host),
 * with the capacity its agent reports.
 */
function declared(h: HostSpec, observed: ObservedState, managed: ReadonlySet<string>): HostSpec {
  if (!h.implied) return h;
  const cap = capacityOf(h, observed, (vm) => managed.has(vm));
  return { ...h, implied: false, cpus: Math.max(1, cap?.cpus ?? 1), memoryMiB: Math.max(64, cap?.memMiB ?? 64) };
}

const moveList = (moves: readonly HostMove[]) =>
  moves.length ? moves.map((m) => `${m.vm} ${m.from}->${m.to}${m.live ? '' : ' (cold)'}`).join(', ') : 'no VMs';

/** Shows (dryRun) or submits a host change; records the moves in the migration history. */
async function submitChange(
  rt: ServiceRuntime,
  req: HostChangeRequest,
  base: number,
  site: Site,
  next: Site,
  c: { reason: string; moves: HostMove[]; blockers: Blocker[]; cold: Blocker[]; recordReason: string },
): Promise<HostChangeOutcome> {
  const out = { host: req.host, base, reason: c.reason, moves: c.moves, blockers: c.blockers, cold: c.cold };
  const xml = serializeSite(next);
  const file = `${c.recordReason} (v${base})`;
  if (req.dryRun) {
    if (req.authorize) req.authorize(site, next);
    const { plan } = await previewPlan(rt, xml, file);
    return { ...out, preview: plan, disruptive: disruptiveActions(plan) };
  }
  const result = await submitSite(rt, {
    xml,
    file,
    base,
    author: req.author,
    reason: req.reason ? `${c.reason}; ${req.reason}` : c.reason,
    consent: req.consent,
    apply: true,
    ...(req.authorize ? { authorize: req.authorize } : {}),
  });
  if (!result.unchanged)
    for (const m of c.moves)
      await rt.migrations.record({
        vm: m.vm,
        version: result.version,
        from: m.from,
        to: m.to,
        source: 'drain',
        reason: c.recordReason,
      });
  return { ...out, result };
}

/**
 * Puts `host` in maintenance and moves its VMs off, as one new site version. Refused (422, nothing stored)
 * when any VM on it cannot move; a VM that can move only cold needs consent (the submit refuses it
 * otherwise, 409). A dry run answers the same pre-check and plan without refusing.
 */
export async function drainHost(rt: ServiceRuntime, req: HostChangeRequest): Promise<HostChangeOutcome> {
  const { version, site } = await currentSite(rt);
  if (!site) throw new NoSiteError();
  hostOrThrow(site, req.host);
  const { moves, blockers, cold, next } = await planDrain(rt, site, req.host);
  const reason = `drain ${req.host}: ${moveList(moves)}`;
  if (blockers.length && !req.dryRun)
    throw new EditError(
      `cannot drain ${req.host}: ${blockers.map((b) => `${b.vm}: ${b.why}`).join('; ')}; nothing was stored`,
      422,
    );
  return submitChange(rt, req, version, site, next, {
    reason,
    moves,
    blockers,
    cold,
    recordReason: drainReason(req.host),
  });
}

/**
 * The VMs that left `host` in its last drain and still run where the drain put them: the records of the
 * newest `xsm host drain` of it and later (the rebalancer's drains of it while in maintenance included).
 */
async function leftInDrain(rt: ServiceRuntime, host: string) {
  const all = await rt.migrations.list(10_000);
  const drains = all.filter((r) => r.source === 'drain' && r.from === host && r.to !== undefined);
  const start = drains.find((r) => r.reason === drainReason(host))?.version ?? 0;
  const latest = new Map<string, number>();
  for (const r of all) latest.set(r.vm, Math.max(latest.get(r.vm) ?? 0, r.version));
  const out = new Map<string, { to: string; version: number }>();
  for (const r of drains) if (r.version >= start && !out.has(r.vm)) out.set(r.vm, { to: r.to!, version: r.version });
  return { out, latest };
}

/** What a return moves back, and the VMs that stay (moved since, pinned, no room, a rule says no). */
export async function planReturn(rt: ServiceRuntime, site: Site, host: string) {
  const { out, latest } = await leftInDrain(rt, host);
  const observed = await rt.observed.all();
  const managed = new Set(site.vms.map((v) => v.name));
  const spec = site.hosts.find((h) => h.name === host)!;
  const cap = capacityOf({ ...spec, maintenance: false }, observed, (vm) => managed.has(vm));
  const rules = new PlacementRules(
    site.hosts.map((h) => ({ name: h.name, maintenance: h.name === host ? false : h.maintenance })),
    site.vms.map((v) => ({
      name: v.name,
      host: v.host,
      ...(v.placement.antiAffinity ? { antiAffinity: v.placement.antiAffinity } : {}),
      ...(v.placement.excludeHosts ? { excludeHosts: v.placement.excludeHosts } : {}),
    })),
  );
  let used = site.vms.filter((v) => v.host === host).reduce((s, v) => s + v.memMiB, 0);
  const moves: HostMove[] = [];
  const blockers: Blocker[] = [];
  for (const [name, r] of [...out].sort((a, b) => a[0].localeCompare(b[0]))) {
    const vm = site.vms.find((v) => v.name === name);
    const stay = (why: string) => blockers.push({ vm: name, why });
    if (!vm) stay('no longer in the site');
    else if (vm.host === host) continue;
    else if (vm.host !== r.to || (latest.get(name) ?? 0) > r.version) stay(`moved since the drain (now on ${vm.host})`);
    else if (vm.placement.pinned) stay(`pinned to ${vm.host}`);
    else if (cap && (used + vm.memMiB > cap.memMiB || vm.vcpus > cap.cpus))
      stay(`no room: ${host} has ${Math.max(0, cap.memMiB - used)} MiB free, ${name} needs ${vm.memMiB} MiB`);
    else {
      const rule = rules.whyNot(name, host, 'evacuate');
      if (rule) stay(rule);
      else {
        rules.moved(name, host);
        used += vm.memMiB;
        moves.push({
          vm: name,
          from: vm.host,
          to: host,
          memMiB: vm.memMiB,
          live: canMoveLive(site, vm, vm.host, host),
        });
      }
    }
  }
  return { moves, blockers };
}

/**
 * Takes `host` out of maintenance; with `returnVms`, also brings back the VMs that left in its drain (those
 * that cannot come back stay where they are, listed in `blockers`). One new site version.
 */
export async function undrainHost(rt: ServiceRuntime, req: HostChangeRequest): Promise<HostChangeOutcome> {
  const { version, site } = await currentSite(rt);
  if (!site) throw new NoSiteError();
  hostOrThrow(site, req.host);
  const { moves, blockers } = req.returnVms ? await planReturn(rt, site, req.host) : { moves: [], blockers: [] };
  const to = new Map(moves.map((m) => [m.vm, m.to]));
  const next: Site = {
    ...site,
    hosts: site.hosts.map((h) => (h.name === req.host ? { ...h, maintenance: false } : h)),
    vms: site.vms.map((v) => (to.has(v.name) ? { ...v, host: to.get(v.name)! } : v)),
  };
  const reason = `undrain ${req.host}${req.returnVms ? `: returns ${moveList(moves)}` : ''}`;
  return submitChange(rt, req, version, site, next, {
    reason,
    moves,
    blockers,
    cold: moves
      .filter((m) => !m.live)
      .map((m) => ({ vm: m.vm, why: `disk not on shared storage: a cold move back needs consent (--yes)` })),
    recordReason: `return to ${req.host} after its drain`,
  });
}
