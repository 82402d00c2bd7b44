// Fencing's shared state: each host's fencing epoch and its self-fence lease.
//
// The epoch is a fencing token. It starts at 0 and failover increments it once per incident, before it
// powers the host off; every host job carries the epoch its host had when the job was issued, and a host
// agent holds the epoch it joined under. An agent whose epoch is older than the stored one was fenced while
// it was away: it refuses every job, destroys what was restarted elsewhere, and only then adopts the new
// epoch and reports again. A job whose epoch is older was issued before the fence: refused for good.
//
// The lease is the second fencing method (docs/operations.md, "Self-fence lease"): an agent that runs with
// a lease renews it every heartbeat; the key expires on Redis' clock `ttlMs` after the last renewal landed,
// and the agent stops its own domains well before that when it cannot renew. Which hosts keep a lease, and
// with what TTL, is recorded apart from the expiring key, so an expired lease is told from a host that never
// kept one.

import type { Redis } from 'ioredis';

/** A host's lease as the controller sees it. */
export interface LeaseState {
  /** The TTL the agent declared when it renewed last. */
  ttlMs: number;
  /** Milliseconds left before it expires on Redis' clock; 0 when it has expired. */
  remainingMs: number;
}

export interface FenceStore {
  /** The host's fencing epoch: 0 until it is first fenced. */
  epoch(host: string): Promise<number>;
  /** Every host's epoch that is above 0. */
  epochs(): Promise<Record<string, number>>;
  /**
   * Fences `host` for `incident`: increments its epoch once per incident (a retried failover job gets the
   * same epoch back) and returns the epoch now in force.
   */
  fence(host: string, incident: number): Promise<number>;
  /**
   * Raises `host`'s epoch to `epoch` when it is lower (`xsm recover`: an agent's epoch outlived a lost Redis,
   * and a later fence must still come out above it); never lowers it.
   */
  raiseEpoch(host: string, epoch: number): Promise<void>;
  /** Records the epochs a site version was planned under: its jobs carry them. */
  setPlannedEpochs(version: number, epochs: Record<string, number>): Promise<void>;
  plannedEpochs(version: number): Promise<Record<string, number> | undefined>;
  /** The agent of `host` renews its lease for `ttlMs`. */
  renewLease(host: string, ttlMs: number): Promise<void>;
  /** The host's lease, or undefined when its agent never kept one. */
  lease(host: string): Promise<LeaseState | undefined>;
}

// KEYS: epochs hash, incidents hash  ARGV: host, incident. One increment per (host, incident).
const FENCE = `
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last == ARGV[2] then return tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
`;

export class RedisFenceStore implements FenceStore {
  private readonly epochsKey: string;
  private readonly incidentsKey: string;
  private readonly leaseTtlKey: string;
  private readonly plannedKey: string;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.epochsKey = `${prefix}:fence:epochs`;
    this.incidentsKey = `${prefix}:fence:incidents`;
    this.leaseTtlKey = `${prefix}:fence:lease-ttl`;
    this.plannedKey = `${prefix}:fence:planned`;
  }
  private leaseKey(host: string): string {
    return `${this.prefix}:fence:lease:${host}`;
  }
  async epoch(host: string): Promise<number> {
    return Number((await this.redis.hget(this.epochsKey, host)) ?? 0);
  }
  async epochs(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.epochsKey);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }
  async fence(host: string, incident: number): Promise<number> {
    return Number(await this.redis.eval(FENCE, 2, this.epochsKey, this.incidentsKey, host, String(incident)));
  }
  async raiseEpoch(host: string, epoch: number): Promise<void> {
    await this.redis.eval(
      `if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') < tonumber(ARGV[2]) then
         redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
       return 1`,
      1,
      this.epochsKey,
      host,
      String(epoch),
    );
  }
  async setPlannedEpochs(version: number, epochs: Record<string, number>): Promise<void> {
    await this.redis.hset(this.plannedKey, String(version), JSON.stringify(epochs));
  }
  async plannedEpochs(version: number): Promise<Record<string, number> | undefined> {
    const v = await this.redis.hget(this.plannedKey, String(version));
    return v === null ? undefined : (JSON.parse(v) as Record<string, number>);
  }
  async renewLease(host: string, ttlMs: number): Promise<void> {
    await this.redis.multi().set(this.leaseKey(host), '1', 'PX', ttlMs).hset(this.leaseTtlKey, host, ttlMs).exec();
  }
  async lease(host: string): Promise<LeaseState | undefined> {
    const [ttl, left] = await Promise.all([
      this.redis.hget(this.leaseTtlKey, host),
      this.redis.pttl(this.leaseKey(host)),
    ]);
    if (ttl === null) return undefined;
    return { ttlMs: Number(ttl), remainingMs: Math.max(0, left) };
  }
}

/** The in-memory twin; `now` is its clock (Redis keeps its own). */
export class MemoryFenceStore implements FenceStore {
  private readonly epochByHost = new Map<string, number>();
  private readonly incidents = new Map<string, number>();
  private readonly leases = new Map<string, { ttlMs: number; until: number }>();
  constructor(private readonly now: () => number = Date.now) {}
  epoch(host: string): Promise<number> {
    return Promise.resolve(this.epochByHost.get(host) ?? 0);
  }
  epochs(): Promise<Record<string, number>> {
    return Promise.resolve(Object.fromEntries(this.epochByHost));
  }
  fence(host: string, incident: number): Promise<number> {
    if (this.incidents.get(host) !== incident) {
      this.incidents.set(host, incident);
      this.epochByHost.set(host, (this.epochByHost.get(host) ?? 0) + 1);
    }
    return Promise.resolve(this.epochByHost.get(host) ?? 0);
  }
  private readonly planned = new Map<number, string>();
  raiseEpoch(host: string, epoch: number): Promise<void> {
    if ((this.epochByHost.get(host) ?? 0) < epoch) this.epochByHost.set(host, epoch);
    return Promise.resolve();
  }
  setPlannedEpochs(version: number, epochs: Record<string, number>): Promise<void> {
    this.planned.set(version, JSON.stringify(epochs));
    return Promise.resolve();
  }
  plannedEpochs(version: number): Promise<Record<string, number> | undefined> {
    const v = this.planned.get(version);
    return Promise.resolve(v === undefined ? undefined : (JSON.parse(v) as Record<string, number>));
  }
  renewLease(host: string, ttlMs: number): Promise<void> {
    this.leases.set(host, { ttlMs, until: this.now() + ttlMs });
    return Promise.resolve();
  }
  lease(host: string): Promise<LeaseState | undefined> {
    const l = this.leases.get(host);
    return Promise.resolve(l ? { ttlMs: l.ttlMs, remainingMs: Math.max(0, l.until - this.now()) } : undefined);
  }
}
