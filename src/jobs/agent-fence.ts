// The host agent's side of fencing: the epoch it joined under and, when configured, its self-fence lease.
//
// An agent whose epoch is older than its host's stored epoch was fenced while it was away (a network
// partition, a frozen process, a host powered back on). Until it has rejoined it refuses every job, reports
// nothing (its host's fenced report stays) and renews no lease. It rejoins only once failover is past the
// fence (the host is no longer in the `fencing` state), after destroying every domain it runs that the
// current site version places on another host or that another host reports: those were restarted elsewhere.
// Then it adopts the new epoch and reports again.
//
// The lease: every heartbeat renews it; if no renewal succeeded for `selfFenceMs` (the agent lost Redis, or
// froze), the agent destroys all its domains before anything else, so they are down before the lease
// expires on the controller's side (`ttlMs` after the last renewal landed; selfFenceMs + the time to stop
// them must stay below ttlMs: docs/operations.md).

import { UnrecoverableError } from 'bullmq';
import type { Hypervisor } from '../drivers/hypervisor/hypervisor.ts';
import type { Logger } from '../lib/log.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';

export interface LeaseOptions {
  /** The lease's TTL on Redis' clock. */
  ttlMs: number;
  /** How long without a successful renewal before the agent stops its domains (default ttlMs / 2). */
  selfFenceMs?: number;
}

/** Thrown for a job on a host whose agent has not rejoined since it was fenced: retried after the rejoin. */
export class AgentFenced extends Error {
  constructor(host: string, mine: number, stored: number) {
    super(`${host}'s agent joined at epoch ${mine} but ${host} was fenced since (epoch ${stored}); it rejoins first`);
    this.name = 'AgentFenced';
  }
}

export class AgentFence {
  private epoch: number | undefined;
  private lastRenewAt: number | undefined;
  private selfFenced = false;
  private readonly selfFenceMs: number;

  constructor(
    private readonly rt: XsmRuntime,
    private readonly hv: Hypervisor,
    private readonly log: Logger,
    /** The epoch this agent last joined under (kept on local disk); undefined: join at the stored one. */
    epoch?: number,
    private readonly lease?: LeaseOptions,
    private readonly onEpoch?: (epoch: number) => Promise<void>,
  ) {
    this.epoch = epoch;
    this.selfFenceMs = lease ? (lease.selfFenceMs ?? Math.floor(lease.ttlMs / 2)) : 0;
  }

  private get host(): string {
    return this.hv.hostName;
  }

  /** The epoch this agent holds now (after its first heartbeat or job). */
  get joinedEpoch(): number | undefined {
    return this.epoch;
  }

  /**
   * A heartbeat's fencing part, run before the report: the watchdog, then the epoch. Returns true when the
   * agent may report and renew its lease (it holds the current epoch).
   */
  async beat(): Promise<boolean> {
    const stored = await this.rt.fence.epoch(this.host);
    if (this.epoch === undefined) await this.adopt(stored);
    if (this.epoch! < stored && !(await this.rejoin(stored))) return false;
    if (this.lease) {
      const sent = performance.now();
      // A renewal sent after the watchdog's deadline would revive a lease whose domains are already gone.
      if (this.lastRenewAt === undefined || sent - this.lastRenewAt <= this.selfFenceMs || this.selfFenced) {
        await this.rt.fence.renewLease(this.host, this.lease.ttlMs);
        this.lastRenewAt = sent;
        this.selfFenced = false;
      }
    }
    return true;
  }

  /** Before a job runs: refuses it for good if it was issued before a fence, for now if this agent is stale. */
  async admit(jobEpoch: number | undefined): Promise<void> {
    const stored = await this.rt.fence.epoch(this.host);
    if (jobEpoch !== undefined && jobEpoch < stored)
      throw new UnrecoverableError(
        `issued at ${this.host}'s epoch ${jobEpoch}, but ${this.host} was fenced since (epoch ${stored}): refused, failover placed its VMs again`,
      );
    if (this.epoch === undefined) await this.adopt(stored);
    if (this.epoch! < stored) throw new AgentFenced(this.host, this.epoch!, stored);
    if (this.selfFenced) throw new Error(`${this.host} stopped its domains when it lost its lease; it renews first`);
  }

  private async adopt(epoch: number): Promise<void> {
    this.epoch = epoch;
    await this.onEpoch?.(epoch);
  }

  /** Destroys what was restarted elsewhere, then adopts `stored`; false while failover is still fencing. */
  private async rejoin(stored: number): Promise<boolean> {
    if ((await this.rt.failover.health(this.host))?.state === 'fencing') {
      // Failover is fencing this host right now and will declare its domains dead: stop them first.
      await this.stopAll('fenced agent back while failover fences its host: stopped every domain');
      return false;
    }
    const version = await this.rt.sites.currentVersion();
    const placed = new Map<string, string>();
    if (version) for (const vm of (await this.rt.sites.load(version)).site.vms) placed.set(vm.name, vm.host);
    for (const d of await this.hv.list()) {
      if (d.domid === 0) continue;
      const elsewhere = (await this.rt.observed.whereIs(d.name)).filter((h) => h !== this.host);
      const there = placed.get(d.name);
      if (elsewhere.length || (there !== undefined && there !== this.host)) {
        await this.hv.destroy(d.name);
        this.log.warn('fenced agent destroyed a domain restarted elsewhere', {
          host: this.host,
          vm: d.name,
          elsewhere: elsewhere.join(',') || there,
        });
      }
    }
    this.log.warn('fenced agent rejoins', { host: this.host, from: this.epoch, epoch: stored });
    await this.adopt(stored);
    return true;
  }

  /** How often the agent runs watchdog(): often enough to stop everything well inside the lease. */
  get watchdogEveryMs(): number | undefined {
    return this.lease ? Math.max(50, Math.floor(this.selfFenceMs / 5)) : undefined;
  }

  /**
   * The watchdog, on a timer of its own (a heartbeat may hang on Redis): with no renewal for selfFenceMs,
   * every domain of this host is destroyed, now. Needs only the local hypervisor.
   */
  async watchdog(): Promise<void> {
    if (!this.lease || this.lastRenewAt === undefined || this.selfFenced) return;
    if (performance.now() - this.lastRenewAt <= this.selfFenceMs) return;
    this.selfFenced = true;
    await this.stopAll(`lease not renewed for ${this.selfFenceMs} ms: stopped every domain (self-fence)`);
  }

  private async stopAll(why: string): Promise<void> {
    const domains = (await this.hv.list()).filter((d) => d.domid !== 0);
    for (const d of domains) await this.hv.destroy(d.name);
    if (domains.length) this.log.error(why, { host: this.host, vms: domains.map((d) => d.name).join(',') });
  }
}
