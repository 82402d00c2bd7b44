// Entry point of the host agent on a Dom0: `tsx workers/host-agent.ts`. Configuration comes from the
// environment, read and checked once here:
//   XSM_HOST          this host's name in the site file (required)
//   XSM_HYPERVISOR    xl (default: drive the local Xen toolstack) | sim (the simulated Xen host)
//   XSM_SIM_DIR       state directory of the simulated hosts (sim); XSM_SIM_MEM_MIB, XSM_SIM_CPUS size it
//   XSM_CACHE_DIR     where the last applied site file is kept (default /var/lib/xsm)
//   XSM_XEN_CONFIG_DIR  the operator's xl config files (default /etc/xen): a VM's config="NAME" that names
//                     no declared template runs NAME.cfg from here; the agent reports the files it holds
//   XSM_SSH_HOST, XSM_SSH_PORT, XSM_SSH_KEY, XSM_SSH_HOSTKEY: drive a remote Dom0's xl over SSH
//   XSM_GMOND (host:port), XSM_HOST_ADDRESS: publish host and VM metrics to Ganglia via gmetric
//   XSM_LEASE_MS      keep a self-fence lease of this TTL (unset: none); the agent stops every domain when it
//                     could not renew it for half of it (docs/operations.md, "Fencing")
//   XSM_HEARTBEAT_MS, XSM_LOCK_MS, XSM_CONCURRENCY, XSM_REDIS_URL, XSM_PREFIX
//   XSM_MIGRATION_LIMITS  live migrations site-wide/leaving a host/reaching a host (default 4/1/2; the
//                         same on every agent), apart from XSM_CONCURRENCY (jobs of any kind on this host)

import { startTracing } from '../src/lib/tracing.ts';
import { DirSimStore, SimulatedXenHost, provisionSimHost } from '../src/drivers/hypervisor/simulated.ts';
import { XlHypervisor } from '../src/drivers/hypervisor/xl.ts';
import { LocalShell } from '../src/drivers/shell.ts';
import { SshShell } from '../src/drivers/ssh/ssh-shell.ts';
import { parseEndpoint } from '../src/ganglia/client.ts';
import { gmetricSender } from '../src/ganglia/gmetric.ts';
import { vmMetricsPublisher } from '../src/ganglia/vm-metrics.ts';
import type { Hypervisor } from '../src/drivers/hypervisor/hypervisor.ts';
import { createLogger } from '../src/lib/log.ts';
import { redisConfigFromEnv } from '../src/lib/redis.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { checkName } from '../src/site/validate.ts';
import { parseMigrationLimits } from '../src/state/migration-slot-store.ts';
import { startHostAgent } from './host-agent-lib.ts';
import { ShellStorage } from '../src/drivers/storage/shell-storage.ts';
import type { Storage } from '../src/drivers/storage/storage.ts';

function fail(message: string): never {
  process.stderr.write(`xsm host agent: ${message}\n`);
  process.exit(2);
}

function intEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v)) fail(`${name}=${v} is not a whole number`);
  return Number(v);
}

const host = process.env.XSM_HOST ?? fail("set XSM_HOST to this host's name in the site file");
const nameErr = checkName(host, 'XSM_HOST');
if (nameErr) fail(nameErr);
const kind = process.env.XSM_HYPERVISOR ?? 'xl';
if (kind !== 'xl' && kind !== 'sim') fail(`XSM_HYPERVISOR=${kind}: use xl or sim`);
// xl's settings are checked before anything touches Redis: a misconfigured agent is refused whole, it does not
// first upgrade the queues' data or join the site.
const xlOptions = kind === 'xl' ? xlOptionsFromEnv() : undefined;

function xlOptionsFromEnv(): { xenConfigDir: string; createTimeoutMs: number } {
  const xenConfigDir = process.env.XSM_XEN_CONFIG_DIR ?? '/etc/xen';
  if (!/^\/[^\0]*$/.test(xenConfigDir) || xenConfigDir.includes('..'))
    fail(`XSM_XEN_CONFIG_DIR=${xenConfigDir} must be an absolute path without ..`);
  const createTimeoutS = intEnv('XSM_XL_CREATE_TIMEOUT_S', 120);
  if (createTimeoutS < 10)
    fail(`XSM_XL_CREATE_TIMEOUT_S=${createTimeoutS} is under 10 s: xl create could never finish`);
  return { xenConfigDir: xenConfigDir.replace(/\/+$/, '') || '/', createTimeoutMs: createTimeoutS * 1000 };
}
const log = createLogger({ component: 'host-agent', host });
// Before any queue or worker exists: they take BullMQ's telemetry when they are made.
if (await startTracing('xsm-host-agent'))
  log.info('exporting traces over OTLP', { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT });
