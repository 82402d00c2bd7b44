// The API's monitoring side: rebalancing on demand and its schedule, manual power confirmation (fencing
// a host without a BMC), a Prometheus /metrics endpoint, and the site dashboard — hosts and VMs with
// their Ganglia history graphed, as the paper's Ganglia pages showed them — at /admin/site.

import { owns } from './ownership.ts';
import { roleAllows } from './auth.ts';
import express from 'express';
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import { confirmManualPower } from '../drivers/power/manual.ts';
import { convergedVersion } from '../services/site-service.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import {
  REBALANCE_DEFAULTS,
  runRebalance,
  scheduleRebalance,
  type RebalanceRequest,
} from '../services/rebalance-service.ts';
import { HISTORY_METRICS } from '../state/metrics-store.ts';
import { COUNTERS, HISTOGRAM_HELP } from '../state/event-metrics-store.ts';

/** Label names of each histogram, in the order they are shown. */
const HISTOGRAM_LABELS: Record<string, string[]> = {
  xsm_job_duration_seconds: ['queue_kind', 'job'],
  xsm_step_duration_seconds: ['workflow', 'step'],
};
import { StaleVersionError } from '../state/site-store.ts';
import type { Role } from './auth.ts';
import { consoleEvents } from './console-events.ts';
import { JOB_STATES } from '../services/inspect.ts';
import { dashboardHtml } from './dashboard-page.ts';
import { input, namePath, rebalanceBody, scheduleBody } from './schemas.ts';

type Guard = (role: Role) => express.RequestHandler;
type Fail = (status: number, code: string, message: string, hint?: string) => Error;

/** The rebalance request a body asks for, with only the fields given; a stop above the act threshold is refused. */
function rebalanceRequest(
  b: {
    dryRun?: boolean;
    mode?: 'performance' | 'density';
    maxMoves?: number;
    actAbove?: number;
    stopBelow?: number;
  },
  fail: Fail,
): RebalanceRequest {
  const act = b.actAbove ?? REBALANCE_DEFAULTS.actAbove;
  const stop = b.stopBelow ?? REBALANCE_DEFAULTS.stopBelow;
  if (stop > act)
    throw fail(
      400,
      'bad-body',
      `stopBelow ${stop} is above actAbove ${act}`,
      'the stop threshold must be <= the act one',
    );
  return {
    ...(b.dryRun !== undefined ? { dryRun: b.dryRun } : {}),
    ...(b.mode !== undefined ? { mode: b.mode } : {}),
    ...(b.maxMoves !== undefined ? { maxMoves: b.maxMoves } : {}),
    ...(b.actAbove !== undefined ? { actAbove: b.actAbove } : {}),
    ...(b.stopBelow !== undefined ? { stopBelow: b.stopBelow } : {}),
  };
}

/** Label names of each event counter, in the order they are shown. */
const COUNTER_LABELS: Record<keyof typeof COUNTERS, string[]> = {
  xsm_jobs_finished_total: ['queue_kind', 'job', 'outcome'],
  xsm_migrations_total: ['mode', 'outcome'],
  xsm_fences_total: ['outcome'],
  xsm_deploys_total: ['outcome'],
  xsm_submits_total: ['kind', 'outcome'],
};

/** A Ganglia metric's Prometheus family: `xsm_ganglia_load_one`, one meaning per family. */
const gangliaFamily = (metric: string) => `xsm_ganglia_${metric.replace(/[^a-zA-Z0-9_]/g, '_')}`;

const MiB = 1024 * 1024;

/** The current, applied and converged site versions. */
function siteVersionGauge(registry: Registry, rt: XsmRuntime): void {
  new Gauge({
    name: 'xsm_site_version',
    help: 'Site file version: current (newest accepted), applied (planned into jobs), converged (all its jobs done)',
    labelNames: ['kind'],
    registers: [registry],
    async collect() {
      this.set({ kind: 'current' }, await rt.sites.currentVersion());
      this.set({ kind: 'applied' }, await rt.sites.appliedVersion());
      this.set({ kind: 'converged' }, await convergedVersion(rt));
    },
  });
}

