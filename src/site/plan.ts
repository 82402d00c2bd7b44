// The plan engine: current desired state (+ what is observed running) and a new desired state in, an
// ordered, deterministic list of actions out. This file decides WHAT must happen (from where each VM
// really is to where the file wants it); src/site/schedule.ts decides WHEN (waves that keep every host
// within capacity, and the dependencies that decide what a failure stops); src/site/preconditions.ts
// records what each action assumes, so a plan that went stale stops instead of doing the wrong thing.

import type { CreateAction, MigrateAction, Plan, PreviousVm, ReconfigureAction, RemoveAction } from './actions.ts';
import { capacityOf, type HostCapacity } from './capacity.ts';
import { checkConfigFiles } from './config-files.ts';
import type { HostSpec, Site, TemplateSpec, VmSpec } from './model.ts';
import type { ObservedState } from './observed.ts';
import { PlanError, type Pending, type Present } from './plan-types.ts';
import { addVmPreconditions } from './preconditions.ts';
import { scheduleWaves } from './schedule.ts';
import { heldSize } from './domain.ts';
import { unreachableFrom } from './storage.ts';
import { checkDiskSpace, coldDiskMove, disksReason, disksToMake, removalDisks } from './plan-storage.ts';

export { PlanError };

/** Lookups shared by the steps of one planning run. */
interface PlanInput {
  current: Site | undefined;
  desired: Site;
  observed: ObservedState | undefined;
  desiredVms: Map<string, VmSpec>;
  currentVms: Map<string, VmSpec>;
  desiredTemplates: Map<string, TemplateSpec>;
  currentTemplates: Map<string, TemplateSpec>;
  hosts: Map<string, HostSpec>;
  notes: string[];
  /** Whether a template's content differs between the versions, by name: compared once, not once per VM. */
  templateEdited: Map<string, boolean>;
  options: PlanOptions;
}

/** What a request adds to the site file it plans. */
export interface PlanOptions {
  /** VMs whose removal also deletes their pooled disks (else the disks are kept and the plan says where). */
  deleteDisks?: ReadonlySet<string>;
}

/** Indexes by name into `into` (a new map by default): no [name, x] pair per entry, for 100,000 VMs. */
function byName<T extends { name: string }>(list: readonly T[], into = new Map<string, T>()): Map<string, T> {
  for (const x of list) into.set(x.name, x);
  return into;
}

function maxMemFor(template: TemplateSpec | undefined, memMiB: number): number {
  return Math.max(template?.maxMemMiB ?? memMiB, memMiB);
}
function maxVcpusFor(template: TemplateSpec | undefined, vcpus: number): number {
  return Math.max(template?.maxVcpus ?? vcpus, vcpus);
}

/** A copy without source positions: plans are compared and hashed, and where a line was is not content. */
export function withoutPos<T extends object>(x: T): T {
  const { pos: _pos, ...rest } = x as T & { pos?: unknown };
  return rest as T;
}

export function planChanges(
  current: Site | undefined,
  desired: Site,
  observed?: ObservedState,
  options: PlanOptions = {},
): Plan {
  const input: PlanInput = {
    current,
    desired,
    observed,
    desiredVms: byName(desired.vms),
    currentVms: byName(current?.vms ?? []),
    desiredTemplates: byName(desired.templates),
    currentTemplates: byName(current?.templates ?? []),
    hosts: byName(desired.hosts, byName(current?.hosts ?? [])),
    notes: [],
    options,
    templateEdited: new Map(),
  };
  const present = presentState(input);
  const pending = pendingActions(input, present);
  const capacities = hostCapacities(input, present, pending);
  const scheduled = scheduleWaves(pending, {
    capacity: (host) => capacities.get(host),
    parkingHosts: [...input.hosts.values()].filter((h) => !h.maintenance).map((h) => h.name),
    present,
  });
  addVmPreconditions(scheduled.actions, present);
  checkDiskSpace(desired, scheduled.actions, observed, input.notes);
  checkConfigFiles(scheduled.actions, {
    templates: input.desiredTemplates,
    vms: input.desiredVms,
    observed,
    notes: input.notes,
  });
  return { ...scheduled, notes: input.notes };
}

