// A small XSM site for integration tests: real Redis under a fresh prefix, the control worker, and one
// host agent per simulated host, in this process. Cleans up only its own keys.
import type { MigrationLimits } from '../../src/state/migration-slot-store.ts';
import { randomBytes } from 'node:crypto';
import { QueueEvents } from 'bullmq';
import {
  MemorySimStore,
  SimulatedXenHost,
  provisionSimHost,
  type SimStore,
} from '../../src/drivers/hypervisor/simulated.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { closeWhenReady, deleteKeysByPrefix, redisConfigFromEnv, type RedisConfig } from '../../src/lib/redis.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { startHostAgent, type HostAgent } from '../../workers/host-agent-lib.ts';
import { startControlWorker } from '../../workers/control-lib.ts';
import { convergedVersion } from '../../src/services/site-service.ts';
import { submitSite, type Consent } from '../../src/services/site-service.ts';
import { PAPER_CONFIG_FILES } from '../../src/demo/paper-configs.ts';
import type { ApplyStatus } from '../../src/state/apply-store.ts';
import type { WorkerSupervisor } from '../../src/runtime/worker-supervisor.ts';
import { SimulatedPower } from '../../src/drivers/power/simulated.ts';
import { sitePowerResolver } from '../../src/jobs/failover.ts';
import type { Storage } from '../../src/drivers/storage/storage.ts';
import { SimulatedImageUpdater } from '../../src/services/simulated-image-updater.ts';

export interface TestSite {
  rt: XsmRuntime;
  store: SimStore;
  hv: Map<string, SimulatedXenHost>;
  agents: Map<string, HostAgent>;
  /** The control worker now (replaced by `crashControl`). */
  control: WorkerSupervisor;
  /** What the control worker's rolling upgrades update hosts with: the simulator's reboot. */
  updater: SimulatedImageUpdater;
  startAgent(host: string): void;
  /**
   * Kills the control worker as `kill -9` would (a forced close: its running jobs are abandoned, neither
   * finished nor failed) and starts a fresh one, which takes those jobs over once their locks lapse.
   */
  crashControl(): Promise<void>;
  /** Submits as the API does (planned once, stored with its plan) and enqueues the apply. */
  submitAndApply(
    xml: string,
    base?: number,
    reason?: string,
    opts?: { consent?: Consent; apply?: boolean },
  ): Promise<number>;
  waitConverged(version: number, timeoutMs?: number): Promise<void>;
  /** Waits until the apply of `version` ended (converged, partially-failed or superseded). */
  waitApplyEnded(version: number, timeoutMs?: number): Promise<ApplyStatus>;
  where(): Promise<Record<string, string>>;
  close(): Promise<void>;
}

export function freshPrefix(): string {
  return `xsm-test-${randomBytes(4).toString('hex')}`;
}

export async function deleteKeys(prefix: string, url?: string): Promise<void> {
  await deleteKeysByPrefix({ ...redisConfigFromEnv(), ...(url ? { url } : {}) }, prefix);
}