/** Per host as its agent last reported it, and its failover state. */
function hostGauges(registry: Registry, rt: XsmRuntime): void {
  const hostGauge = (
    name: string,
    help: string,
    value: (h: {
      heartbeatAt: number;
      freeMemMiB: number;
      totalMemMiB: number;
      nrCpus: number;
      domains: unknown[];
    }) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['host'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const h of Object.values((await rt.observed.all()).hosts)) this.set({ host: h.name }, value(h));
      },
    });
  hostGauge(
    'xsm_host_heartbeat_age_seconds',
    'Seconds since the host agent last reported',
    (h) => (Date.now() - h.heartbeatAt) / 1000,
  );
  hostGauge('xsm_host_memory_free_bytes', 'Free memory Xen reports on the host', (h) => h.freeMemMiB * MiB);
  hostGauge('xsm_host_memory_total_bytes', 'Total memory Xen reports on the host', (h) => h.totalMemMiB * MiB);
  hostGauge('xsm_host_cpus', 'Physical CPUs of the host', (h) => h.nrCpus);
  hostGauge('xsm_host_domains', 'Guest domains running on the host', (h) => h.domains.length);
  new Gauge({
    name: 'xsm_host_health',
    help: 'Failover state of each host: 1 for its current state (healthy, suspect, fencing, fenced, fence-failed)',
    labelNames: ['host', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      const health = await rt.failover.allHealth();
      for (const name of Object.keys((await rt.observed.all()).hosts))
        this.set({ host: name, state: health[name]?.state ?? 'healthy' }, 1);
    },
  });
}

/** Per running VM as its host reports it, and whether it runs as the current site version says. */
function vmGauges(registry: Registry, rt: XsmRuntime): void {
  new Gauge({
    name: 'xsm_vm_memory_bytes',
    help: 'Memory of each running VM as its host reports it',
    labelNames: ['vm', 'host'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const h of Object.values((await rt.observed.all()).hosts))
        for (const d of h.domains) this.set({ vm: d.name, host: h.name }, d.memMiB * MiB);
    },
  });
  new Gauge({
    name: 'xsm_vm_vcpus',
    help: 'Online vCPUs of each running VM',
    labelNames: ['vm', 'host'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const h of Object.values((await rt.observed.all()).hosts))
        for (const d of h.domains) this.set({ vm: d.name, host: h.name }, d.vcpus);
    },
  });
  new Gauge({
    name: 'xsm_vm_in_sync',
    help: '1 when the VM runs once, on the host and at the size the current site version says; 0 otherwise',
    labelNames: ['vm'],
    registers: [registry],
    async collect() {
      this.reset();
      const v = await rt.sites.currentVersion();
      if (!v) return;
      const { site } = await rt.sites.load(v);
      const seen = new Map<string, { host: string; memMiB: number; vcpus: number }[]>();
      for (const h of Object.values((await rt.observed.all()).hosts))
        for (const d of h.domains) seen.set(d.name, [...(seen.get(d.name) ?? []), { host: h.name, ...d }]);
      for (const vm of site.vms) {
        const at = seen.get(vm.name) ?? [];
        const ok =
          at.length === 1 && at[0]!.host === vm.host && at[0]!.memMiB === vm.memMiB && at[0]!.vcpus === vm.vcpus;
        this.set({ vm: vm.name }, ok ? 1 : 0);
      }
    },
  });
}

/**
 * One family per Ganglia metric XSM keeps history of (a Dom0's load_one, a VM's vm_cpu_pct spoofed as its
 * own Ganglia host), each with its own meaning, instead of one catch-all family.
 */
