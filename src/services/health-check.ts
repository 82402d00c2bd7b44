// Host failure detection. A host is suspected when both of its independent signs of life stop: the host
// agent's heartbeat in Redis and its reports to Ganglia (gmond keeps reporting a host whose agent merely
// crashed, and the agent keeps beating for a host whose gmond died). A host still suspected after a
// confirmation window is handed to the failover workflow, which fences it before anything else.
//
// The health record of each host is shared state (src/state/failover-store.ts), so any control process can
// run the check and all of them see the same incident; the failover job id is derived from (host, incident),
// so two checkers racing enqueue one job.

import type { XsmRuntime } from '../runtime/runtime.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { CONTROL_QUEUE, type FailoverJobData, type FailoverPolicy } from '../runtime/queues.ts';
export type { FailoverJobData, FailoverPolicy } from '../runtime/queues.ts';
export type { HealthState, HostHealth } from '../state/failover-store.ts';
import type { HealthState } from '../state/failover-store.ts';
import type { Logger } from '../lib/log.ts';

// 20 s of silence is four missed heartbeats (every 5 s) and no Ganglia report; 20 s more confirms it. With the
// check every 5 s a dead host's VMs run elsewhere within about 45 s (docs/benchmarks.md); the former 30 + 30 s
// with a check every 10 s took over a minute.
export const DEFAULT_FAILOVER_POLICY: FailoverPolicy = {
  suspectAfterMs: 20_000,
  fenceAfterMs: 20_000,
  maxDeadFraction: 0.5,
};

export function failoverJobId(host: string, incident: number): string {
  return `failover-${host}-${incident}`;
}

export interface HealthTransition {
  host: string;
  from?: HealthState;
  to: HealthState | 'healthy';
  detail: string;
}

/** The host's last sign of life: its agent's heartbeat or its last report to Ganglia, by name or address. */
export async function lastSignOfLife(
  rt: ServiceRuntime,
  host: { name: string; address: string },
  heartbeatAt: number,
): Promise<number> {
  const seen = await Promise.all([
    rt.metrics.latest(host.name),
    host.address !== host.name ? rt.metrics.latest(host.address) : undefined,
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
  rt: ServiceRuntime,
  policy: FailoverPolicy = DEFAULT_FAILOVER_POLICY,
  log?: Logger,
  now = Date.now(),
): Promise<HealthTransition[]> {
  const version = await rt.sites.currentVersion();
  if (!version) return [];
  const { site } = await rt.sites.load(version);
  const observed = await rt.observed.all();
  const states = await rt.failover.allHealth();
  const out: HealthTransition[] = [];

  const reporting = site.hosts.filter((h) => observed.hosts[h.name]);
  const dead: { name: string; lastSign: number }[] = [];
  for (const host of reporting) {
    const o = observed.hosts[host.name]!;
    const prev = states[host.name];
    if (o.fencedAt) continue; // fenced: stays down until its agent reports again (which clears fencedAt)
    // In maintenance with no VM of the site: nothing to fail over, and a rolling upgrade may be rebooting
    // it; fencing it would cut the power mid-update.
    if (host.maintenance && !site.vms.some((v) => v.host === host.name)) {
      if (prev?.state === 'suspect') await rt.failover.clearHealth(host.name);
      continue;
    }
    const lastSign = await lastSignOfLife(rt, host, o.heartbeatAt);
    if (now - lastSign < policy.suspectAfterMs) {
      if (prev) {
        await rt.failover.clearHealth(host.name);
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
        await rt.failover.setHealth(d.name, {
          state: 'suspect',
          incident: d.lastSign,
          since: prev?.since ?? now,
          detail,
        });
        if (!prev) {
          out.push({ host: d.name, to: 'suspect', detail });
          // The alert: /metrics counts each host the storm guard kept from being fenced.
          rt.events.count('xsm_fences_total', { outcome: 'held-back' });
        }
      }
    }
    return out;
  }

  for (const d of dead) {
    const prev = states[d.name];
    const silentFor = `no heartbeat and no Ganglia report for ${Math.round((now - d.lastSign) / 1000)} s`;
    if (!prev || (prev.state === 'suspect' && prev.incident !== d.lastSign)) {
      await rt.failover.setHealth(d.name, { state: 'suspect', incident: d.lastSign, since: now, detail: silentFor });
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
      await rt.failover.setHealth(d.name, { ...prev, state: 'fencing', since: now, detail: `${silentFor}; fencing` });
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
