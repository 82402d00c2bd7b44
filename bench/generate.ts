// Generates large sites for benchmarks: N hosts, M VMs packed within capacity, and a changed copy.
import type { HostSpec, Site, TemplateSpec, VmSpec } from '../src/site/model.ts';

export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s % n;
  };
}

const tpl: TemplateSpec = {
  name: 'web',
  type: 'pvh',
  kernel: '/srv/xen/kernels/vmlinuz',
  disks: [{ target: '/srv/xen/disks/{vm}.img', vdev: 'xvda', format: 'raw', access: 'rw' }],
  bridge: 'xenbr0',
  maxMemMiB: 4096,
  maxVcpus: 8,
  implied: false,
};

function mac(i: number): string {
  const h = i.toString(16).padStart(6, '0');
  return `00:16:3e:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`;
}

export function generateSite(hostCount: number, vmCount: number, seed = 1): Site {
  const r = rng(seed);
  const hosts: HostSpec[] = Array.from({ length: hostCount }, (_, i) => ({
    name: `xen${String(i).padStart(4, '0')}`,
    address: `10.${Math.floor(i / 250)}.${i % 250}.1`,
    bootMac: `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
    cpus: 32,
    memoryMiB: 65536,
    maintenance: false,
    implied: false,
  }));
  const vms: VmSpec[] = Array.from({ length: vmCount }, (_, i) => ({
    name: `vm${String(i).padStart(5, '0')}`,
    set: `set${i % 10}`,
    config: 'web',
    host: hosts[i % hostCount]!.name,
    vcpus: 1 + r(4),
    memMiB: 512 * (1 + r(8)),
    hwaddr: mac(i + 1),
    ip: 'DHCP',
    placement: { pinned: false, noRebalance: false, priority: 0 },
  }));
  const sets = Array.from({ length: 10 }, (_, s) => ({
    name: `set${s}`,
    vms: vms.filter((v) => v.set === `set${s}`).map((v) => v.name),
  }));
  return { hosts, templates: [tpl], sets, vms };
}

/** A copy where `fraction` of VMs are moved, removed, resized, or added (in equal parts). */
export function changeSite(site: Site, fraction: number, seed = 2): Site {
  const r = rng(seed);
  const vms = site.vms.map((v) => ({ ...v }));
  const n = Math.round(site.vms.length * fraction);
  const load = new Map<string, number>();
  for (const v of vms) load.set(v.host, (load.get(v.host) ?? 0) + v.memMiB);
  const pickHost = (mem: number) => {
    for (;;) {
      const h = site.hosts[r(site.hosts.length)]!;
      if ((load.get(h.name) ?? 0) + mem <= h.memoryMiB) return h.name;
    }
  };
  const removed = new Set<number>();
  for (let k = 0; k < n; k++) {
    const i = r(vms.length);
    const v = vms[i]!;
    if (removed.has(i)) continue;
    switch (k % 4) {
      case 0: {
        load.set(v.host, load.get(v.host)! - v.memMiB);
        v.host = pickHost(v.memMiB);
        load.set(v.host, load.get(v.host)! + v.memMiB);
        break;
      }
      case 1:
        removed.add(i);
        load.set(v.host, load.get(v.host)! - v.memMiB);
        break;
      case 2:
        v.vcpus = Math.min(8, v.vcpus + 1);
        break;
      case 3: {
        const mem = 1024;
        const name = `new${String(k).padStart(5, '0')}`;
        const host = pickHost(mem);
        load.set(host, (load.get(host) ?? 0) + mem);
        vms.push({
          ...v,
          name,
          host,
          memMiB: mem,
          hwaddr: `00:16:3f:${(k >> 16).toString(16).padStart(2, '0')}:${((k >> 8) & 255).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')}`,
          set: 'set0',
        });
        break;
      }
    }
  }
  const kept = vms.filter((_, i) => !removed.has(i));
  const sets = site.sets.map((s) => ({ ...s, vms: kept.filter((v) => v.set === s.name).map((v) => v.name) }));
  return { ...site, vms: kept, sets };
}
