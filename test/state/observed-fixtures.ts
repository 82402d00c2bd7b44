// A running domain and a host's report as an agent sends them, for tests of the observed state and of what
// is built from it (the VM list).
import type { DomainInfo } from '../../src/drivers/hypervisor/hypervisor.ts';

/** A running 64 MiB, one-vCPU domain. */
export const runningDomain = (name: string, domid = 1): DomainInfo => ({
  name,
  domid,
  state: 'running',
  memMiB: 64,
  maxMemMiB: 64,
  vcpus: 1,
  maxVcpus: 1,
  cpuTimeSec: 0,
});

/** A 2 GiB, 4-CPU host's report (heartbeat now) with these domains running. */
export const hostReport = (name: string, domains: string[]) => ({
  name,
  heartbeatAt: Date.now(),
  totalMemMiB: 2048,
  freeMemMiB: 1024,
  nrCpus: 4,
  domains: domains.map((d) => runningDomain(d)),
});
