// The rebalancer's per-VM cooldown: a VM it moved is left alone for a while, so VMs do not bounce.
// Each entry expires by itself (Redis TTL), so nothing has to clean up after a crash.

import type { Redis } from 'ioredis';

export interface CooldownStore {
  /** The VMs of `vms` still cooling down. */
  cooling(vms: readonly string[]): Promise<Set<string>>;
  /** `vm` was moved by `version`: leave it alone for `seconds`. */
  start(vm: string, version: number, seconds: number): Promise<void>;
}

export class RedisCooldownStore implements CooldownStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private key(vm: string): string {
    return `${this.prefix}:rebalance:cooldown:${vm}`;
  }
  async cooling(vms: readonly string[]): Promise<Set<string>> {
    const found = await Promise.all(vms.map((vm) => this.redis.exists(this.key(vm))));
    return new Set(vms.filter((_, i) => found[i]));
  }
  async start(vm: string, version: number, seconds: number): Promise<void> {
    await this.redis.set(this.key(vm), String(version), 'EX', seconds);
  }
}

/** The in-memory twin; `now` is injectable so tests can pass time. */
export class MemoryCooldownStore implements CooldownStore {
  private readonly until = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}
  cooling(vms: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(vms.filter((vm) => (this.until.get(vm) ?? 0) > this.now())));
  }
  start(vm: string, _version: number, seconds: number): Promise<void> {
    this.until.set(vm, this.now() + seconds * 1000);
    return Promise.resolve();
  }
}
