// Per-VM metrics as the paper lists them (CPU time and weight, max and used memory, vCPUs online and
// available, state), read from the hypervisor and published through gmetric, each VM spoofed as its own
// Ganglia host; Domain-0's own, named dom0_*, on the Dom0's Ganglia host. CPU use in percent comes from the
// CPU-time delta between two samples.

import type { Hypervisor } from '../drivers/hypervisor/hypervisor.ts';
import type { DomainInfo } from '../site/domain.ts';
import type { GmetricSender, GmetricSpec } from './gmetric.ts';

export interface VmCpuSample {
  cpuTimeSec: number;
  at: number;
}

/** How long gmond keeps a metric it heard nothing new of, in seconds. */
const TMAX = 60;

/** The Dom0's own metrics: how many guests run and Xen's free and total memory. */
function hostMetrics(info: { freeMemMiB: number; totalMemMiB: number }, guests: number, spoof: string): GmetricSpec[] {
  return [
    {
      name: 'vm_count',
      value: guests,
      type: 'uint32',
      units: 'VMs',
      group: 'xen',
      title: 'VM count',
      desc: 'Running domUs',
      spoof,
      tmax: TMAX,
    },
    {
      name: 'xen_free_mem',
      value: info.freeMemMiB,
      type: 'float',
      units: 'MiB',
      group: 'xen',
      desc: 'Memory Xen can still give to domains',
      spoof,
      tmax: TMAX,
    },
    {
      name: 'xen_total_mem',
      value: info.totalMemMiB,
      type: 'float',
      units: 'MiB',
      group: 'xen',
      spoof,
      tmax: TMAX,
    },
  ];
}

/** CPU use in percent since the previous sample (100 per busy vCPU); undefined without an earlier one. */
function cpuPercent(prev: VmCpuSample | undefined, cpuTimeSec: number, now: number): number | undefined {
  return prev && now > prev.at
    ? Math.max(0, ((cpuTimeSec - prev.cpuTimeSec) / ((now - prev.at) / 1000)) * 100)
    : undefined;
}

/** One VM's metrics, spoofed as its own Ganglia host; `vm_cpu_pct` only when there is a CPU use to give. */
function guestMetrics(d: DomainInfo, dom0: string, spoof: string, cpuPct: number | undefined): GmetricSpec[] {
  const g = { group: 'xen_vm', spoof, tmax: TMAX };
  const out: GmetricSpec[] = [
    {
      name: 'vm_cpu_time',
      value: d.cpuTimeSec,
      type: 'double',
      units: 's',
      slope: 'positive',
      desc: 'CPU time used since the domain started',
      ...g,
    },
    { name: 'vm_weight', value: d.weight ?? 256, type: 'uint32', units: '', desc: 'Credit scheduler weight', ...g },
    {
      name: 'vm_mem_used',
      value: d.memMiB,
      type: 'uint32',
      units: 'MiB',
      desc: 'Current memory (balloon target)',
      ...g,
    },
    { name: 'vm_mem_max', value: d.maxMemMiB, type: 'uint32', units: 'MiB', desc: 'Maximum memory', ...g },
    { name: 'vm_vcpus_online', value: d.vcpus, type: 'uint32', units: 'vCPUs', ...g },
    { name: 'vm_vcpus_avail', value: d.maxVcpus, type: 'uint32', units: 'vCPUs', ...g },
    { name: 'vm_state', value: d.state, type: 'string', units: '', ...g },
    { name: 'vm_dom0', value: dom0, type: 'string', units: '', desc: 'The Dom0 running this VM', ...g },
  ];
  if (cpuPct !== undefined)
    out.push({
      name: 'vm_cpu_pct',
      value: Math.round(cpuPct * 10) / 10,
      type: 'float',
      units: '%',
      desc: 'CPU use, 100 per busy vCPU',
      ...g,
    });
  return out;
}

/** Domain-0's CPU sample, apart from any guest's (a guest cannot be named with a space). */
const DOM0_KEY = 'Domain 0';

/** Domain-0's metrics: the guests' set without what only a guest has (its Dom0, its scheduler weight). */
function dom0Metrics(d: DomainInfo, spoof: string, cpuPct: number | undefined): GmetricSpec[] {
  return guestMetrics(d, '', spoof, cpuPct)
    .filter((m) => m.name !== 'vm_dom0' && m.name !== 'vm_weight')
    .map((m) => ({ ...m, name: m.name.replace(/^vm_/, 'dom0_'), group: 'xen_dom0' }));
}

/**
 * gmond keys spoofed hosts by their address, so every VM needs its own: its static IP when the site file
 * gives one (`addressOf`), else its name, which Ganglia then shows as the VM's "IP".
 */
export function vmMetricsPublisher(
  hv: Hypervisor,
  sender: GmetricSender,
  dom0Address: string,
  addressOf: (vm: string) => string | undefined = () => undefined,
) {
  const last = new Map<string, VmCpuSample>();
  return async function publish(now = Date.now()): Promise<GmetricSpec[]> {
    const [info, domains] = await Promise.all([hv.info(), hv.list()]);
    const guests = domains.filter((d) => d.domid !== 0);
    const hostSpoof = `${dom0Address}:${hv.hostName}`;
    const out = hostMetrics(info, guests.length, hostSpoof);
    // Domain-0 itself, as the paper asks: the guests' metrics, named dom0_*, on the Dom0's own Ganglia host.
    const dom0 = domains.find((d) => d.domid === 0);
    if (dom0) {
      const cpuPct = cpuPercent(last.get(DOM0_KEY), dom0.cpuTimeSec, now);
      last.set(DOM0_KEY, { cpuTimeSec: dom0.cpuTimeSec, at: now });
      out.push(...dom0Metrics(dom0, hostSpoof, cpuPct));
    }
    const seen = new Set<string>();
    for (const d of guests) {
      seen.add(d.name);
      const spoof = `${addressOf(d.name) ?? d.name}:${d.name}`;
      const cpuPct = cpuPercent(last.get(d.name), d.cpuTimeSec, now);
      last.set(d.name, { cpuTimeSec: d.cpuTimeSec, at: now });
      out.push(...guestMetrics(d, hv.hostName, spoof, cpuPct));
    }
    for (const name of [...last.keys()]) if (!seen.has(name) && name !== DOM0_KEY) last.delete(name);
    await sender.send(out);
    return out;
  };
}