function gangliaGauges(registry: Registry, metrics: XsmRuntime['metrics']): void {
  for (const metric of HISTORY_METRICS)
    new Gauge({
      name: gangliaFamily(metric),
      help: `Latest value of the Ganglia metric ${metric}, per Ganglia host (Dom0s and, spoofed, VMs), in Ganglia's units`,
      labelNames: ['host'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const h of await metrics.all()) {
          const m = h.metrics[metric];
          if (typeof m?.v === 'number') this.set({ host: h.host }, m.v);
        }
      },
    });
}

/** Jobs per queue and state, counted at scrape time. */
function jobGauge(registry: Registry, rt: XsmRuntime): void {
  new Gauge({
    name: 'xsm_jobs',
    help: 'Jobs per queue and state, now',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of await rt.allQueues()) {
        const counts = await q.getJobCounts(...JOB_STATES);
        for (const s of JOB_STATES) this.set({ queue: q.name, state: s }, counts[s] ?? 0);
      }
    },
  });
}

/** The event counters, as whichever process counted them stored them. */
function eventCounters(registry: Registry, events: XsmRuntime['events']): void {
  for (const [name, help] of Object.entries(COUNTERS) as [keyof typeof COUNTERS, string][])
    new Counter({
      name,
      help,
      labelNames: COUNTER_LABELS[name],
      registers: [registry],
      async collect() {
        this.reset();
        // In the declared order, so every series of a family prints its labels the same way.
        for (const { labels, value } of await events.counter(name))
          this.inc(Object.fromEntries(COUNTER_LABELS[name].map((l) => [l, labels[l] ?? ''])), value);
      },
    });
}

