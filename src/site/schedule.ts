// When each action of a plan runs. Waves keep memory on every host within capacity at every moment:
// what frees memory goes first, what needs it waits for room. Dependencies record which earlier actions
// each one really needs (the previous action on its VM, and the frees it cannot fit without), so that a
// failure stops only the actions that rely on it; everything else in later waves still runs.

import type { Action, MigrateAction, ViaMove } from './actions.ts';
import { shortfall, whyNotFits, type HostCapacity } from './capacity.ts';
import { PlanError, type Pending, type Present } from './plan-types.ts';

export interface ScheduleEnv {
  /** Room per host; undefined where nobody knows it (not checked). */
  capacity(host: string): HostCapacity | undefined;
  /** Hosts that may take a VM parked on its way (not in maintenance). */
  parkingHosts: readonly string[];
  present: ReadonlyMap<string, Present>;
}

const KIND_ORDER: Record<Action['kind'], number> = { remove: 0, reconfigure: 1, migrate: 2, create: 3 };

/** Memory a finished action gave back on a host, which actions in later waves may count on. */
interface Freed {
  id: string;
  mib: number;
}

/** Memory in use per host as the plan unfolds, and what the placed actions freed and were. */
class Ledger {
  readonly used = new Map<string, number>();
  readonly freed = new Map<string, Freed[]>();
  readonly lastOnVm = new Map<string, string>();
  readonly placed: Action[] = [];
  private readonly byId = new Map<string, Action>();

  constructor(readonly env: ScheduleEnv) {
    for (const p of env.present.values()) this.add(p.host, p.memMiB);
  }
  add(host: string, mib: number): void {
    this.used.set(host, (this.used.get(host) ?? 0) + mib);
  }
  why(p: Pending, used: ReadonlyMap<string, number> = this.used): string | undefined {
    if (!p.needHost) return undefined;
    return whyNotFits(
      this.env.capacity(p.needHost),
      { memMiB: used.get(p.needHost) ?? 0 },
      { name: p.label ?? p.action.vm, memMiB: p.needMiB, vcpus: p.vcpus },
    );
  }
  fits(p: Pending): boolean {
    return this.why(p) === undefined;
  }

  /** Puts `p` in `wave`: reserves its memory, records what it depends on and the room it assumes. */
  place(p: Pending, wave: number): void {
    const a = p.action;
    const deps = new Set<string>();
    const prev = this.lastOnVm.get(a.vm);
    if (prev) deps.add(prev);
    if (p.needHost) {
      const cap = this.env.capacity(p.needHost);
      const after = (this.used.get(p.needHost) ?? 0) + p.needMiB;
      if (cap && p.needMiB > 0) for (const id of this.neededFrees(p.needHost, cap.memMiB - after)) deps.add(id);
      this.used.set(p.needHost, after);
      a.preconditions.push({ kind: 'room', host: p.needHost, memMiB: p.needMiB, vcpus: p.vcpus });
    }
    a.wave = wave;
    a.dependsOn = this.withoutImplied([...deps]).sort();
    this.lastOnVm.set(a.vm, a.id);
    this.record(a);
  }

  record(a: Action): void {
    this.placed.push(a);
    this.byId.set(a.id, a);
  }

  /** Drops a dependency another dependency already has: it stops this action through that one anyway. */
  withoutImplied(deps: string[]): string[] {
    const of = (id: string) => this.byId.get(id)?.dependsOn ?? [];
    return deps.filter((d) => !deps.some((e) => e !== d && of(e).includes(d)));
  }

  /** After its wave: the memory `p` frees can be counted on by later waves. */
  release(p: Pending): void {
    if (!p.freeHost || p.freeMiB <= 0) return;
    this.add(p.freeHost, -p.freeMiB);
    this.freed.set(p.freeHost, [...(this.freed.get(p.freeHost) ?? []), { id: p.action.id, mib: p.freeMiB }]);
  }

  /**
   * The frees on `host` an action with `slack` MiB to spare cannot do without. If every free left out
   * failed, the action would still fit: the smallest are left out while their sum fits in the slack.
   */
  neededFrees(host: string, slack: number): string[] {
    const frees = [...(this.freed.get(host) ?? [])].sort((a, b) => a.mib - b.mib || a.id.localeCompare(b.id));
    let spare = slack;
    const needed: string[] = [];
    for (const f of frees) {
      if (f.mib <= spare) spare -= f.mib;
      else needed.push(f.id);
    }
    return needed;
  }
}

