// Entry point of the deploy worker, on the machine that serves PXE and the images (`tsx workers/deploy.ts`).
// It runs XSM's dnsmasq on the deployment network, the rsync daemon, and consumes the deploy queue.
//   XSM_PXE_INTERFACE (e.g. br-deploy), XSM_PXE_ADDRESS (this machine's address there),
//   XSM_PXE_NETWORK + XSM_PXE_NETMASK (e.g. 10.20.0.0 / 255.255.255.0), XSM_PXE_GATEWAY (optional)
//   XSM_STATE_DIR (default /var/lib/xsm/deploy), XSM_TFTP_ROOT (default /srv/tftp),
//   XSM_IMAGES_DIR (default /var/lib/xsm/images)
//   XSM_DEPLOY_KEY (private key the worker logs in with; its .pub goes into installed hosts;
//   default /etc/xsm/deploy_key)
//   XSM_XEN_ARGS (default "dom0_mem=4096M,max:4096M dom0_max_vcpus=4"), XSM_SWAP_MIB (default 4096)
//   XSM_AGENT_ENV_FILE: extra lines for /etc/xsm/host-agent.env on installed hosts (XSM_REDIS_URL etc.)
//   XSM_CHAIN_RELAY (default "node /usr/lib/xsm/chain-relay.mjs"), XSM_SESSION_WAIT_S (default 60)
//   XSM_MULTICAST_MAX_BITRATE: udp-sender pacing, a little under the slowest link (e.g. 950m on gigabit)
//   XSM_SECRETS_DIR (BMC password files; default /etc/xsm/secrets), XSM_QMP_DIR (default /run/xsm/qmp),
//   XSM_POWER_ALLOW_LOCAL=1 (lab only: BMCs on loopback/link-local addresses)
//   XSM_REDIS_URL, XSM_PREFIX

import { startTracing } from '../src/lib/tracing.ts';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DnsmasqService } from '../src/deploy/dnsmasq.ts';
import { ImageServer } from '../src/deploy/transfer.ts';
import { powerFor } from '../src/drivers/power/select.ts';
import { powerPolicyFromEnv, type PowerPolicy } from '../src/site/power-policy.ts';
import { LocalShell } from '../src/drivers/shell.ts';
import { startHostAgentUnit } from '../src/deploy/host-agent-unit.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { createLogger } from '../src/lib/log.ts';
import { closeWhenReady, redisConfigFromEnv } from '../src/lib/redis.ts';
import { startDeployWorker } from './deploy-lib.ts';

function fail(message: string): never {
  process.stderr.write(`xsm deploy worker: ${message}\n`);
  process.exit(2);
}
const need = (k: string) => process.env[k] || fail(`set ${k}`);

const log = createLogger({ component: 'deploy' });
// Before any queue or worker exists: they take BullMQ's telemetry when they are made.
if (await startTracing('xsm-deploy'))
  log.info('exporting traces over OTLP', { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT });
let powerPolicy: PowerPolicy;
try {
  powerPolicy = powerPolicyFromEnv();
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
const rt = new XsmRuntime(redisConfigFromEnv(), log);
await rt.upgradeQueueData(log).catch((e: unknown) => fail(errorMessage(e)));
const address = need('XSM_PXE_ADDRESS');
// Installed hosts boot Xen from their own disk (GRUB) unless told to keep booting it from this server.
const xenBootFrom = process.env.XSM_XEN_BOOT_FROM ?? 'disk';
if (xenBootFrom !== 'disk' && xenBootFrom !== 'server')
  fail(`XSM_XEN_BOOT_FROM is "${xenBootFrom}"; give disk (GRUB on the host's disk, the default) or server`);
const iface = need('XSM_PXE_INTERFACE');
const stateDir = process.env.XSM_STATE_DIR ?? '/var/lib/xsm/deploy';
const keyPath = process.env.XSM_DEPLOY_KEY ?? '/etc/xsm/deploy_key';
const privateKey = await readFile(keyPath).catch((e: Error) =>
  fail(`cannot read the deploy key ${keyPath}: ${e.message} (make one with ssh-keygen -t ed25519 -N '' -f ${keyPath})`),
);
const publicKey = (await readFile(`${keyPath}.pub`, 'utf8').catch(() => fail(`cannot read ${keyPath}.pub`))).trim();
const agentEnvExtra = process.env.XSM_AGENT_ENV_FILE ? await readFile(process.env.XSM_AGENT_ENV_FILE, 'utf8') : '';
const shell = new LocalShell();

const pxe = new DnsmasqService(
  {
    stateDir: join(stateDir, 'dnsmasq'),
    tftpRoot: process.env.XSM_TFTP_ROOT ?? '/srv/tftp',
    interface: iface,
    serverAddress: address,
    network: need('XSM_PXE_NETWORK'),
    netmask: need('XSM_PXE_NETMASK'),
  },
  log,
);
const images = new ImageServer(
  {
    imagesDir: process.env.XSM_IMAGES_DIR ?? '/var/lib/xsm/images',
    address,
    interface: iface,
    stateDir: join(stateDir, 'rsync'),
    ...(process.env.XSM_MULTICAST_MAX_BITRATE ? { multicastMaxBitrate: process.env.XSM_MULTICAST_MAX_BITRATE } : {}),
  },
  log,
);
await pxe.start().catch((e: Error) => fail(`dnsmasq: ${e.message}`));
await images.start().catch((e: Error) => fail(`rsync daemon: ${e.message}`));

const worker = startDeployWorker({
  rt,
  log,
  pxe,
  images,
  async power(host) {
    const { site } = await rt.sites.load(await rt.sites.currentVersion());
    const spec = site.hosts.find((h) => h.name === host);
    return powerFor(host, spec?.power, { shell, manual: rt.manualPower, policy: powerPolicy });
  },
  ssh: { privateKey, publicKey },
  netmask: need('XSM_PXE_NETMASK'),
  ...(process.env.XSM_PXE_GATEWAY ? { gateway: process.env.XSM_PXE_GATEWAY } : {}),
  bootBaseUrl: `tftp://${address}`,
  xenBoot: {
    xen: 'xen-4.17-amd64',
    xenArgs: process.env.XSM_XEN_ARGS ?? 'dom0_mem=4096M,max:4096M dom0_max_vcpus=4',
    kernel: 'vmlinuz',
    kernelArgs: 'root=LABEL=root ro console=hvc0',
    initrd: 'initrd.img',
  },
  xenBootFrom,
  layout: { swapMiB: Number(process.env.XSM_SWAP_MIB ?? 4096) },
  installerInterface: process.env.XSM_INSTALLER_INTERFACE ?? 'eth0',
  relayCommand: (process.env.XSM_CHAIN_RELAY ?? 'node /usr/lib/xsm/chain-relay.mjs').split(' '),
  chainPort: 7070,
  sessionWaitS: Number(process.env.XSM_SESSION_WAIT_S ?? 60),
  timeouts: { installerMs: 10 * 60_000, bootMs: 10 * 60_000, agentMs: 5 * 60_000 },
  startAgent: (s, data) => startHostAgentUnit(s, data.host, agentEnvExtra),
});
log.info('deploy worker ready', { address, interface: iface });
const stop = async () => {
  await closeWhenReady(worker);
  await pxe.stop();
  await images.stop();
  await rt.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
