// What host agents report: their domains, memory and a heartbeat, one key per host, in Redis so any
// API instance, the planner, the rebalancer and failover read the same picture. An index (domain -> hosts
// that last reported it) answers "where does this VM run?" without reading every host: the precondition
// check of every create asks it.

import type { Redis } from 'ioredis';
import type { ObservedHost, ObservedState } from '../site/observed.ts';
import { LuaScript } from '../lib/lua-script.ts';

// KEYS: hostKey, hostsSet, hostDomainsSet, domainIndexPrefix  ARGV: host, report JSON, domain names...
// Replaces the host's report and moves the index to its domains, in one step. Only the domains that came or
// went touch the index: a report after one create costs two SADDs, not three commands per domain the host
// runs (which made the index most of an apply's Redis commands on hosts with many VMs).
const REPORT = new LuaScript(`
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
local now = {}
for i = 3, #ARGV do now[ARGV[i]] = true end
local before = {}
for _, d in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  before[d] = true
  if not now[d] then
    redis.call('SREM', KEYS[3], d)
    redis.call('SREM', KEYS[4] .. d, ARGV[1])
  end
end
for i = 3, #ARGV do
  if not before[ARGV[i]] then
    redis.call('SADD', KEYS[3], ARGV[i])
    redis.call('SADD', KEYS[4] .. ARGV[i], ARGV[1])
  end
end
return 1
`);

/** A fenced host's report: no domains, no free memory, the last heartbeat kept, and when it was fenced. */
function fencedReport(host: string, last: ObservedHost | undefined, at: number): ObservedHost {
  return {
    name: host,
    heartbeatAt: last?.heartbeatAt ?? 0,
    totalMemMiB: last?.totalMemMiB ?? 0,
    freeMemMiB: 0,
    nrCpus: last?.nrCpus ?? 0,
    domains: [],
    fencedAt: at,
  };
}

/** Hosts whose heartbeat is older than `maxAgeMs` at `now`. */
function staleHosts(state: ObservedState, maxAgeMs: number, now: number): string[] {
  return Object.values(state.hosts)
    .filter((h) => now - h.heartbeatAt > maxAgeMs)
    .map((h) => h.name);
}

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
  private domainsKey(host: string) {
    return `${this.prefix}:observed:host-domains:${host}`;
  }
  private get indexPrefix() {
    return `${this.prefix}:observed:domain:`;
  }
  async report(host: ObservedHost): Promise<void> {
    await REPORT.run(
      this.redis,
      [this.key(host.name), this.hostsKey, this.domainsKey(host.name), this.indexPrefix],
      [host.name, JSON.stringify(host), ...host.domains.map((d) => d.name)],
    );
  }
  /** Hosts whose last report shows `domain` (two while it migrates), sorted. */
  async whereIs(domain: string): Promise<string[]> {
    return (await this.redis.smembers(`${this.indexPrefix}${domain}`)).sort();
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
       redis.call('SADD', KEYS[2], d.name)
       redis.call('SADD', KEYS[3] .. d.name, ARGV[2])
       return 1`,
      3,
      this.key(host),
      this.domainsKey(host),
      this.indexPrefix,
      JSON.stringify(domain),
      host,
    );
  }
  /**
   * Failover fenced `host`: its domains died with it. Replaces the last report by an empty, fenced one
   * (keeping the heartbeat time), so the planner recreates its VMs elsewhere and starts nothing on it.
   */
  async markFenced(host: string, at = Date.now()): Promise<void> {
    await this.report(fencedReport(host, await this.host(host), at));
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
    return staleHosts(await this.all(), maxAgeMs, now);
  }
}

/** The in-memory twin of ObservedStore (test/state/twins.test.ts holds both to one contract). */
export class MemoryObservedStore {
  private readonly hosts = new Map<string, string>();

  report(host: ObservedHost): Promise<void> {
    this.hosts.set(host.name, JSON.stringify(host));
    return Promise.resolve();
  }
  async whereIs(domain: string): Promise<string[]> {
    const all = await this.all();
    return Object.values(all.hosts)
      .filter((h) => h.domains.some((d) => d.name === domain))
      .map((h) => h.name)
      .sort();
  }
  recordArrival(host: string, domain: ObservedHost['domains'][number]): Promise<void> {
    const v = this.hosts.get(host);
    if (v) {
      const h = JSON.parse(v) as ObservedHost;
      h.domains = [...h.domains.filter((d) => d.name !== domain.name), domain];
      this.hosts.set(host, JSON.stringify(h));
    }
    return Promise.resolve();
  }
  async markFenced(host: string, at = Date.now()): Promise<void> {
    await this.report(fencedReport(host, await this.host(host), at));
  }
  host(name: string): Promise<ObservedHost | undefined> {
    const v = this.hosts.get(name);
    return Promise.resolve(v ? (JSON.parse(v) as ObservedHost) : undefined);
  }
  all(): Promise<ObservedState> {
    const hosts: Record<string, ObservedHost> = Object.create(null) as Record<string, ObservedHost>;
    for (const name of [...this.hosts.keys()].sort()) hosts[name] = JSON.parse(this.hosts.get(name)!) as ObservedHost;
    return Promise.resolve({ hosts });
  }
  async stale(maxAgeMs: number, now = Date.now()): Promise<string[]> {
    return staleHosts(await this.all(), maxAgeMs, now);
  }
}
