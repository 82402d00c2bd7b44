// The Ganglia poller: reads gmond/gmetad XML from each configured endpoint every interval and stores
// the latest values and history in Redis. One endpoint failing is logged and retried next round; the
// others are still stored.

import type { Logger } from '../src/lib/log.ts';
import { fetchGangliaXml, type GangliaEndpoint } from '../src/ganglia/client.ts';
import { parseGangliaXml } from '../src/ganglia/xml.ts';
import type { MetricsStore } from '../src/state/metrics-store.ts';

export interface PollResult {
  endpoint: string;
  hosts?: number;
  ms: number;
  error?: string;
}

export async function pollOnce(endpoints: GangliaEndpoint[], store: MetricsStore, log: Logger): Promise<PollResult[]> {
  return Promise.all(
    endpoints.map(async (ep) => {
      const where = `${ep.host}:${ep.port}`;
      const t0 = Date.now();
      try {
        const dump = parseGangliaXml(await fetchGangliaXml(ep), `ganglia ${where}`);
        const hosts = dump.clusters.flatMap((c) => c.hosts);
        await store.store(hosts);
        return { endpoint: where, hosts: hosts.length, ms: Date.now() - t0 };
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        log.warn('ganglia poll failed', { endpoint: where, error });
        return { endpoint: where, ms: Date.now() - t0, error };
      }
    }),
  );
}

export function startGangliaPoller(
  endpoints: GangliaEndpoint[],
  store: MetricsStore,
  log: Logger,
  intervalMs = 15000,
): { close: () => Promise<void>; pollNow: () => Promise<PollResult[]> } {
  let running: Promise<PollResult[]> | undefined;
  const pollNow = () => (running ??= pollOnce(endpoints, store, log).finally(() => (running = undefined)));
  void pollNow();
  const timer = setInterval(() => void pollNow(), intervalMs);
  return {
    pollNow,
    close: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
