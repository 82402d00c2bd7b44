// What host agents report: their domains, memory and a heartbeat, one key per host, in Redis so any
// API instance, the planner, the rebalancer and failover read the same picture.

import type { Redis } from 'ioredis';
import type { ObservedHost, ObservedState } from '../site/observed.ts';

export class ObservedStore {
  private readonly hostsKey: string;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.hostsKey = `${prefix}:observed:hosts`;
  }
  private key(host: string) {
    return `${this.prefix}:observed:host:${host}`;
  }
  async report(host: ObservedHost): Promise<void> {
    await this.redis.multi().set(this.key(host.name), JSON.stringify(host)).sadd(this.hostsKey, host.name).exec();
  }
  /**
   * A migration just moved `domain` onto `host`: add it to that host's last report until the host's own
   * next report replaces it. Without this, a plan made before the target reports again would not see
   * the VM anywhere and act on a picture that is wrong. Atomic in Redis, so it never undoes a report.
   */
  async recordArrival(host: string, domain: ObservedHost['domains'][number]): Promise<void> {
    await this.redis.eval(
      `local v = redis.call('GET', KEYS[1])
       if not v then return 0 end
       local h = cjson.decode(v)
       local d = cjson.decode(ARGV[1])
       local out = {}
       for _, x in ipairs(h.domains or {}) do if x.name ~= d.name then table.insert(out, x) end end
       table.insert(out, d)
       h.domains = out
       redis.call('SET', KEYS[1], cjson.encode(h))
       return 1`,
      1,
      this.key(host),
      JSON.stringify(domain),
    );
  }
  /**
   * Failover fenced `host`: its domains died with it. Replaces the last report by an empty, fenced one
   * (keeping the heartbeat time), so the planner recreates its VMs elsewhere and starts nothing on it.
   */
  async markFenced(host: string, at = Date.now()): Promise<void> {
    const last = await this.host(host);
    const report: ObservedHost = {
      name: host,
      heartbeatAt: last?.heartbeatAt ?? 0,
      totalMemMiB: last?.totalMemMiB ?? 0,
      freeMemMiB: 0,
      nrCpus: last?.nrCpus ?? 0,
      domains: [],
      fencedAt: at,
    };
    await this.report(report);
  }
  async host(name: string): Promise<ObservedHost | undefined> {
    const v = await this.redis.get(this.key(name));
    return v ? (JSON.parse(v) as ObservedHost) : undefined;
  }
  async all(): Promise<ObservedState> {
    const names = (await this.redis.smembers(this.hostsKey)).sort();
    const values = names.length ? await this.redis.mget(names.map((n) => this.key(n))) : [];
    const hosts: Record<string, ObservedHost> = Object.create(null) as Record<string, ObservedHost>;
    values.forEach((v) => {
      if (v) {
        const h = JSON.parse(v) as ObservedHost;
        hosts[h.name] = h;
      }
    });
    return { hosts };
  }
  /** Hosts whose heartbeat is older than `maxAgeMs`. */
  async stale(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    const all = await this.all();
    return Object.values(all.hosts)
      .filter((h) => now - h.heartbeatAt > maxAgeMs)
      .map((h) => h.name);
  }
}
