// The plan engine: current desired state (+ what is observed running) and a new desired state in, an
// ordered, deterministic list of actions out. Actions are grouped in waves so that memory on every host
// stays within capacity at every moment: what frees memory goes first, what needs it waits for room.

import type { Action, CreateAction, MigrateAction, Plan, ReconfigureAction, RemoveAction } from './actions.ts';
import { whyNotFits } from './capacity.ts';
import type { HostSpec, Site, TemplateSpec, VmSpec } from './model.ts';
import type { ObservedState } from './observed.ts';
import { heldSize } from '../drivers/hypervisor/hypervisor.ts';

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/** Where a VM is and how big it is before the plan runs. */
interface Present {
  host: string;
  memMiB: number;
  vcpus: number;
  maxMemMiB: number;
  maxVcpus: number;
  config?: string;
  spec?: VmSpec;
}

/** An action still to place in a wave, with what it frees and needs. */
interface Pending {
  action: Action;
  /** Memory this action needs on `needHost` before it can start (0 for pure frees). */
  needHost?: string;
  needMiB: number;
  vcpus: number;
  /** Memory released on `freeHost` once the action is done. */
  freeHost?: string;
  freeMiB: number;
  /** For migrations: may this action be rerouted through a parking host when a cycle blocks it. */
  movable?: { vm: VmSpec; from: string; to: string; memMiB: number };
}

const KIND_ORDER: Record<Action['kind'], number> = { remove: 0, reconfigure: 1, migrate: 2, create: 3 };

function byName<T extends { name: string }>(list: readonly T[]): Map<string, T> {
  return new Map(list.map((x) => [x.name, x]));
}

function maxMemFor(template: TemplateSpec | undefined, memMiB: number): number {
  return Math.max(template?.maxMemMiB ?? memMiB, memMiB);
}
function maxVcpusFor(template: TemplateSpec | undefined, vcpus: number): number {
  return Math.max(template?.maxVcpus ?? vcpus, vcpus);
}

