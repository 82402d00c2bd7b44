// The rebalancer's cooldowns: a VM it moved is left alone for a while, so VMs do not bounce; a host that a
// move left or reached is left alone too, so one host is not hit by migration after migration while its
// load figures still settle. Each entry expires by itself (Redis TTL), so nothing has to clean up after a
// crash. Beside them, the hysteresis state: whether the rebalancer is engaged (it crossed the act threshold
// and has not yet brought imbalance below the stop threshold).

import type { Redis } from 'ioredis';

export interface CooldownStore {
  /** The VMs of `vms` still cooling down. */
  cooling(vms: readonly string[]): Promise<Set<string>>;
  /** `vm` was moved by `version`: leave it alone for `seconds`. */
  start(vm: string, version: number, seconds: number): Promise<void>;
  /** The hosts of `hosts` still cooling down: no rebalance move leaves or reaches them. */
  hostsCooling(hosts: readonly string[]): Promise<Set<string>>;
  /** A move of `version` left or reached `host`: leave it alone for `seconds`. */
  startHost(host: string, version: number, seconds: number): Promise<void>;
  /** True between crossing the act threshold and reaching the stop threshold. */
  engaged(): Promise<boolean>;
  setEngaged(on: boolean): Promise<void>;
}

export class RedisCooldownStore implements CooldownStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private key(vm: string): string {
    return `${this.prefix}:rebalance:cooldown:${vm}`;
  }
  private hostKey(host: string): string {
    return `${this.prefix}:rebalance:host-cooldown:${host}`;
  }
  private async existing(names: readonly string[], key: (n: string) => string): Promise<Set<string>> {
    const found = await Promise.all(names.map((n) => this.redis.exists(key(n))));
    return new Set(names.filter((_, i) => found[i]));
  }
  cooling(vms: readonly string[]): Promise<Set<string>> {
    return this.existing(vms, (vm) => this.key(vm));
  }
  async start(vm: string, version: number, seconds: number): Promise<void> {
    await this.redis.set(this.key(vm), String(version), 'EX', seconds);
  }
  hostsCooling(hosts: readonly string[]): Promise<Set<string>> {
    return this.existing(hosts, (h) => this.hostKey(h));
  }
  async startHost(host: string, version: number, seconds: number): Promise<void> {
    await this.redis.set(this.hostKey(host), String(version), 'EX', seconds);
  }
  async engaged(): Promise<boolean> {
    return (await this.redis.exists(`${this.prefix}:rebalance:engaged`)) === 1;
  }
  async setEngaged(on: boolean): Promise<void> {
    if (on) await this.redis.set(`${this.prefix}:rebalance:engaged`, '1');
    else await this.redis.del(`${this.prefix}:rebalance:engaged`);
  }
}

/** The in-memory twin; `now` is injectable so tests can pass time. */
export class MemoryCooldownStore implements CooldownStore {
  private readonly until = new Map<string, number>();
  private readonly hostUntil = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}
  cooling(vms: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(vms.filter((vm) => (this.until.get(vm) ?? 0) > this.now())));
  }
  start(vm: string, _version: number, seconds: number): Promise<void> {
    this.until.set(vm, this.now() + seconds * 1000);
    return Promise.resolve();
  }
  hostsCooling(hosts: readonly string[]): Promise<Set<string>> {
    return Promise.resolve(new Set(hosts.filter((h) => (this.hostUntil.get(h) ?? 0) > this.now())));
  }
  startHost(host: string, _version: number, seconds: number): Promise<void> {
    this.hostUntil.set(host, this.now() + seconds * 1000);
    return Promise.resolve();
  }
  private on = false;
  engaged(): Promise<boolean> {
    return Promise.resolve(this.on);
  }
  setEngaged(on: boolean): Promise<void> {
    this.on = on;
    return Promise.resolve();
  }
}
