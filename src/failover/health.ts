// Host failure detection. A host is suspected when both of its independent signs of life stop: the host
// agent's heartbeat in Redis and its reports to Ganglia (gmond keeps reporting a host whose agent merely
// crashed, and the agent keeps beating for a host whose gmond died). A host still suspected after a
// confirmation window is handed to the failover workflow, which fences it before anything else.
//
// The health record of each host lives in one Redis hash, so any control process can run the check and
// all of them see the same incident; the failover job id is derived from (host, incident), so two
// checkers racing enqueue one job.

import type { XsmRuntime } from '../jobs/runtime.ts';
import { CONTROL_QUEUE } from '../jobs/queues.ts';
import { MetricsStore } from '../state/metrics-store.ts';
import type { Logger } from '../lib/log.ts';

export type HealthState = 'suspect' | 'fencing' | 'fenced' | 'fence-failed';

export interface HostHealth {
  state: HealthState;
  /** Epoch ms of the host's last sign of life (heartbeat or Ganglia report): identifies the incident. */
  incident: number;
  /** Epoch ms at which the host entered this state. */
  since: number;
  detail?: string;
}

export interface FailoverPolicy {
  /** No heartbeat and no Ganglia report for this long: suspect. */
  suspectAfterMs: number;
  /** Suspected for this long more (the confirmation window): fence and fail over. */
  fenceAfterMs: number;
  /**
   * If more than this fraction of the reporting hosts look dead at once, the likelier cause is that this
   * control process lost its view of the site (a network partition, Redis trouble), not that half the
   * rack died: fence nobody and say so.
   */
  maxDeadFraction: number;
}

export const DEFAULT_FAILOVER_POLICY: FailoverPolicy = {
  suspectAfterMs: 30_000,
  fenceAfterMs: 30_000,
  maxDeadFraction: 0.5,
};

export interface FailoverJobData {
  host: string;
  incident: number;
}

export function failoverJobId(host: string, incident: number): string {
  return `failover-${host}-${incident}`;
}

export class HealthStore {
  private readonly key: string;
  constructor(private readonly rt: XsmRuntime) {
    this.key = `${rt.config.prefix}:failover:health`;
  }
  async all(): Promise<Record<string, HostHealth>> {
    const raw = await this.rt.redis.hgetall(this.key);
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, JSON.parse(v) as HostHealth]));
  }
  async get(host: string): Promise<HostHealth | undefined> {
    const v = await this.rt.redis.hget(this.key, host);
    return v ? (JSON.parse(v) as HostHealth) : undefined;
  }
  async set(host: string, h: HostHealth): Promise<void> {
    await this.rt.redis.hset(this.key, host, JSON.stringify(h));
  }
  async clear(host: string): Promise<void> {
    await this.rt.redis.hdel(this.key, host);
  }
}

export interface HealthTransition {
  host: string;
  from?: HealthState;
  to: HealthState | 'healthy';
  detail: string;
}

/** The host's last sign of life: its agent's heartbeat or its last report to Ganglia, by name or address. */
export async function lastSignOfLife(
  rt: XsmRuntime,
  host: { name: string; address: string },
  heartbeatAt: number,
): Promise<number> {
  const metrics = new MetricsStore(rt.redis, rt.config.prefix);
  const seen = await Promise.all([
    metrics.latest(host.name),
    host.address !== host.name ? metrics.latest(host.address) : undefined,
  ]);
  // A host's own gmond reports it; a record spoofed by a Dom0 for one of its VMs says nothing of the host.
  const ganglia = seen.filter((m) => m && !m.spoofedBy && m.up).map((m) => m!.reportedAt);
  return Math.max(heartbeatAt, ...ganglia);
}

/**
 * One pass of failure detection over the current site. Moves hosts between healthy, suspect and fencing
 * and enqueues the failover job of each host whose confirmation window ran out. Returns what changed.
 */
export async function checkHosts(
  rt: XsmRuntime,
  policy: FailoverPolicy = DEFAULT_FAILOVER_POLICY,
  log?: Logger,
  now = Date.now(),
): Promise<HealthTransition[]> {
  const version = await rt.sites.currentVersion();
  if (!version) return [];
  const { site } = await rt.sites.load(version);
  const observed = await rt.observed.all();
  const health = new HealthStore(rt);
  const states = await health.all();
  const out: HealthTransition[] = [];

  const reporting = site.hosts.filter((h) => observed.hosts[h.name]);
  const dead: { name: string; lastSign: number }[] = [];
  for (const host of reporting) {
    const o = observed.hosts[host.name]!;
    const prev = states[host.name];
    if (o.fencedAt) continue; // fenced: stays down until its agent reports again (which clears fencedAt)
    const lastSign = await lastSignOfLife(rt, host, o.heartbeatAt);
    if (now - lastSign < policy.suspectAfterMs) {
      if (prev) {
        await health.clear(host.name);
        out.push({
          host: host.name,
          from: prev.state,
          to: 'healthy',
          detail: `reported again ${now - lastSign} ms ago`,
        });
      }
      continue;
    }
    dead.push({ name: host.name, lastSign });
  }

  if (reporting.length > 1 && dead.length > reporting.length * policy.maxDeadFraction) {
    const detail = `${dead.length} of ${reporting.length} hosts look dead at once; more likely this control process lost its view of the site than the hosts died: fencing nobody (check Redis and the network, or fence by hand)`;
    log?.error('failover held back', { dead: dead.map((d) => d.name).join(','), reporting: reporting.length });
    for (const d of dead) {
      const prev = states[d.name];
      if (!prev || prev.state === 'suspect') {
        await health.set(d.name, { state: 'suspect', incident: d.lastSign, since: prev?.since ?? now, detail });
        if (!prev) out.push({ host: d.name, to: 'suspect', detail });
      }
    }
    return out;
  }

  for (const d of dead) {
    const prev = states[d.name];
    const silentFor = `no heartbeat and no Ganglia report for ${Math.round((now - d.lastSign) / 1000)} s`;
    if (!prev || (prev.state === 'suspect' && prev.incident !== d.lastSign)) {
      await health.set(d.name, { state: 'suspect', incident: d.lastSign, since: now, detail: silentFor });
      out.push({ host: d.name, ...(prev ? { from: prev.state } : {}), to: 'suspect', detail: silentFor });
      log?.warn('host suspected', { host: d.name, detail: silentFor });
      continue;
    }
    if (prev.state === 'suspect' && now - prev.since >= policy.fenceAfterMs) {
      const data: FailoverJobData = { host: d.name, incident: prev.incident };
      await rt.control().add('failover', data, {
        jobId: failoverJobId(d.name, prev.incident),
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { count: 200 },
      });
      await health.set(d.name, { ...prev, state: 'fencing', since: now, detail: `${silentFor}; fencing` });
      out.push({ host: d.name, from: 'suspect', to: 'fencing', detail: silentFor });
      log?.error('host failed: fencing', { host: d.name, detail: silentFor });
    }
    // fencing, fenced, fence-failed: the failover job (or the operator) owns the host now.
  }
  return out;
}

/** Every `everyMs`, a `failover-check` job on the control queue runs checkHosts. */
export async function scheduleFailoverCheck(
  rt: XsmRuntime,
  everyMs: number,
  policy: Partial<FailoverPolicy> = {},
): Promise<void> {
  await rt.queue(CONTROL_QUEUE).upsertJobScheduler(
    'failover-check',
    { every: everyMs },
    {
      name: 'failover-check',
      data: policy,
      opts: { attempts: 1, removeOnComplete: { count: 20 }, removeOnFail: { count: 100 } },
    },
  );
}
