// The capacity rule every part agrees on (validation, planning, the simulator's admission, the rebalancer,
// failover): the MEM of the VMs on a host adds up to at most its room for guests, and no VM has more vCPUs
// than the host has physical CPUs (Xen refuses that without --ignore-host). vCPUs may be overcommitted in
// total, as Xen allows. A declared host's room is its `memory`; an undeclared (implied) host's room is what
// its agent observes, so a paper-format site is checked too.

import { heldSize } from './domain.ts';
import type { HostSpec, VmSpec } from './model.ts';
import type { ObservedHost, ObservedState } from './observed.ts';

export interface HostLoad {
  memMiB: number;
  vcpus: number;
  vms: number;
}

/** What a host can give guests, and where that figure comes from (the operator's words or the agent's). */
export interface HostCapacity {
  host: string;
  memMiB: number;
  cpus: number;
  source: 'declared' | 'observed';
}

export function emptyLoad(): HostLoad {
  return { memMiB: 0, vcpus: 0, vms: 0 };
}

export function addVm(load: HostLoad, vm: Pick<VmSpec, 'memMiB' | 'vcpus'>, sign: 1 | -1 = 1): void {
  load.memMiB += sign * vm.memMiB;
  load.vcpus += sign * vm.vcpus;
  load.vms += sign;
}

/** Load per host name for a set of VMs. */
export function loadByHost(vms: readonly VmSpec[]): Map<string, HostLoad> {
  const loads = new Map<string, HostLoad>();
  for (const vm of vms) {
    let l = loads.get(vm.host);
    if (!l) loads.set(vm.host, (l = emptyLoad()));
    addVm(l, vm);
  }
  return loads;
}

/**
 * An undeclared host's room for guests as its agent reports it: free memory plus the memory the guests
 * XSM manages there hold (callers count those as load), and its CPUs. Domains XSM does not manage keep
 * their memory: it is neither free nor XSM's to count.
 */
export function observedCapacity(o: ObservedHost, managed: (vm: string) => boolean): HostCapacity {
  const held = o.domains.filter((d) => managed(d.name)).reduce((sum, d) => sum + heldSize(d).memMiB, 0);
  return { host: o.name, memMiB: o.freeMemMiB + held, cpus: o.nrCpus, source: 'observed' };
}

/** What the file says a host gives guests; undefined for an implied host (the file says nothing). */
export function declaredCapacity(host: HostSpec): HostCapacity | undefined {
  return host.implied ? undefined : { host: host.name, memMiB: host.memoryMiB, cpus: host.cpus, source: 'declared' };
}

/** A host's capacity: declared, or observed for an implied host; undefined when nobody knows it yet. */
export function capacityOf(
  host: HostSpec,
  observed: ObservedState | undefined,
  managed: (vm: string) => boolean,
): HostCapacity | undefined {
  if (!host.implied) return declaredCapacity(host);
  const o = observed?.hosts[host.name];
  return o ? observedCapacity(o, managed) : undefined;
}

/**
 * Why `vm` cannot be added to a host with capacity `cap` carrying `load`; undefined when it fits or `cap` is
 * unknown.
 */
export function whyNotFits(
  cap: HostCapacity | undefined,
  load: Pick<HostLoad, 'memMiB'>,
  vm: Pick<VmSpec, 'memMiB' | 'vcpus' | 'name'>,
): string | undefined {
  if (!cap) return undefined;
  const whose = cap.source === 'observed' ? ' (as its agent reports)' : '';
  if (vm.vcpus > cap.cpus)
    return `${vm.name} needs ${vm.vcpus} vCPUs but host ${cap.host} has ${cap.cpus} CPUs${whose}`;
  const free = cap.memMiB - load.memMiB;
  if (vm.memMiB > free)
    return `${vm.name} needs ${vm.memMiB} MiB but host ${cap.host} has ${Math.max(0, free)} MiB free of ${cap.memMiB}${whose}`;
  return undefined;
}

/** How much is missing for `vm` to fit (`300 MiB`, `2 vCPUs`), for messages that say what to change. */
export function shortfall(
  cap: HostCapacity,
  load: Pick<HostLoad, 'memMiB'>,
  vm: Pick<VmSpec, 'memMiB' | 'vcpus'>,
): string {
  if (vm.vcpus > cap.cpus) return `${vm.vcpus - cap.cpus} vCPUs`;
  return `${vm.memMiB - Math.max(0, cap.memMiB - load.memMiB)} MiB`;
}