/** What is there now: the current version's placement, corrected by what agents observe. */
function presentState(input: PlanInput): Map<string, Present> {
  const present = new Map<string, Present>();
  for (const vm of input.current?.vms ?? []) {
    const t = input.currentTemplates.get(vm.config);
    present.set(vm.name, {
      host: vm.host,
      memMiB: vm.memMiB,
      vcpus: vm.vcpus,
      maxMemMiB: maxMemFor(t, vm.memMiB),
      maxVcpus: maxVcpusFor(t, vm.vcpus),
      config: vm.config,
      spec: vm,
    });
  }
  if (input.observed) correctByObserved(input, input.observed, present);
  return present;
}

function correctByObserved(input: PlanInput, observed: ObservedState, present: Map<string, Present>): void {
  const { notes } = input;
  const seen = new Set<string>();
  for (const host of Object.values(observed.hosts).sort((a, b) => a.name.localeCompare(b.name))) {
    for (const d of host.domains) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      const before = present.get(d.name);
      if (!before && !input.desiredVms.has(d.name)) {
        notes.push(
          `domain ${d.name} runs on ${host.name} but no site version knows it; XSM leaves it alone (remove it by hand or add it to the file)`,
        );
        continue;
      }
      if (before && before.host !== host.name)
        notes.push(
          `${d.name} was expected on ${before.host} but is observed on ${host.name}; planning from where it really is`,
        );
      // Ceilings the toolstack did not report are not the current size: keep those of the version
      // that created the VM (else a live reconfigure would be planned as a restart).
      const limitsFrom = d.limitsUnknown && before ? before : d;
      // The size Xen holds (its targets), not what the guest shows yet: a guest balloons and onlines
      // vCPUs at its own pace, and planning from that would redo a reconfigure already done.
      const held = heldSize(d);
      present.set(d.name, {
        host: host.name,
        memMiB: held.memMiB,
        vcpus: held.vcpus,
        maxMemMiB: Math.max(limitsFrom.maxMemMiB, held.memMiB),
        maxVcpus: Math.max(limitsFrom.maxVcpus, held.vcpus),
        ...(before?.config ? { config: before.config } : {}),
        ...(before?.spec ? { spec: before.spec } : {}),
      });
    }
  }
  // A VM the current version places but that is not observed anywhere is not running: create it again.
  for (const [name, p] of [...present]) {
    if (!seen.has(name) && observed.hosts[p.host]) {
      notes.push(`${name} should run on ${p.host} but is not observed there; it will be created`);
      present.delete(name);
    }
  }
}

/**
 * Room per host: declared, or for an implied host what its agent observes (free memory plus what the
 * VMs XSM plans from hold there). Unknown room is not checked, and the plan says so where it matters.
 */
function hostCapacities(
  input: PlanInput,
  present: Map<string, Present>,
  pending: Pending[],
): Map<string, HostCapacity | undefined> {
  const out = new Map<string, HostCapacity | undefined>();
  const managed = (vm: string) => present.get(vm) !== undefined;
  for (const h of input.hosts.values()) out.set(h.name, capacityOf(h, input.observed, managed));
  const unknown = [...new Set(pending.map((p) => p.needHost).filter((h): h is string => !!h && !out.get(h)))];
  if (unknown.length)
    input.notes.push(
      `capacity of ${unknown.sort().join(', ')} is unknown (not declared in <Hosts> and no agent report yet); the plan does not check it there`,
    );
  return out;
}

function previousOf(input: PlanInput, name: string, now: Present, want: VmSpec, host: string): PreviousVm {
  const config = now.config ?? want.config;
  const template = input.currentTemplates.get(config) ?? input.desiredTemplates.get(config);
  if (!template) throw new PlanError(`no template ${config} for ${name}; declare it in <Templates>`);
  return {
    spec: withoutPos({ ...(now.spec ?? want), host, memMiB: now.memMiB, vcpus: now.vcpus }),
    template: withoutPos(template),
  };
}