const rt = new XsmRuntime(redisConfigFromEnv(), log);
await rt.upgradeQueueData(log).catch((e: unknown) => fail(errorMessage(e)));

let hv: Hypervisor;
// VM disks in the site's pools: made, copied and deleted over the same shell as xl. The sim agent has none yet
// (its simulated pools live in one process; a pooled disk then fails saying the agent has no storage driver).
let storage: Storage | undefined;
let peer: ((h: string) => Hypervisor | undefined) | undefined;
if (kind === 'sim') {
  const dir =
    process.env.XSM_SIM_DIR ?? fail("XSM_HYPERVISOR=sim needs XSM_SIM_DIR (the simulated hosts' state directory)");
  const store = new DirSimStore(dir);
  await provisionSimHost(store, {
    name: host,
    totalMemMiB: intEnv('XSM_SIM_MEM_MIB', 16384),
    nrCpus: intEnv('XSM_SIM_CPUS', 8),
    dom0MemMiB: 512,
  });
  const timing = { createMs: intEnv('XSM_SIM_CREATE_MS', 20), createSettleMs: intEnv('XSM_SIM_CREATE_SETTLE_MS', 0) };
  hv = new SimulatedXenHost(store, host, timing);
  peer = (h) => new SimulatedXenHost(store, h, timing);
} else if (xlOptions) {
  // Normally the agent runs on its Dom0 and drives xl locally. XSM_SSH_HOST lets it drive a Dom0 from
  // elsewhere over SSH instead (key XSM_SSH_KEY, pinned host key XSM_SSH_HOSTKEY="SHA256:...").
  const sshHost = process.env.XSM_SSH_HOST;
  const shell = sshHost
    ? new SshShell({
        host: sshHost,
        port: intEnv('XSM_SSH_PORT', 22),
        privateKey: process.env.XSM_SSH_KEY ?? fail('XSM_SSH_HOST needs XSM_SSH_KEY (path of the private key)'),
        hostKeySha256:
          process.env.XSM_SSH_HOSTKEY ??
          fail('XSM_SSH_HOST needs XSM_SSH_HOSTKEY, the pinned host key fingerprint (SHA256:...)'),
      })
    : new LocalShell();
  hv = new XlHypervisor(shell, host, xlOptions);
  storage = new ShellStorage(shell, host);
} else fail(`XSM_HYPERVISOR=${kind}: use xl or sim`);

// XSM_GMOND=host:port: publish host and per-VM metrics to that gmond (its udp_recv_channel);
// XSM_HOST_ADDRESS is the Dom0 address Ganglia shows for it and its VMs.
let publishMetrics: (() => Promise<unknown>) | undefined;
if (process.env.XSM_GMOND) {
  const ep = parseEndpoint(process.env.XSM_GMOND);
  publishMetrics = vmMetricsPublisher(hv, gmetricSender(ep, host), process.env.XSM_HOST_ADDRESS ?? '127.0.0.1');
}

let migrationLimits;
try {
  migrationLimits = parseMigrationLimits(process.env.XSM_MIGRATION_LIMITS ?? '4/1/2');
} catch (e) {
  fail(`XSM_MIGRATION_LIMITS: ${errorMessage(e)}`);
}
const leaseMs = intEnv('XSM_LEASE_MS', 0);
const heartbeatMs = intEnv('XSM_HEARTBEAT_MS', 5000);
// The agent must renew at least twice within the self-fence window, or a single late heartbeat stops every VM.
if (leaseMs && leaseMs < 4 * heartbeatMs)
  fail(
    `XSM_LEASE_MS=${leaseMs} is under four heartbeats (XSM_HEARTBEAT_MS=${heartbeatMs}); use at least ${4 * heartbeatMs}`,
  );
const agent = startHostAgent({
  ...(leaseMs ? { lease: { ttlMs: leaseMs } } : {}),
  migrationLimits,
  publishMetrics,
  rt,
  hv,
  log,
  peer,
  ...(storage ? { storage } : {}),
  concurrency: intEnv('XSM_CONCURRENCY', 4),
  heartbeatMs,
  lockDurationMs: intEnv('XSM_LOCK_MS', 30000),
  cacheDir: process.env.XSM_CACHE_DIR ?? '/var/lib/xsm',
});
log.info('host agent started', { hypervisor: kind });
const stop = async () => {
  await agent.close();
  await rt.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
