// Ganglia metrics for a simulated site, so the console's graphs have data in the demo and the browser test.
// A real site's path is: the Dom0 agent's publisher (src/ganglia/vm-metrics.ts) -> gmetric -> gmond -> the
// poller -> MetricsStore.store. Here the same publisher reads the simulated hosts, its gmetric packets are
// kept instead of sent, and they are stored as the poller would store what gmond reported; only the wire
// and gmond are left out. The simulated VMs get a slowly varying CPU load, so the lines move.

import type { SimulatedXenHost } from '../drivers/hypervisor/simulated.ts';
import type { GmetricSender, GmetricSpec } from '../ganglia/gmetric.ts';
import { vmMetricsPublisher } from '../ganglia/vm-metrics.ts';
import type { GangliaHost, GangliaMetric } from '../ganglia/xml.ts';
import type { MetricsStore } from '../state/metrics-store.ts';

/** A sender that keeps what it would have sent. */
function keepingSender(): GmetricSender & { taken(): GmetricSpec[] } {
  let kept: GmetricSpec[] = [];
  return {
    async send(metrics) {
      kept.push(...metrics);
    },
    close() {},
    taken() {
      const out = kept;
      kept = [];
      return out;
    },
  };
}

/** gmetric packets as gmond would report them: one Ganglia host per spoofed "ip:name". */
export function asGangliaHosts(specs: GmetricSpec[], sentBy: string, now: number): GangliaHost[] {
  const hosts = new Map<string, GangliaHost>();
  for (const s of specs) {
    const [ip = sentBy, name = sentBy] = (s.spoof ?? `${sentBy}:${sentBy}`).split(':');
    let h = hosts.get(name);
    if (!h) {
      h = { name, ip, reported: Math.floor(now / 1000), tn: 0, tmax: 20, up: true, metrics: {} };
      hosts.set(name, h);
    }
    const m: GangliaMetric = {
      name: s.name,
      value: s.value,
      type: s.type,
      units: s.units ?? '',
      tn: 0,
      tmax: s.tmax ?? 60,
      ...(s.group ? { group: s.group } : {}),
      ...(s.spoof ? { spoofHost: sentBy } : {}),
    };
    h.metrics[s.name] = m;
  }
  return [...hosts.values()];
}

/** A CPU load between about 5 % and 65 % that drifts over minutes, different for every VM. */
function loadOf(vm: string, now: number): number {
  let seed = 0;
  for (const c of vm) seed = (seed * 31 + c.charCodeAt(0)) % 997;
  return 0.35 + 0.25 * Math.sin(now / 47_000 + seed) + 0.05 * Math.sin(now / 7_000 + seed * 3);
}

export interface SimulatedMetricsFeed {
  /** One poll: every host's and VM's metrics, stored as the poller stores them. */
  poll(now?: number): Promise<void>;
  /** Polls every `everyMs` until stopped. */
  start(everyMs: number): void;
  /** Stops polling; resolves once a poll under way has been stored (so cleaning up after it is final). */
  stop(): Promise<void>;
}

export function simulatedMetricsFeed(
  hv: ReadonlyMap<string, SimulatedXenHost>,
  metrics: Pick<MetricsStore, 'store'>,
  addressOf: (host: string) => string = (h) => h,
): SimulatedMetricsFeed {
  const publishers = [...hv].map(([name, host]) => {
    const sender = keepingSender();
    return { name, host, sender, publish: vmMetricsPublisher(host, sender, addressOf(name)) };
  });
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let inFlight: Promise<void> = Promise.resolve();
  const feed: SimulatedMetricsFeed = {
    async poll(now = Date.now()) {
      const hosts: GangliaHost[] = [];
      for (const p of publishers) {
        const guests = (await p.host.list()).filter((d) => d.domid !== 0);
        for (const d of guests) await p.host.setUtilisation(d.name, loadOf(d.name, now));
        await p.publish(now);
        const reported = asGangliaHosts(p.sender.taken(), p.name, now);
        // The Dom0's own gmond: load and idle CPU from what its guests use.
        const dom0 = reported.find((h) => h.name === p.name);
        if (dom0) {
          const info = await p.host.info();
          const busy = guests.reduce((sum, d) => sum + loadOf(d.name, now) * d.vcpus, 0);
          const load = Math.round(busy * 100) / 100;
          const idle = Math.round(Math.max(0, 100 - (busy / Math.max(1, info.nrCpus)) * 100) * 10) / 10;
          const m = (name: string, value: number, units: string): GangliaMetric => ({
            name,
            value,
            type: 'float',
            units,
            tn: 0,
            tmax: 70,
          });
          dom0.metrics.load_one = m('load_one', load, '');
          dom0.metrics.cpu_idle = m('cpu_idle', idle, '%');
        }
        hosts.push(...reported);
      }
      await metrics.store(hosts, now);
    },
    start(everyMs) {
      running = true;
      const next = () => {
        if (running) timer = setTimeout(tick, everyMs);
      };
      const tick = () => {
        inFlight = feed.poll().then(next, next);
      };
      tick();
    },
    async stop() {
      running = false;
      clearTimeout(timer);
      await inFlight;
    },
  };
  return feed;
}