function pendingActions(input: PlanInput, present: Map<string, Present>): Pending[] {
  // Most VMs of a large site are unchanged: only the others are sorted and planned, in name order as ever.
  const names: string[] = [];
  for (const [name, now] of present) {
    const want = input.desiredVms.get(name);
    if (!want || want.host !== now.host || !unchanged(input, now, want)) names.push(name);
  }
  for (const name of input.desiredVms.keys()) if (!present.has(name)) names.push(name);
  const pending: Pending[] = [];
  for (const name of names.sort()) {
    const now = present.get(name);
    const want = input.desiredVms.get(name);
    if (now && !want) pending.push(removal(input, name, now));
    else if (!now && want) {
      const p = creation(input, name, want);
      if (p) pending.push(p);
    } else if (now && want) pending.push(...changes(input, name, now, want));
  }
  return pending;
}

function base(id: string, vm: string, reason: string) {
  return { id, vm, reason, wave: 0, dependsOn: [] as string[], preconditions: [] };
}

function removal(input: PlanInput, name: string, now: Present): Pending {
  const { disks } = removalDisks(input.current, now.spec ?? input.currentVms.get(name), now.host);
  const drop = Boolean(disks && input.options.deleteDisks?.has(name));
  const where = disks
    ?.map((d) => `${d.path} on ${d.pool.type === 'nfs' ? `NFS pool ${d.pool.name}` : now.host}`)
    .join(', ');
  const a: RemoveAction = {
    kind: 'remove',
    ...base(`remove:${name}`, name, `${name} is no longer in the site file`),
    host: now.host,
    disruptive: true,
    disruption: `${name} is shut down and destroyed on ${now.host}${disks ? (drop ? `; its disks are DELETED (${where})` : `; its disks are kept: ${where}`) : ''}`,
    ...(disks ? { disks } : {}),
    ...(drop ? { deleteDisks: true as const } : {}),
  };
  return { action: a, needMiB: 0, vcpus: 0, freeHost: now.host, freeMiB: now.memMiB };
}

function creation(input: PlanInput, name: string, want: VmSpec): Pending | undefined {
  const fencedAt = input.observed?.hosts[want.host]?.fencedAt;
  if (fencedAt) {
    // Its host was fenced by failover and found no other host with room (or the VM is pinned there):
    // it starts when the host's agent reports again, not before.
    input.notes.push(
      `${name} stays down: its host ${want.host} was fenced at ${new Date(fencedAt).toISOString()} and has not reported since`,
    );
    return undefined;
  }
  const was = input.currentVms.get(name);
  const disks = disksToMake(input.desired, want);
  // Created on another host than its old one, where its disks were only there: it starts from fresh disks.
  const fresh =
    was && was.host !== want.host && disks.disks ? unreachableFrom(input.desired, want, was.host, want.host) : [];
  if (fresh.length)
    input.notes.push(
      `${name} is created on ${want.host} with NEW disks made from its template's images: its disks on ${was!.host} are out of reach (${fresh.join('; ')})`,
    );
  // A VM whose host failover fenced lost its running state: starting it elsewhere is a restart.
  const lostWith = was && was.host !== want.host && input.observed?.hosts[was.host]?.fencedAt ? was.host : undefined;
  const a: CreateAction = {
    kind: 'create',
    ...base(
      `create:${name}`,
      name,
      lostWith
        ? `${name} ran on ${lostWith}, which was fenced; start it on ${want.host}`
        : was
          ? `${name} is not running; create it on ${want.host}${disksReason(disks.disks)}`
          : `${name} is new in the site file${disksReason(disks.disks)}`,
    ),
    host: want.host,
    spec: want,
    ...disks,
    ...(lostWith
      ? {
          disruptive: true as const,
          disruption: `${name} is restarted on ${want.host} (its host ${lostWith} was fenced; its memory state is lost)`,
        }
      : {}),
  };
  return { action: a, needHost: want.host, needMiB: want.memMiB, vcpus: want.vcpus, freeMiB: 0 };
}

