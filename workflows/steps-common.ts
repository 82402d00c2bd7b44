// Pieces the VM workflows share: their context and the checks that look at the real domain first.

import { heldSize, type Hypervisor, type DomainInfo } from '../src/drivers/hypervisor/hypervisor.ts';
import type { ActionJobData } from '../src/jobs/queues.ts';
import { PermanentError } from '../src/lib/errors.ts';

export interface VmWorkflowContext {
  hv: Hypervisor;
  data: ActionJobData;
  /** Hypervisor of another host, when this process can reach it (the simulator can; used to verify migrations). */
  peer?: (host: string) => Hypervisor | undefined;
  /** How long to wait for a domain to reach running. */
  waitMs?: number;
}

export async function waitRunning(hv: Hypervisor, name: string, timeoutMs: number): Promise<DomainInfo> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const d = await hv.find(name);
    if (d && (d.state === 'running' || d.state === 'blocked')) return d;
    if (d && d.state === 'crashed')
      throw new PermanentError(
        `${hv.hostName}: domain ${name} crashed while starting`,
        'check its console with `xl console` and its config',
      );
    if (Date.now() > until)
      throw new Error(
        `${hv.hostName}: domain ${name} is ${d ? d.state : 'absent'} after ${timeoutMs} ms; expected running`,
      );
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function verifyMatches(
  host: string,
  d: DomainInfo | undefined,
  name: string,
  memMiB: number,
  vcpus: number,
): void {
  if (!d) throw new Error(`${host}: domain ${name} is not there after the action`);
  const { memMiB: mem, vcpus: cpus } = heldSize(d);
  if (mem !== memMiB || cpus !== vcpus) {
    throw new Error(
      `${host}: domain ${name} has ${mem} MiB / ${cpus} vCPUs${mem !== d.memMiB || cpus !== d.vcpus ? ` as Xen's targets (${d.memMiB} MiB / ${d.vcpus} vCPUs in the guest now)` : ''}, expected ${memMiB} MiB / ${vcpus} vCPUs`,
    );
  }
}
