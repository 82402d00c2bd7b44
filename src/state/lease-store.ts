// Single-writer leases: a named right to act that one process holds at a time, across every control worker
// (the rebalancer takes `rebalance`, so two control workers never rebalance at once). A lease expires by
// itself, so a holder that dies does not block the others for longer than its time-to-live.

import type { Redis } from 'ioredis';

export interface LeaseAnswer {
  /** True when the caller now holds the lease. */
  ok: boolean;
  /** Who holds it (the caller when `ok`). */
  holder: string;
}

export interface LeaseStore {
  /** Takes lease `name` for `holder` for `ms` unless someone else holds it; the holder may take it again. */
  acquire(name: string, holder: string, ms: number): Promise<LeaseAnswer>;
  /** Gives the lease back if `holder` still holds it; true when it did. */
  release(name: string, holder: string): Promise<boolean>;
  /** Who holds lease `name`, if anyone. */
  holder(name: string): Promise<string | undefined>;
}

// KEYS: lease  ARGV: holder, ms -> the holder after the call
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur`;

// KEYS: lease  ARGV: holder -> 1 when released
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class RedisLeaseStore implements LeaseStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private key(name: string): string {
    return `${this.prefix}:lease:${name}`;
  }
  async acquire(name: string, holder: string, ms: number): Promise<LeaseAnswer> {
    const got = (await this.redis.eval(
      ACQUIRE,
      1,
      this.key(name),
      holder,
      String(Math.max(1, Math.round(ms))),
    )) as string;
    return { ok: got === holder, holder: got };
  }
  async release(name: string, holder: string): Promise<boolean> {
    return ((await this.redis.eval(RELEASE, 1, this.key(name), holder)) as number) === 1;
  }
  async holder(name: string): Promise<string | undefined> {
    return (await this.redis.get(this.key(name))) ?? undefined;
  }
}

/** The in-memory twin; `now` is injectable so tests can pass time. */
export class MemoryLeaseStore implements LeaseStore {
  private readonly leases = new Map<string, { holder: string; until: number }>();
  constructor(private readonly now: () => number = Date.now) {}
  private live(name: string) {
    const l = this.leases.get(name);
    return l && l.until > this.now() ? l : undefined;
  }
  acquire(name: string, holder: string, ms: number): Promise<LeaseAnswer> {
    const cur = this.live(name);
    if (cur && cur.holder !== holder) return Promise.resolve({ ok: false, holder: cur.holder });
    this.leases.set(name, { holder, until: this.now() + Math.max(1, Math.round(ms)) });
    return Promise.resolve({ ok: true, holder });
  }
  release(name: string, holder: string): Promise<boolean> {
    if (this.live(name)?.holder !== holder) return Promise.resolve(false);
    this.leases.delete(name);
    return Promise.resolve(true);
  }
  holder(name: string): Promise<string | undefined> {
    return Promise.resolve(this.live(name)?.holder);
  }
}
