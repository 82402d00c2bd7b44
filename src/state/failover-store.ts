// Failover's shared state: each host's health record (one hash, so every control process sees the same
// incident) and, per incident, the site version that placed the failed host's VMs (so a retried failover
// job finds the version it already wrote instead of writing another).

import type { Redis } from 'ioredis';

export type HealthState = 'suspect' | 'fencing' | 'fenced' | 'fence-failed';

export interface HostHealth {
  state: HealthState;
  /** Epoch ms of the host's last sign of life (heartbeat or Ganglia report): identifies the incident. */
  incident: number;
  /** Epoch ms at which the host entered this state. */
  since: number;
  detail?: string;
}

export interface FailoverStore {
  allHealth(): Promise<Record<string, HostHealth>>;
  health(host: string): Promise<HostHealth | undefined>;
  setHealth(host: string, h: HostHealth): Promise<void>;
  clearHealth(host: string): Promise<void>;
  /** The version that placed the VMs of `host` for this incident, if one was written. */
  incidentVersion(host: string, incident: number): Promise<number | undefined>;
  setIncidentVersion(host: string, incident: number, version: number): Promise<void>;
}

export class RedisFailoverStore implements FailoverStore {
  private readonly healthKey: string;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.healthKey = `${prefix}:failover:health`;
  }
  private versionKey(host: string, incident: number): string {
    return `${this.prefix}:failover:version:${host}:${incident}`;
  }
  async allHealth(): Promise<Record<string, HostHealth>> {
    const raw = await this.redis.hgetall(this.healthKey);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, JSON.parse(v) as HostHealth]));
  }
  async health(host: string): Promise<HostHealth | undefined> {
    const v = await this.redis.hget(this.healthKey, host);
    return v ? (JSON.parse(v) as HostHealth) : undefined;
  }
  async setHealth(host: string, h: HostHealth): Promise<void> {
    await this.redis.hset(this.healthKey, host, JSON.stringify(h));
  }
  async clearHealth(host: string): Promise<void> {
    await this.redis.hdel(this.healthKey, host);
  }
  async incidentVersion(host: string, incident: number): Promise<number | undefined> {
    const v = await this.redis.get(this.versionKey(host, incident));
    return v === null ? undefined : Number(v);
  }
  async setIncidentVersion(host: string, incident: number, version: number): Promise<void> {
    await this.redis.set(this.versionKey(host, incident), String(version));
  }
}

/** The in-memory twin, for tests of services and workflows that need no Redis. */
export class MemoryFailoverStore implements FailoverStore {
  private readonly healthByHost = new Map<string, string>();
  private readonly versions = new Map<string, number>();
  allHealth(): Promise<Record<string, HostHealth>> {
    return Promise.resolve(
      Object.fromEntries([...this.healthByHost].map(([k, v]) => [k, JSON.parse(v) as HostHealth])),
    );
  }
  health(host: string): Promise<HostHealth | undefined> {
    const v = this.healthByHost.get(host);
    return Promise.resolve(v ? (JSON.parse(v) as HostHealth) : undefined);
  }
  setHealth(host: string, h: HostHealth): Promise<void> {
    this.healthByHost.set(host, JSON.stringify(h));
    return Promise.resolve();
  }
  clearHealth(host: string): Promise<void> {
    this.healthByHost.delete(host);
    return Promise.resolve();
  }
  incidentVersion(host: string, incident: number): Promise<number | undefined> {
    return Promise.resolve(this.versions.get(`${host}:${incident}`));
  }
  setIncidentVersion(host: string, incident: number, version: number): Promise<void> {
    this.versions.set(`${host}:${incident}`, version);
    return Promise.resolve();
  }
}
