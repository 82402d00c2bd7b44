// Pieces the VM workflows share: their context and the checks that look at the real domain first.
import { heldSize, type Hypervisor, type DomainInfo } from '../src/drivers/hypervisor/hypervisor.ts';
import type { ActionJobData } from '../src/runtime/queues.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { ObservedHost } from '../src/site/observed.ts';
import type { Storage } from '../src/drivers/storage/storage.ts';

/** What another host's agent last reported (the observed store): for checks about hosts this one cannot see. */
export interface ObservedReader {
  host(name: string): Promise<ObservedHost | undefined>;
  /** Hosts whose last report shows the domain. */
  whereIs(domain: string): Promise<string[]>;
}

/** How a job on one host has another host do its part (a cold move's start, its live moves): a job there. */
export interface RemoteActions {
  /** Adds the job (once: the id makes it idempotent) and waits until it completed or failed for good. */
  run(host: string, jobId: string, data: ActionJobData): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Where such a job is, without adding it: undefined when it was never added. */
  state(host: string, jobId: string): Promise<{ ok: true } | { ok: false; reason: string } | 'unfinished' | undefined>;
}

export interface VmWorkflowContext {
  hv: Hypervisor;
  /** The host's disks and pools (absent: an action that makes, copies or deletes disks fails, saying so). */
  storage?: Storage;
  data: ActionJobData;
  /** Hypervisor of another host, when this process can reach it (the simulator can; used to verify migrations). */
  peer?: (host: string) => Hypervisor | undefined;
  /** Other hosts' observed state, for preconditions about them (absent: those are not checked). */
  observed?: ObservedReader;
  /** Jobs on other hosts' queues (absent: a cold move cannot run here). */
  remote?: RemoteActions;
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

export function storageOf(ctx: VmWorkflowContext): Storage {
  if (!ctx.storage)
    throw new PermanentError(
      `${ctx.hv.hostName}: this agent has no storage driver, and ${ctx.data.action.vm}'s disks are in a pool`,
      'run the host agent with its storage driver (workers/host-agent-lib.ts)',
    );
  return ctx.storage;
}