/** The event histograms: stored cumulative by bucket, so they are handed to prom-client as they are. */
function eventHistograms(registry: Registry, events: XsmRuntime['events']): void {
  for (const [name, help] of Object.entries(HISTOGRAM_HELP))
    registry.registerMetric({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      reset() {},
      async get() {
        const order = HISTOGRAM_LABELS[name] ?? [];
        const values = (await events.histogram(name)).flatMap(({ labels: raw, buckets, sum, count }) => {
          const labels = Object.fromEntries(order.map((l) => [l, raw[l] ?? '']));
          return [
            ...buckets.map(([le, v]) => ({
              labels: { ...labels, le: le === Infinity ? '+Inf' : le },
              value: v,
              metricName: `${name}_bucket`,
            })),
            { labels, value: sum, metricName: `${name}_sum` },
            { labels, value: count, metricName: `${name}_count` },
          ];
        });
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
    } as unknown as Metric);
}

/**
 * The Prometheus registry of one API app, by the book: base units (`_bytes`, `_seconds`), counters ending in
 * `_total` and histograms for what happened (recorded by whichever process did it, kept in Redis:
 * src/state/event-metrics-store.ts), gauges with stable labels for what is. Every value is read from Redis
 * at scrape time, so any API host answers the same. Families print in the order registered here.
 */
export function prometheusRegistry(rt: XsmRuntime): Registry {
  const registry = new Registry();
  siteVersionGauge(registry, rt);
  hostGauges(registry, rt);
  vmGauges(registry, rt);
  gangliaGauges(registry, rt.metrics);
  jobGauge(registry, rt);
  eventCounters(registry, rt.events);
  eventHistograms(registry, rt.events);
  return registry;
}

/** What the dashboard page draws: hosts and VMs with their state and the history of graphed metrics. */
export async function dashboardData(rt: XsmRuntime, points = 120) {
  const metrics = rt.metrics;
  const version = await rt.sites.currentVersion();
  const site = version ? (await rt.sites.load(version)).site : undefined;
  const observed = await rt.observed.all();
  const health = await rt.failover.allHealth();
  const ganglia = new Map((await metrics.all()).map((m) => [m.host, m]));
  const series = async (gangliaHost: string | undefined, names: string[]) => {
    const out: Record<string, [number, number][]> = {};
    if (!gangliaHost || !ganglia.has(gangliaHost)) return out;
    for (const n of names) {
      const h = await metrics.history(gangliaHost, n, points);
      if (h.length) out[n] = h.reverse();
    }
    return out;
  };
  // Each graphed metric's unit as Ganglia reports it (`%`, `MiB`, `bytes/sec`), for the graphs' axes.
  const units = (gangliaHost: string | undefined): Record<string, string> =>
    Object.fromEntries(
      Object.entries(gangliaHost ? (ganglia.get(gangliaHost)?.metrics ?? {}) : {})
        .filter(([n, m]) => HISTORY_METRICS.has(n) && m.units)
        .map(([n, m]) => [n, m.units]),
    );
  const now = Date.now();
  const hostNames = [...new Set([...(site?.hosts.map((h) => h.name) ?? []), ...Object.keys(observed.hosts)])].sort();
  const hosts = await Promise.all(
    hostNames.map(async (name) => {
      const spec = site?.hosts.find((h) => h.name === name);
      const o = observed.hosts[name];
      // gmond names a Dom0 by its hostname or, when spoofed, by address: try both.
      const g = ganglia.has(name) ? name : spec && ganglia.has(spec.address) ? spec.address : undefined;
      return {
        name,
        address: spec?.address,
        maintenance: spec?.maintenance ?? false,
        health: health[name]?.state ?? 'healthy',
        healthDetail: health[name]?.detail,
        heartbeatAgeS: o ? Math.round((now - o.heartbeatAt) / 1000) : null,
        freeMemMiB: o?.freeMemMiB,
        totalMemMiB: o?.totalMemMiB,
        cpus: o?.nrCpus ?? spec?.cpus,
        vms: o?.domains.map((d) => d.name) ?? [],
        units: units(g),
        graphs: await series(g, [
          'load_one',
          'cpu_idle',
          'mem_free',
          'xen_free_mem',
          'vm_count',
          'bytes_in',
          'bytes_out',
        ]),
      };
    }),
  );
  const at = new Map<string, { host: string; memMiB: number; vcpus: number }[]>();
  for (const h of Object.values(observed.hosts))
    for (const d of h.domains) at.set(d.name, [...(at.get(d.name) ?? []), { host: h.name, ...d }]);
  const vms = await Promise.all(
    (site?.vms ?? []).map(async (v) => {
      const seen = at.get(v.name) ?? [];
      const g = ganglia.has(v.name) ? v.name : v.ip !== 'DHCP' && ganglia.has(v.ip) ? v.ip : undefined;
      return {
        name: v.name,
        set: v.set,
        desiredHost: v.host,
        observedHosts: seen.map((s) => s.host),
        // Runs once, where and at the size the current version says (as xsm_vm_in_sync and /api/vms).
        inSync:
          seen.length === 1 && seen[0]!.host === v.host && seen[0]!.memMiB === v.memMiB && seen[0]!.vcpus === v.vcpus,
        memMiB: v.memMiB,
        vcpus: v.vcpus,
        units: units(g),
        graphs: await series(g, ['vm_cpu_pct', 'vm_mem_used', 'vm_vcpus_online']),
      };
    }),
  );
  return { version, converged: await convergedVersion(rt), generatedAt: now, hosts, vms };
}

/** Rebalancing on demand (an operator's moves only VMs of Sets it owns) and its schedule. */
function mountRebalanceRoutes(app: express.Express, rt: XsmRuntime, guard: Guard, fail: Fail): void {
  const json = express.json({ limit: '64kb' });
  app.post('/api/rebalance', guard('operator'), json, async (req, res) => {
    const r = rebalanceRequest(input(rebalanceBody, req.body, 'body') ?? {}, fail);
    try {
      // An operator's rebalance moves only VMs of Sets it owns; an admin's, any.
      const p = req.principal!;
      const current = await rt.sites.currentVersion();
      const site = current ? (await rt.sites.load(current)).site : undefined;
      const owners = new Map((site?.sets ?? []).map((s) => [s.name, s.owner]));
      const out = await runRebalance(rt, r, {
        name: p.name,
        mayMove: (set) => roleAllows(p.role, 'admin') || owns(p, owners.get(set)),
      });
      if (out.version)
        req.auditSets = [...new Set(out.moves.map((m) => site?.vms.find((v) => v.name === m.vm)?.set ?? '?'))];
      res.status(out.version ? 202 : 200).json(out);
    } catch (e) {
      if (e instanceof StaleVersionError) throw fail(409, 'stale-version', e.message, 'run the rebalancer again');
      if (e instanceof Error && /no site version/.test(e.message)) throw fail(409, 'no-site', e.message);
      throw e;
    }
  });
  app.get('/api/rebalance/schedule', guard('viewer'), async (_req, res) => {
    const s = await rt.control().getJobScheduler('rebalance');
    res.json(
      s
        ? {
            everyMinutes: Number(s.every ?? 0) / 60_000,
            next: s.next ? new Date(s.next).toISOString() : null,
            request: s.template?.data ?? {},
          }
        : { everyMinutes: 0 },
    );
  });
  app.put('/api/rebalance/schedule', guard('admin'), json, async (req, res) => {
    const { everyMinutes: every, ...rest } = input(scheduleBody, req.body ?? {}, 'body');
    const r = rebalanceRequest(rest, fail);
    if (every === 0) await rt.control().removeJobScheduler('rebalance');
    else await scheduleRebalance(rt, every * 60_000, r);
    res.json({ everyMinutes: every, request: r });
  });
}

/** Host health as failover has it, and confirming a manual power change (fencing a host without a BMC). */
function mountHostHealthRoutes(app: express.Express, rt: XsmRuntime, guard: Guard, fail: Fail): void {
  app.get('/api/hosts/health', guard('viewer'), async (_req, res) => {
    const health = await rt.failover.allHealth();
    res.json({
      health: Object.fromEntries(
        Object.entries(health).map(([h, s]) => [h, { ...s, since: new Date(s.since).toISOString() }]),
      ),
    });
  });
  app.post('/api/hosts/:name/power/confirm', guard('operator'), async (req, res) => {
    const host = input(namePath, req.params, 'path').name;
    if (!(await confirmManualPower(rt.manualPower, host)))
      throw fail(
        409,
        'nothing-pending',
        `no manual power request is pending for host ${host}`,
        'confirm only what XSM asked for (see xsm jobs)',
      );
    res.json({ host, confirmed: true });
  });
}

/** Prometheus's /metrics and the site dashboard. */
function mountMetricsAndDashboard(app: express.Express, rt: XsmRuntime, guard: Guard): void {
  // Behind a viewer token like the rest: Prometheus sends it with `authorization: {credentials: TOKEN}`.
  const registry = prometheusRegistry(rt);
  app.get('/metrics', guard('viewer'), async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  app.get('/admin/site', guard('viewer'), (_req, res) => {
    res.type('html').send(dashboardHtml);
  });
  app.get('/admin/site/data.json', guard('viewer'), async (req, res) => {
    const points = Math.min(720, Math.max(2, Number(req.query.points ?? 120) || 120));
    // Who is looking: the page offers actions and the job dashboard by role (the routes check again).
    const you = { name: req.principal!.name, role: req.principal!.role };
    res.json({ ...(await dashboardData(rt, points)), you });
  });
  app.get('/admin/site/events', guard('viewer'), consoleEvents(rt));
}

export function mountMonitoringRoutes(app: express.Express, rt: XsmRuntime, guard: Guard, fail: Fail): void {
  mountRebalanceRoutes(app, rt, guard, fail);
  mountHostHealthRoutes(app, rt, guard, fail);
  mountMetricsAndDashboard(app, rt, guard);
}