function changes(input: PlanInput, name: string, now: Present, want: VmSpec): Pending[] {
  const out: Pending[] = [];
  let at = now.host;
  const cold =
    want.host !== now.host
      ? coldDiskMove(input.desired, name, now, want, previousOf(input, name, now, want, now.host))
      : undefined;
  if (cold) {
    out.push(cold);
    at = want.host;
  } else if (want.host !== now.host) {
    const a: MigrateAction = {
      kind: 'migrate',
      ...base(`migrate:${name}`, name, `DOM0 of ${name} changed from ${now.host} to ${want.host}`),
      from: now.host,
      to: want.host,
      spec: want,
      mode: 'live',
    };
    out.push({
      action: a,
      needHost: want.host,
      needMiB: now.memMiB,
      vcpus: now.vcpus,
      freeHost: now.host,
      freeMiB: now.memMiB,
      movable: {
        vm: want,
        from: now.host,
        to: want.host,
        memMiB: now.memMiB,
        vcpus: now.vcpus,
        previous: previousOf(input, name, now, want, now.host),
      },
    });
    at = want.host;
  }
  const r = reconfiguration(input, name, now, want, at);
  if (r) out.push(r);
  return out;
}

/** Whether a VM keeps its size and template (and so needs no reconfigure where it runs). */
function unchanged(input: PlanInput, now: Present, want: VmSpec): boolean {
  return (
    want.memMiB === now.memMiB &&
    want.vcpus === now.vcpus &&
    !(now.config !== undefined && now.config !== want.config) &&
    !(now.spec !== undefined && wasEdited(input, want.config))
  );
}

function reconfiguration(input: PlanInput, name: string, now: Present, want: VmSpec, at: string): Pending | undefined {
  if (unchanged(input, now, want)) return undefined;
  const templateChanged = now.config !== undefined && now.config !== want.config;
  const templateEdited = !templateChanged && now.spec !== undefined && wasEdited(input, want.config);
  const memChanged = want.memMiB !== now.memMiB;
  const cpuChanged = want.vcpus !== now.vcpus;
  const live = !templateChanged && !templateEdited && want.memMiB <= now.maxMemMiB && want.vcpus <= now.maxVcpus;
  const what: string[] = [];
  if (memChanged) what.push(`memory ${now.memMiB} -> ${want.memMiB} MiB`);
  if (cpuChanged) what.push(`vCPUs ${now.vcpus} -> ${want.vcpus}`);
  if (templateChanged) what.push(`template ${now.config} -> ${want.config}`);
  if (templateEdited) what.push(`template ${want.config} was edited`);
  const why = live
    ? 'live (within maxmem/maxvcpus)'
    : templateChanged || templateEdited
      ? 'restart (a template change needs a new domain config)'
      : `restart (exceeds the running domain's maxmem ${now.maxMemMiB} MiB / maxvcpus ${now.maxVcpus})`;
  const a: ReconfigureAction = {
    kind: 'reconfigure',
    ...base(`reconfigure:${name}`, name, `${what.join(', ')}; ${why}`),
    host: at,
    spec: want,
    mode: live ? 'live' : 'restart',
    ...(memChanged ? { memMiB: { from: now.memMiB, to: want.memMiB } } : {}),
    ...(cpuChanged ? { vcpus: { from: now.vcpus, to: want.vcpus } } : {}),
    ...(live
      ? {}
      : {
          disruptive: true as const,
          disruption: `${name} is shut down on ${at} and started again with ${want.memMiB} MiB, ${want.vcpus} vCPUs`,
          previous: previousOf(input, name, now, want, at),
        }),
  };
  const delta = want.memMiB - now.memMiB;
  return {
    action: a,
    ...(delta > 0 ? { label: `${name} to grow from ${now.memMiB} to ${want.memMiB} MiB` } : {}),
    needHost: at,
    needMiB: Math.max(0, delta),
    vcpus: want.vcpus,
    ...(delta < 0 ? { freeHost: at } : {}),
    freeMiB: Math.max(0, -delta),
  };
}

function wasEdited(input: PlanInput, config: string): boolean {
  let edited = input.templateEdited.get(config);
  if (edited === undefined) {
    edited =
      JSON.stringify(stripTemplate(input.currentTemplates.get(config))) !==
      JSON.stringify(stripTemplate(input.desiredTemplates.get(config)));
    input.templateEdited.set(config, edited);
  }
  return edited;
}

function stripTemplate(t: TemplateSpec | undefined): unknown {
  if (!t) return undefined;
  const { pos: _pos, implied: _implied, ...rest } = t;
  return rest;
}