export function planChanges(current: Site | undefined, desired: Site, observed?: ObservedState): Plan {
  const notes: string[] = [];
  const desiredVms = byName(desired.vms);
  const desiredTemplates = byName(desired.templates);
  const currentTemplates = byName(current?.templates ?? []);
  const hosts = new Map<string, HostSpec>([...byName(current?.hosts ?? []), ...byName(desired.hosts)]);

  // What is there now: the current version's placement, corrected by what agents observe.
  const present = new Map<string, Present>();
  for (const vm of current?.vms ?? []) {
    const t = currentTemplates.get(vm.config);
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
  if (observed) {
    const seen = new Set<string>();
    for (const host of Object.values(observed.hosts).sort((a, b) => a.name.localeCompare(b.name))) {
      for (const d of host.domains) {
        if (seen.has(d.name)) continue;
        seen.add(d.name);
        const before = present.get(d.name);
        if (!before && !desiredVms.has(d.name)) {
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

  const pending: Pending[] = [];
  const names = [...new Set([...present.keys(), ...desiredVms.keys()])].sort();
  for (const name of names) {
    const now = present.get(name);
    const want = desiredVms.get(name);
    if (now && !want) {
      const a: RemoveAction = {
        kind: 'remove',
        id: `remove:${name}`,
        vm: name,
        host: now.host,
        wave: 0,
        reason: `${name} is no longer in the site file`,
      };
      pending.push({ action: a, needMiB: 0, vcpus: 0, freeHost: now.host, freeMiB: now.memMiB });
      continue;
    }
    if (!want) continue;
    if (!now) {
      const fencedAt = observed?.hosts[want.host]?.fencedAt;
      if (fencedAt) {
        // Its host was fenced by failover and found no other host with room (or the VM is pinned there):
        // it starts when the host's agent reports again, not before.
        notes.push(
          `${name} stays down: its host ${want.host} was fenced at ${new Date(fencedAt).toISOString()} and has not reported since`,
        );
        continue;
      }
      const a: CreateAction = {
        kind: 'create',
        id: `create:${name}`,
        vm: name,
        host: want.host,
        spec: want,
        wave: 0,
        reason: current?.vms.some((v) => v.name === name)
          ? `${name} is not running; create it on ${want.host}`
          : `${name} is new in the site file`,
      };
      pending.push({ action: a, needHost: want.host, needMiB: want.memMiB, vcpus: want.vcpus, freeMiB: 0 });
      continue;
    }
    let at = now.host;
    let size = now.memMiB;
    if (want.host !== now.host) {
      const a: MigrateAction = {
        kind: 'migrate',
        id: `migrate:${name}`,
        vm: name,
        from: now.host,
        to: want.host,
        spec: want,
        mode: 'live',
        wave: 0,
        reason: `DOM0 of ${name} changed from ${now.host} to ${want.host}`,
      };
      pending.push({
        action: a,
        needHost: want.host,
        needMiB: now.memMiB,
        vcpus: now.vcpus,
        freeHost: now.host,
        freeMiB: now.memMiB,
        movable: { vm: want, from: now.host, to: want.host, memMiB: now.memMiB },
      });
      at = want.host;
    }
    const templateChanged = now.config !== undefined && now.config !== want.config;
    const templateEdited =
      !templateChanged &&
      now.spec &&
      JSON.stringify(stripPos(currentTemplates.get(want.config))) !==
        JSON.stringify(stripPos(desiredTemplates.get(want.config)));
    const memChanged = want.memMiB !== size;
    const cpuChanged = want.vcpus !== now.vcpus;
    if (memChanged || cpuChanged || templateChanged || templateEdited) {
      const live = !templateChanged && !templateEdited && want.memMiB <= now.maxMemMiB && want.vcpus <= now.maxVcpus;
      const what: string[] = [];
      if (memChanged) what.push(`memory ${size} -> ${want.memMiB} MiB`);
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
        id: `reconfigure:${name}`,
        vm: name,
        host: at,
        spec: want,
        mode: live ? 'live' : 'restart',
        wave: 0,
        reason: `${what.join(', ')}; ${why}`,
        ...(memChanged ? { memMiB: { from: size, to: want.memMiB } } : {}),
        ...(cpuChanged ? { vcpus: { from: now.vcpus, to: want.vcpus } } : {}),
      };
      const delta = want.memMiB - size;
      pending.push(
        delta > 0
          ? { action: a, needHost: at, needMiB: delta, vcpus: want.vcpus, freeMiB: 0 }
          : { action: a, needMiB: 0, vcpus: 0, freeHost: at, freeMiB: -delta },
      );
      size = want.memMiB;
    }
  }

  return { ...scheduleWaves(pending, hosts, present), notes };
}

function stripPos(t: TemplateSpec | undefined): unknown {
  if (!t) return undefined;
  const { pos: _pos, implied: _implied, ...rest } = t;
  return rest;
}

/**
 * Places actions in waves. Memory in use per host starts from what is present; a wave first takes every
 * action whose needs fit (reserving the target memory at once, releasing the source only after the wave,
 * since a live migration holds memory on both ends while it runs). Frees always fit. A reconfigure that
 * follows a migration of the same VM waits for it.
 */
function scheduleWaves(
  pending: Pending[],
  hosts: Map<string, HostSpec>,
  present: Map<string, Present>,
): { actions: Action[]; waves: number } {
  const used = new Map<string, number>();
  for (const p of present.values()) used.set(p.host, (used.get(p.host) ?? 0) + p.memMiB);
  const done: Action[] = [];
  const migratingVm = new Set(pending.filter((p) => p.action.kind === 'migrate').map((p) => p.action.vm));
  let queue = [...pending].sort(
    (a, b) => KIND_ORDER[a.action.kind] - KIND_ORDER[b.action.kind] || a.action.vm.localeCompare(b.action.vm),
  );
  let wave = 0;
  const fits = (p: Pending): boolean => {
    if (!p.needHost || p.needMiB <= 0) return true;
    const host = hosts.get(p.needHost);
    if (!host) return true;
    return (
      whyNotFits(
        host,
        { memMiB: used.get(p.needHost) ?? 0, vcpus: 0, vms: 0 },
        { name: p.action.vm, memMiB: p.needMiB, vcpus: p.vcpus },
      ) === undefined
    );
  };

  while (queue.length) {
    const releases: Pending[] = [];
    const later: Pending[] = [];
    const inWave = new Set<string>();
    for (const p of queue) {
      // A VM's reconfigure runs after its migration finished (it runs on the target host).
      if (p.action.kind === 'reconfigure' && migratingVm.has(p.action.vm)) {
        later.push(p);
        continue;
      }
      if (inWave.has(p.action.vm) || !fits(p)) {
        later.push(p);
        continue;
      }
      if (p.needHost && p.needMiB > 0) used.set(p.needHost, (used.get(p.needHost) ?? 0) + p.needMiB);
      p.action.wave = wave;
      done.push(p.action);
      inWave.add(p.action.vm);
      releases.push(p);
    }
    for (const p of releases) {
      if (p.freeHost && p.freeMiB > 0) used.set(p.freeHost, (used.get(p.freeHost) ?? 0) - p.freeMiB);
      if (p.action.kind === 'migrate' && !later.some((q) => q.action.kind === 'migrate' && q.action.vm === p.action.vm))
        migratingVm.delete(p.action.vm);
    }
    if (releases.length === 0) {
      // Nothing fits: a cycle of migrations between full hosts. Break it with the first blocked move.
      const blocked = later.find((p) => p.movable);
      if (!blocked || !blocked.movable) {
        const p = later[0]!;
        const host = p.needHost ? hosts.get(p.needHost) : undefined;
        const why = host
          ? whyNotFits(
              host,
              { memMiB: used.get(host.name) ?? 0, vcpus: 0, vms: 0 },
              { name: p.action.vm, memMiB: p.needMiB, vcpus: p.vcpus },
            )
          : undefined;
        throw new PlanError(
          `cannot order the plan: ${why ?? `${p.action.id} never fits`}; free memory on ${p.needHost ?? 'that host'} or move fewer VMs at once`,
        );
      }
      const m = blocked.movable;
      later.splice(later.indexOf(blocked), 1);
      const park = [...hosts.values()]
        .filter((h) => h.name !== m.from && h.name !== m.to && !h.maintenance)
        .sort((a, b) => a.name.localeCompare(b.name))
        .find(
          (h) =>
            whyNotFits(
              h,
              { memMiB: used.get(h.name) ?? 0, vcpus: 0, vms: 0 },
              { name: m.vm.name, memMiB: m.memMiB, vcpus: m.vm.vcpus },
            ) === undefined,
        );
      if (park) {
        const first: MigrateAction = {
          kind: 'migrate',
          id: `migrate:${m.vm.name}:park`,
          vm: m.vm.name,
          from: m.from,
          to: park.name,
          spec: { ...m.vm, host: park.name },
          mode: 'live',
          wave: 0,
          reason: `break a cycle of moves between full hosts: park ${m.vm.name} on ${park.name} (room free there) on its way from ${m.from} to ${m.to}`,
        };
        const second: MigrateAction = {
          kind: 'migrate',
          id: `migrate:${m.vm.name}`,
          vm: m.vm.name,
          from: park.name,
          to: m.to,
          spec: m.vm,
          mode: 'live',
          wave: 0,
          reason: `finish the parked move of ${m.vm.name}: ${park.name} -> ${m.to} (DOM0 changed from ${m.from})`,
        };
        later.unshift(
          {
            action: first,
            needHost: park.name,
            needMiB: m.memMiB,
            vcpus: m.vm.vcpus,
            freeHost: m.from,
            freeMiB: m.memMiB,
          },
          {
            action: second,
            needHost: m.to,
            needMiB: m.memMiB,
            vcpus: m.vm.vcpus,
            freeHost: park.name,
            freeMiB: m.memMiB,
          },
        );
        for (const p of later) if (p.action.kind === 'reconfigure' && p.action.vm === m.vm.name) p.action.host = m.to;
      } else {
        const stop: RemoveAction = {
          kind: 'remove',
          id: `remove:${m.vm.name}:cold`,
          vm: m.vm.name,
          host: m.from,
          wave: 0,
          reason: `cold move (DOWNTIME): no host has room to break a cycle of moves between full hosts; stop ${m.vm.name} on ${m.from}, then start it on ${m.to}`,
        };
        const start: CreateAction = {
          kind: 'create',
          id: `create:${m.vm.name}:cold`,
          vm: m.vm.name,
          host: m.to,
          spec: m.vm,
          wave: 0,
          reason: `cold move (DOWNTIME), second half: start ${m.vm.name} on ${m.to} once its room is free`,
        };
        later.unshift(
          { action: stop, needMiB: 0, vcpus: 0, freeHost: m.from, freeMiB: m.memMiB },
          { action: start, needHost: m.to, needMiB: m.memMiB, vcpus: m.vm.vcpus, freeMiB: 0 },
        );
      }
      migratingVm.delete(m.vm.name);
      if (later.some((p) => p.action.id.startsWith('migrate:') && p.action.vm === m.vm.name))
        migratingVm.add(m.vm.name);
      queue = later;
      continue;
    }
    queue = later;
    wave++;
  }
  const actions = done.sort(
    (a, b) =>
      a.wave - b.wave ||
      KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
      a.vm.localeCompare(b.vm) ||
      a.id.localeCompare(b.id),
  );
  return { actions, waves: actions.length ? actions[actions.length - 1]!.wave + 1 : 0 };
}
