// The capacity rule every part agrees on (validation, planning, the simulator's admission, the rebalancer):
// the MEM of the VMs on a host adds up to at most its memoryMiB, and no VM has more vCPUs than the host has
// physical CPUs (Xen refuses that without --ignore-host). vCPUs may be overcommitted in total, as Xen allows.

import type { HostSpec, VmSpec } from './model.ts';

export interface HostLoad {
  memMiB: number;
  vcpus: number;
  vms: number;
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

/** Why `vm` cannot be added to `host` carrying `load`, or undefined when it fits. Implied hosts always fit. */
export function whyNotFits(
  host: HostSpec,
  load: HostLoad,
  vm: Pick<VmSpec, 'memMiB' | 'vcpus' | 'name'>,
): string | undefined {
  if (host.implied) return undefined;
  if (vm.vcpus > host.cpus) return `${vm.name} needs ${vm.vcpus} vCPUs but host ${host.name} has ${host.cpus} CPUs`;
  const free = host.memoryMiB - load.memMiB;
  if (vm.memMiB > free)
    return `${vm.name} needs ${vm.memMiB} MiB but host ${host.name} has ${free} MiB free of ${host.memoryMiB}`;
  return undefined;
}
