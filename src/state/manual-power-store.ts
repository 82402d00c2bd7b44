// Manual power's requests: for a host without a BMC, XSM records what it wants ("on", "off", "pxe") and an
// operator confirms it (POST /api/power/manual/:host/confirm). The driver (src/drivers/power/manual.ts)
// waits on this store through its ManualPowerRequests interface.

import type { Redis } from 'ioredis';
import type { ManualPowerRequests, ManualRequest } from '../drivers/power/manual.ts';

export class RedisManualPowerStore implements ManualPowerRequests {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private key(host: string): string {
    return `${this.prefix}:power:manual:${host}`;
  }
  async pending(host: string): Promise<ManualRequest | undefined> {
    const raw = await this.redis.get(this.key(host));
    return raw ? (JSON.parse(raw) as ManualRequest) : undefined;
  }
  async request(host: string, req: ManualRequest): Promise<void> {
    await this.redis.set(this.key(host), JSON.stringify(req));
  }
  async clear(host: string): Promise<void> {
    await this.redis.del(this.key(host));
  }
  async lastConfirmed(host: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.key(host)}:state`)) ?? undefined;
  }
  async setLastConfirmed(host: string, state: 'on' | 'off'): Promise<void> {
    await this.redis.set(`${this.key(host)}:state`, state);
  }
}

/** The in-memory twin. */
export class MemoryManualPowerStore implements ManualPowerRequests {
  private readonly requests = new Map<string, ManualRequest>();
  private readonly states = new Map<string, string>();
  pending(host: string): Promise<ManualRequest | undefined> {
    const r = this.requests.get(host);
    return Promise.resolve(r ? { ...r } : undefined);
  }
  request(host: string, req: ManualRequest): Promise<void> {
    this.requests.set(host, { ...req });
    return Promise.resolve();
  }
  clear(host: string): Promise<void> {
    this.requests.delete(host);
    return Promise.resolve();
  }
  lastConfirmed(host: string): Promise<string | undefined> {
    return Promise.resolve(this.states.get(host));
  }
  setLastConfirmed(host: string, state: 'on' | 'off'): Promise<void> {
    this.states.set(host, state);
    return Promise.resolve();
  }
}