export function scheduleWaves(pending: Pending[], env: ScheduleEnv): { actions: Action[]; waves: number } {
  const ledger = new Ledger(env);
  const migratingVm = new Set(pending.filter((p) => p.action.kind === 'migrate').map((p) => p.action.vm));
  let queue = [...pending].sort(
    (a, b) => KIND_ORDER[a.action.kind] - KIND_ORDER[b.action.kind] || a.action.vm.localeCompare(b.action.vm),
  );
  let wave = 0;
  while (queue.length) {
    const placed: Pending[] = [];
    const later: Pending[] = [];
    const inWave = new Set<string>();
    for (const p of queue) {
      // A VM's reconfigure runs after its migration finished (it runs on the target host).
      const waitsForMove = p.action.kind === 'reconfigure' && migratingVm.has(p.action.vm);
      if (waitsForMove || inWave.has(p.action.vm) || !ledger.fits(p)) {
        later.push(p);
        continue;
      }
      ledger.place(p, wave);
      inWave.add(p.action.vm);
      placed.push(p);
    }
    // Looked up, not scanned: a wave can place thousands of migrations while thousands wait.
    const stillMigrating = new Set(later.filter((q) => q.action.kind === 'migrate').map((q) => q.action.vm));
    for (const p of placed) {
      ledger.release(p);
      if (p.action.kind === 'migrate' && !stillMigrating.has(p.action.vm)) migratingVm.delete(p.action.vm);
    }
    if (placed.length > 0) {
      queue = later;
      wave++;
      continue;
    }
    // Nothing fits: a cycle of migrations between full hosts. Break it with the first blocked move.
    const blocked = later.find((p) => p.movable);
    if (!blocked) throw cannotOrder(ledger, later[0]!);
    const parked = parkOnThirdHost(ledger, blocked, later);
    if (parked) {
      queue = parked;
      continue;
    }
    queue = coldMove(ledger, blocked, later, wave, migratingVm);
    wave++;
  }
  const actions = ledger.placed.sort(
    (a, b) =>
      a.wave - b.wave ||
      KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
      a.vm.localeCompare(b.vm) ||
      a.id.localeCompare(b.id),
  );
  return { actions, waves: actions.length ? actions[actions.length - 1]!.wave + 1 : 0 };
}

function cannotOrder(ledger: Ledger, p: Pending): PlanError {
  const cap = p.needHost ? ledger.env.capacity(p.needHost) : undefined;
  const reason = ledger.why(p);
  const why =
    reason && cap
      ? `${reason} (${shortfall(cap, { memMiB: ledger.used.get(cap.host) ?? 0 }, { memMiB: p.needMiB, vcpus: p.vcpus })} missing)`
      : `${p.action.id} never fits`;
  return new PlanError(
    `cannot order the plan: ${why}; free memory on ${p.needHost ?? 'that host'} or change less at once`,
  );
}

/** Two live moves through a host with room. Returns the new queue, or undefined when no host has room. */
function parkOnThirdHost(ledger: Ledger, blocked: Pending, later: Pending[]): Pending[] | undefined {
  const m = blocked.movable!;
  const park = [...ledger.env.parkingHosts]
    .filter((h) => h !== m.from && h !== m.to)
    .sort()
    .find(
      (h) =>
        whyNotFits(
          ledger.env.capacity(h),
          { memMiB: ledger.used.get(h) ?? 0 },
          { name: m.vm.name, memMiB: m.memMiB, vcpus: m.vcpus },
        ) === undefined,
    );
  if (!park) return undefined;
  const common = { kind: 'migrate' as const, vm: m.vm.name, mode: 'live' as const, wave: 0, dependsOn: [] };
  const first: MigrateAction = {
    ...common,
    id: `migrate:${m.vm.name}:park`,
    preconditions: [],
    from: m.from,
    to: park,
    spec: { ...m.vm, host: park },
    reason: `break a cycle of moves between full hosts: park ${m.vm.name} on ${park} (room free there) on its way from ${m.from} to ${m.to}`,
  };
  const second: MigrateAction = {
    ...common,
    id: `migrate:${m.vm.name}`,
    preconditions: [],
    from: park,
    to: m.to,
    spec: m.vm,
    reason: `finish the parked move of ${m.vm.name}: ${park} -> ${m.to} (DOM0 changed from ${m.from})`,
  };
  const size = { needMiB: m.memMiB, vcpus: m.vcpus, freeMiB: m.memMiB };
  return [
    { action: first, needHost: park, freeHost: m.from, ...size },
    { action: second, needHost: m.to, freeHost: park, ...size },
    ...later.filter((p) => p !== blocked),
  ];
}

