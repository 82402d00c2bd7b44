// The latest Ganglia values of every host and VM, and a bounded history of the ones XSM graphs and
// balances on, in Redis: the poller writes, the rebalancer, failover, the dashboard and /metrics read.

import type { Redis } from 'ioredis';
import type { GangliaHost } from '../ganglia/xml.ts';

export interface StoredMetric {
  v: number | string;
  units: string;
  /** Epoch ms at which the value was current (poll time minus its TN). */
  at: number;
}

export interface HostMetrics {
  host: string;
  ip: string;
  up: boolean;
  /** Epoch ms of the host's last report to Ganglia. */
  reportedAt: number;
  /** Who sent the host's metrics when they were spoofed (a VM's Dom0 agent). */
  spoofedBy?: string;
  metrics: Record<string, StoredMetric>;
}

/** Metrics with history: what the dashboard graphs and the rebalancer reads over time. */
export const HISTORY_METRICS = new Set([
  'load_one',
  'cpu_user',
  'cpu_system',
  'cpu_idle',
  'cpu_num',
  'mem_free',
  'mem_total',
  'bytes_in',
  'bytes_out',
  'vm_count',
  'xen_free_mem',
  'xen_total_mem',
  'vm_cpu_pct',
  'vm_mem_used',
  'vm_mem_max',
  'vm_vcpus_online',
]);

/** One host of one poll: its latest record, and the points of history its graphed metrics add. */
function pollRecord(
  h: GangliaHost,
  polledAt: number,
): { record: HostMetrics; points: { metric: string; at: number; value: number }[] } {
  const metrics: Record<string, StoredMetric> = {};
  const points: { metric: string; at: number; value: number }[] = [];
  let spoofedBy: string | undefined;
  for (const m of Object.values(h.metrics)) {
    const at = polledAt - m.tn * 1000;
    metrics[m.name] = { v: m.value, units: m.units, at };
    if (m.spoofHost) spoofedBy = m.spoofHost;
    if (typeof m.value === 'number' && HISTORY_METRICS.has(m.name)) points.push({ metric: m.name, at, value: m.value });
  }
  const record: HostMetrics = {
    host: h.name,
    ip: h.ip,
    up: h.up,
    reportedAt: h.reported * 1000,
    metrics,
    ...(spoofedBy ? { spoofedBy } : {}),
  };
  return { record, points };
}

export class MetricsStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly historyLength = 720,
  ) {}
  private latestKey(host: string) {
    return `${this.prefix}:metrics:latest:${host}`;
  }
  private histKey(host: string, metric: string) {
    return `${this.prefix}:metrics:hist:${host}:${metric}`;
  }
  private get hostsKey() {
    return `${this.prefix}:metrics:hosts`;
  }

  /** Stores one poll: every host's latest values, and a point of history for the graphed metrics. */
  async store(hosts: GangliaHost[], polledAt = Date.now()): Promise<void> {
    const pipe = this.redis.pipeline();
    for (const h of hosts) {
      const { record, points } = pollRecord(h, polledAt);
      for (const p of points) {
        pipe.lpush(this.histKey(h.name, p.metric), `${p.at} ${p.value}`);
        pipe.ltrim(this.histKey(h.name, p.metric), 0, this.historyLength - 1);
      }
      pipe.set(this.latestKey(h.name), JSON.stringify(record));
      pipe.sadd(this.hostsKey, h.name);
    }
    await pipe.exec();
  }

  async latest(host: string): Promise<HostMetrics | undefined> {
    const v = await this.redis.get(this.latestKey(host));
    return v ? (JSON.parse(v) as HostMetrics) : undefined;
  }

  async all(): Promise<HostMetrics[]> {
    const names = (await this.redis.smembers(this.hostsKey)).sort();
    if (!names.length) return [];
    const vals = await this.redis.mget(names.map((n) => this.latestKey(n)));
    return vals.filter((v): v is string => Boolean(v)).map((v) => JSON.parse(v) as HostMetrics);
  }

  /** Newest first: [epoch ms, value]. */
  async history(host: string, metric: string, n = 120): Promise<[number, number][]> {
    const raw = await this.redis.lrange(this.histKey(host, metric), 0, n - 1);
    return raw.map((r) => {
      const [t, v] = r.split(' ');
      return [Number(t), Number(v)];
    });
  }
}

/** The in-memory twin of MetricsStore (test/state/twins.test.ts holds both to one contract). */
export class MemoryMetricsStore {
  private readonly latestByHost = new Map<string, string>();
  private readonly histories = new Map<string, [number, number][]>();
  constructor(private readonly historyLength = 720) {}

  store(hosts: GangliaHost[], polledAt = Date.now()): Promise<void> {
    for (const h of hosts) {
      const { record, points } = pollRecord(h, polledAt);
      for (const p of points) {
        const key = `${h.name}\n${p.metric}`;
        const list = [[p.at, p.value] as [number, number], ...(this.histories.get(key) ?? [])];
        this.histories.set(key, list.slice(0, this.historyLength));
      }
      this.latestByHost.set(h.name, JSON.stringify(record));
    }
    return Promise.resolve();
  }
  latest(host: string): Promise<HostMetrics | undefined> {
    const v = this.latestByHost.get(host);
    return Promise.resolve(v ? (JSON.parse(v) as HostMetrics) : undefined);
  }
  all(): Promise<HostMetrics[]> {
    const names = [...this.latestByHost.keys()].sort();
    return Promise.resolve(names.map((n) => JSON.parse(this.latestByHost.get(n)!) as HostMetrics));
  }
  history(host: string, metric: string, n = 120): Promise<[number, number][]> {
    return Promise.resolve((this.histories.get(`${host}\n${metric}`) ?? []).slice(0, n));
  }
}
