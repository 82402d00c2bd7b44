// Builds Site objects in code for planner tests and benchmarks.
import type { HostSpec, Site, TemplateSpec, VmSpec } from '../../src/site/model.ts';

export function host(name: string, memoryMiB: number, cpus = 8): HostSpec {
  return {
    name,
    address: `10.0.${Math.floor(Number(name.replace(/\D/g, '') || 0) / 250)}.${(Number(name.replace(/\D/g, '') || 0) % 250) + 1}`,
    cpus,
    memoryMiB,
    maintenance: false,
    implied: false,
  };
}
export const template: TemplateSpec = {
  name: 'web',
  type: 'pvh',
  kernel: '/k',
  disks: [],
  bridge: 'xenbr0',
  maxMemMiB: 2048,
  maxVcpus: 8,
  implied: false,
};

let macCounter = 0;
export function vm(name: string, hostName: string, memMiB: number, vcpus = 1): VmSpec {
  macCounter++;
  const hex = macCounter.toString(16).padStart(6, '0');
  return {
    name,
    set: 's',
    config: 'web',
    host: hostName,
    vcpus,
    memMiB,
    hwaddr: `00:16:3e:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`,
    ip: 'DHCP',
    placement: { pinned: false, noRebalance: false, priority: 0 },
  };
}
export function site(hosts: HostSpec[], vms: VmSpec[], templates: TemplateSpec[] = [template]): Site {
  return { hosts, templates, sets: [{ name: 's', vms: vms.map((v) => v.name) }], vms };
}