/**
 * No host has room to park: stop the blocked VM, make the live moves its stop makes possible until its
 * target has room, then start it there; all as ONE action, so it can be undone as a whole (the moves
 * back, the VM started again where it was). It gets a wave of its own. Returns the rest of the queue.
 */
function coldMove(
  ledger: Ledger,
  blocked: Pending,
  later: Pending[],
  wave: number,
  migratingVm: Set<string>,
): Pending[] {
  const m = blocked.movable!;
  const name = m.vm.name;
  const sim = new Map(ledger.used);
  const shift = (h: string, d: number) => sim.set(h, (sim.get(h) ?? 0) + d);
  const fitsIn = (host: string, vm: string, memMiB: number, vcpus: number) =>
    whyNotFits(ledger.env.capacity(host), { memMiB: sim.get(host) ?? 0 }, { name: vm, memMiB, vcpus }) === undefined;
  shift(m.from, -m.memMiB);
  const via: Pending[] = [];
  let lastFreed = m.from;
  while (!fitsIn(m.to, name, m.memMiB, m.vcpus)) {
    const candidates = later.filter(
      (p) => p !== blocked && p.movable && !via.includes(p) && fitsIn(p.needHost!, p.action.vm, p.needMiB, p.vcpus),
    );
    const next = candidates.find((p) => p.needHost === lastFreed) ?? candidates[0];
    if (!next)
      throw new PlanError(
        `cannot order the plan: ${name} cannot move from ${m.from} to ${m.to} live (no host has room to park it) nor cold (stopping it does not make room on ${m.to}); free memory on ${m.to} or move fewer VMs at once`,
      );
    shift(next.needHost!, next.needMiB);
    shift(next.freeHost!, -next.freeMiB);
    lastFreed = next.freeHost!;
    via.push(next);
  }
  shift(m.to, m.memMiB);
  const moves: ViaMove[] = via.map((p) => ({
    vm: p.action.vm,
    spec: p.movable!.vm,
    from: p.movable!.from,
    to: p.movable!.to,
    memMiB: p.movable!.memMiB,
    vcpus: p.movable!.vcpus,
  }));
  const during = moves.length ? `, move ${moves.map((v) => `${v.vm} ${v.from} -> ${v.to}`).join(', ')} live` : '';
  const action: MigrateAction = {
    kind: 'migrate',
    id: blocked.action.id,
    vm: name,
    wave,
    dependsOn: [],
    preconditions: [],
    from: m.from,
    to: m.to,
    spec: { ...m.vm, memMiB: m.memMiB, vcpus: m.vcpus },
    mode: 'cold',
    via: moves,
    previous: m.previous,
    disruptive: true,
    disruption: `${name} is stopped on ${m.from} and started on ${m.to}${moves.length ? ` once ${moves.map((v) => v.vm).join(', ')} moved` : ''}`,
    reason: `cold move (DOWNTIME): no host has room to park a VM in this cycle of moves between full hosts; stop ${name} on ${m.from}${during}, then start ${name} on ${m.to} (back on ${m.from} if that fails)`,
  };
  placeCold(ledger, action, sim, [name, ...moves.map((v) => v.vm)], [m.to, ...moves.map((v) => v.to)]);
  for (const vm of [name, ...moves.map((v) => v.vm)]) migratingVm.delete(vm);
  return later.filter((p) => p !== blocked && !via.includes(p));
}

function placeCold(ledger: Ledger, action: MigrateAction, sim: Map<string, number>, vms: string[], needs: string[]) {
  const deps = new Set<string>();
  for (const vm of vms) {
    const prev = ledger.lastOnVm.get(vm);
    if (prev) deps.add(prev);
    ledger.lastOnVm.set(vm, action.id);
  }
  // Rare enough not to be precise: it relies on every earlier free on the hosts it needs room on.
  for (const h of needs) for (const f of ledger.freed.get(h) ?? []) deps.add(f.id);
  for (const [h, after] of sim) {
    const before = ledger.used.get(h) ?? 0;
    if (after < before) ledger.freed.set(h, [...(ledger.freed.get(h) ?? []), { id: action.id, mib: before - after }]);
    ledger.used.set(h, after);
  }
  action.dependsOn = ledger.withoutImplied([...deps]).sort();
  ledger.record(action);
}