export async function startTestSite(
  hosts: { name: string; memMiB: number; cpus?: number }[],
  /** redisUrl: another Redis than XSM_REDIS_URL's (a test's own, which it may restart). */
  /** storage: each agent's storage driver, built when the agent starts (absent: agents have none).
   *  redis: sentinels (and their master's name) to reach Redis through instead. */
  opts: {
    store?: SimStore;
    agents?: boolean;
    redisUrl?: string;
    storage?: (host: string) => Storage;
    redis?: Partial<RedisConfig>;
    migrationLimits?: MigrationLimits;
    /** The control worker's job lock (default 30 s; lower: a killed control worker's job is taken over sooner). */
    controlLockMs?: number;
    /** Each agent's cache directory, where it keeps its site copy (absent: agents keep none). */
    cacheDir?: (host: string) => string;
    /** Config files on every Dom0 (default: the paper's apache_svr.cfg and mysql_svr.cfg, as its site needs). */
    configFiles?: readonly { name: string; text: string }[];
  } = {},
): Promise<TestSite> {
  const prefix = freshPrefix();
  const config = { ...redisConfigFromEnv(), ...(opts.redisUrl ? { url: opts.redisUrl } : {}), ...opts.redis, prefix };
  const rt = new XsmRuntime(config, silentLogger);
  const store = opts.store ?? new MemorySimStore();
  const hv = new Map<string, SimulatedXenHost>();
  for (const h of hosts) {
    // Dom0 takes 512 MiB on top of what guests may use, as a real host keeps it aside.
    await provisionSimHost(store, {
      name: h.name,
      totalMemMiB: h.memMiB + 512,
      dom0MemMiB: 512,
      nrCpus: h.cpus ?? 8,
      configFiles: opts.configFiles ?? PAPER_CONFIG_FILES,
    });
    hv.set(h.name, new SimulatedXenHost(store, h.name, { createMs: 5, shutdownMs: 2, migrateMsPerGiB: 10 }));
  }
  const agents = new Map<string, HostAgent>();
  // Fencing: a host the site file gives a <Power> element uses that real driver; the others are
  // simulated hosts whose plug the simulator pulls.
  const sitePower = sitePowerResolver(rt);
  const updater = new SimulatedImageUpdater(rt.deploys, store, {
    stopAgent: async (host) => {
      await agents.get(host)?.close();
      agents.delete(host);
    },
    startAgent: (host) => site.startAgent(host),
  });
  const startControl = () =>
    startControlWorker(rt, silentLogger, {
      power: async (h) => (h.power ? sitePower(h) : new SimulatedPower(hv.get(h.name)!)),
      updater,
      ...(opts.controlLockMs ? { lockDurationMs: opts.controlLockMs } : {}),
    });
  const site: TestSite = {
    rt,
    store,
    hv,
    agents,
    control: startControl(),
    updater,
    async crashControl() {
      const victim = site.control;
      site.control = startControl();
      await victim.close(true);
    },
    startAgent(host) {
      agents.set(
        host,
        startHostAgent({
          rt,
          hv: hv.get(host)!,
          log: silentLogger,
          heartbeatMs: 200,
          lockDurationMs: 4000,
          peer: (h) => hv.get(h),
          ...(opts.storage ? { storage: opts.storage(host) } : {}),
          ...(opts.cacheDir ? { cacheDir: opts.cacheDir(host) } : {}),
          ...(opts.migrationLimits ? { migrationLimits: opts.migrationLimits } : {}),
        }),
      );
    },
    async submitAndApply(xml, base, reason = 'test', o = {}) {
      const b = base ?? (await rt.sites.currentVersion());
      const r = await submitSite(rt, {
        xml,
        file: 'test.xml',
        base: b,
        author: 'test',
        reason,
        consent: o.consent ?? 'operator',
        apply: o.apply ?? true,
      });
      if (r.unchanged) throw new Error(`nothing to submit: the content is version ${r.version}'s`);
      return r.version;
    },
    async waitApplyEnded(version, timeoutMs = 20000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const st = await rt.applies.status(version);
        if (st && st.state !== 'applying') return st;
        if (Date.now() > until) throw new Error(`the apply of version ${version} did not end within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async waitConverged(version, timeoutMs = 20000) {
      const until = Date.now() + timeoutMs;
      while ((await convergedVersion(rt)) < version) {
        if (Date.now() > until) throw new Error(`version ${version} not applied within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async where() {
      const out: Record<string, string> = {};
      for (const name of hv.keys()) {
        const s = await store.read(name);
        for (const d of s?.domains ?? []) out[d.name] = out[d.name] ? `${out[d.name]},${name}` : name;
      }
      return out;
    },
    async close() {
      await Promise.all([...agents.values()].map((a) => a.close()));
      await closeWhenReady(site.control);
      await rt.close();
      await deleteKeysByPrefix(config, prefix);
    },
  };
  if (opts.agents !== false) for (const h of hosts) site.startAgent(h.name);
  return site;
}

export { QueueEvents };
