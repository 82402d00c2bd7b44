// XSM deploys bare qemu machines as Xen hosts and runs a guest across them, end to end, with nothing
// simulated: qemu machines (TCG; see shared/lab/NOTES.md) on a bridge this script creates, powered
// through QMP; XSM's own dnsmasq answers their PXE ROM (iPXE) by DHCP + TFTP; XSM's deploy jobs boot the
// installer, partition the disk, write the Dom0 image (udpcast multicast, or rsync), configure it and
// boot Debian's Xen 4.17 from it (iPXE multiboot: Xen + Dom0 kernel + the boot initramfs, root on the
// disk), then verify `xl info` over SSH with the host key they made. One host agent per Dom0 drives
// its real `xl` over SSH (the agent runs on this machine: Node under TCG would take minutes to start).
// Then three (or four) site-file versions go through XSM's apply path: create a tiny PVH guest,
// reconfigure it live, live-migrate it to the other Dom0 with `xl migrate`, remove it. The agents publish
// the guest's metrics by gmetric to each Dom0's real gmond, read back from its XML.
//
//   scripts/xen-lab-artifacts && scripts/xen-lab-deploy-artifacts
//   npx tsx test/xen-lab/qemu-deploy.mts [--hosts N] [--short] [--method multicast|unicast] [--out DIR]
//
// --short (what CI runs): one machine, deploy only (PXE -> installer -> image -> Xen -> xl info -> agent
// joins). Needs root (bridge, taps), Redis (XSM_REDIS_URL), qemu-system-x86 and dnsmasq, rsync, udpcast.
// Env: XSM_XEN_LAB_DIR (artifacts, default /var/tmp/xsm-xen-lab), XSM_QLAB_TIMEOUT_S (whole run,
// default 1500; 600 with --short). Writes run.log, phases.txt, the xl transcripts, each machine's
// serial console and the gmond XML into --out (default test/xen-lab/results/qemu-deploy).
// Exit: 0 every phase passed; 1 a phase failed (the log says which and why); 2 setup missing;
// 77 qemu cannot run here (the reason is printed).

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DnsmasqService } from '../../src/deploy/dnsmasq.ts';
import { enqueueDeploy } from '../../src/services/deploy-service.ts';
import { DEPLOY_QUEUE } from '../../src/runtime/queues.ts';
import { readManifest } from '../../src/deploy/image.ts';
import { ImageServer, type TransferMethod } from '../../src/deploy/transfer.ts';
import { heldSize, type Hypervisor } from '../../src/drivers/hypervisor/hypervisor.ts';
import { parseXlList } from '../../src/drivers/hypervisor/xl-parse.ts';
import { XlHypervisor } from '../../src/drivers/hypervisor/xl.ts';
import { powerFor } from '../../src/drivers/power/select.ts';
import { LocalShell, runChecked } from '../../src/drivers/shell.ts';
import { shellQuote, SshShell } from '../../src/drivers/ssh/ssh-shell.ts';
import { fetchGangliaXml } from '../../src/ganglia/client.ts';
import { gmetricSender } from '../../src/ganglia/gmetric.ts';
import { vmMetricsPublisher } from '../../src/ganglia/vm-metrics.ts';
import { parseGangliaXml } from '../../src/ganglia/xml.ts';
import { convergedVersion, storedPlan } from '../../src/services/site-service.ts';
import { submitSite } from '../../src/services/site-service.ts';
import { listJobs, type JobView } from '../../src/services/inspect.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { closeWhenReady, redisConfigFromEnv } from '../../src/lib/redis.ts';
import type { DeployEnv } from '../../workflows/deploy-host.ts';
import { startControlWorker } from '../../workers/control-lib.ts';
import { startDeployWorker } from '../../workers/deploy-lib.ts';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { deleteKeys } from '../integration/harness.ts';
import { RecordingShell, transcript } from './recording-shell.ts';
import { closeWithin, labCleanup, onFirstSigint, runLog, secs, tinyGuestSite, TINY_GUEST } from './lab-common.ts';
import { labQemuNice, qemuArgs } from './qemu-machine.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const short = argv.includes('--short');
const nHosts = short ? 1 : Number(opt('--hosts') ?? 2);
const method = (opt('--method') ?? 'multicast') as TransferMethod;
const out = resolve(opt('--out') ?? join(repo, 'test/xen-lab/results/qemu-deploy'));
const lab = process.env.XSM_XEN_LAB_DIR ?? '/var/tmp/xsm-xen-lab';
const art = join(lab, 'deploy');
const timeoutS = Number(process.env.XSM_QLAB_TIMEOUT_S ?? (short ? 600 : 1500));
const VM = TINY_GUEST;
// Two vCPUs per machine, as scripts/xen-lab-boot. With --smp 1 both Dom0s died at once in the initramfs
// (busybox: "trap invalid opcode ... in libc.so.6"); with two, the Dom0's userspace is corrupted now and
// then (xl aborting on a pthread assertion, xenstored gone, a read error on stdin): fixtures/real/README.md.
const smp = Number(opt('--smp') ?? 2);

// --- The run log: XSM's structured lines and this script's own, in order, on stderr and in run.log.
const { lines: logLines, t0, say, log } = runLog('qemu-lab');
function setupFailed(code: number, why: string): never {
  process.stdout.write(`${why}\n`);
  process.exit(code);
}

// --- Can this run here at all?
if (process.getuid?.() !== 0) setupFailed(2, 'qemu-deploy: run as root (it creates a bridge and tap devices)');
const qemu = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim();
if (!qemu) setupFailed(77, 'qemu cannot run here: qemu-system-x86_64 not found (Debian package qemu-system-x86)');
for (const f of [
  'tftp/xen-4.17-amd64',
  'tftp/vmlinuz',
  'tftp/initrd.img',
  'tftp/installer/vmlinuz',
  'tftp/installer/initrd-base.img',
  'images/dom0-qemu.json',
])
  if (!existsSync(join(art, f)))
    setupFailed(
      2,
      `qemu-deploy: ${join(art, f)} is missing: run scripts/xen-lab-artifacts && scripts/xen-lab-deploy-artifacts`,
    );
for (const tool of ['dnsmasq', 'rsync', 'udp-sender', 'ip', 'cpio'])
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    setupFailed(2, `qemu-deploy: ${tool} is missing (scripts/setup installs it)`);
const probe = spawnSync(
  qemu,
  [
    '-accel',
    'tcg',
    '-machine',
    'q35',
    '-display',
    'none',
    '-S',
    '-monitor',
    'none',
    '-serial',
    'none',
    '-no-reboot',
    '-qmp',
    'stdio',
  ],
  { input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n', encoding: 'utf8', timeout: 30000 },
);
if (probe.status !== 0)
  setupFailed(
    77,
    `qemu cannot run here: ${qemu} -accel tcg -machine q35 exited ${probe.status ?? probe.signal}: ${(probe.stderr || probe.error?.message || '').trim().slice(0, 300)}`,
  );

// --- The lab network: a bridge with XSM's server address, one tap per machine.
const id = randomBytes(2).toString('hex');
const net = 100 + (parseInt(id, 16) % 150);
const bridge = `xq${id}`;
const server = `10.214.${net}.1`;
const work = join(tmpdir(), `xsm-qlab-${id}`);
const disks = join('/dev/shm', `xsm-qlab-${id}`);
mkdirSync(out, { recursive: true });
mkdirSync(join(work, 'tftp/installer'), { recursive: true });
mkdirSync(disks, { recursive: true });
const sh = (line: string) => execFileSync('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

interface Machine {
  name: string;
  mac: string;
  address: string;
  tap: string;
  qmp: string;
  serial: string;
  disk: string;
  proc?: ChildProcess;
}
// The site file's <Power driver="qmp"> sockets live in this run's directory: XSM confines QMP to XSM_QMP_DIR.
process.env.XSM_QMP_DIR = work;
const machines: Machine[] = Array.from({ length: nHosts }, (_, i) => ({
  name: `qhost${i + 1}`,
  mac: `52:54:00:5a:${id.slice(0, 2)}:${(0x10 + i).toString(16)}`,
  address: `10.214.${net}.${11 + i}`,
  tap: `${bridge}t${i + 1}`,
  qmp: join(work, `qhost${i + 1}.qmp`),
  serial: join(work, `qhost${i + 1}-serial.log`),
  disk: join(disks, `qhost${i + 1}.img`),
}));

const { cleanups, cleanup } = labCleanup(say);
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));
// A crash must not leave machines, taps and the bridge behind.
process.on('uncaughtException', (e) => {
  say(`uncaught: ${e.stack ?? e.message}`);
  void cleanup().then(() => {
    writeFileSync(join(out, 'run.log'), logLines.join('\n') + '\n');
    process.exit(1);
  });
});

sh(
  `ip link add ${bridge} type bridge stp_state 0 forward_delay 0 mcast_snooping 0 && ip addr add ${server}/24 brd + dev ${bridge} && ip link set ${bridge} up`,
);
cleanups.push(() => void spawnSync('ip', ['link', 'del', bridge]));
for (const m of machines) {
  sh(`ip tuntap add dev ${m.tap} mode tap && ip link set ${m.tap} master ${bridge} && ip link set ${m.tap} up`);
  cleanups.push(() => void spawnSync('ip', ['link', 'del', m.tap]));
}
cleanups.push(() => rmSync(disks, { recursive: true, force: true }));
say(
  `lab: bridge ${bridge} ${server}/24, machines ${machines.map((m) => `${m.name} ${m.mac} -> ${m.address}`).join(', ')}`,
);

// --- What XSM serves: the boot files, and the installer with the deploy worker's key appended as a cpio
// (how a site bakes its deploy key into its installer).
const keyPath = join(work, 'deploy_key');
sh(`ssh-keygen -q -t ed25519 -N '' -C xsm-qemu-lab-deploy -f ${keyPath}`);
const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
for (const f of ['xen-4.17-amd64', 'vmlinuz', 'initrd.img', 'installer/vmlinuz'])
  copyFileSync(join(art, 'tftp', f), join(work, 'tftp', f));
sh(`set -e; d=${work}/ak; mkdir -p $d/root/.ssh; cp ${keyPath}.pub $d/root/.ssh/authorized_keys; chmod 700 $d/root $d/root/.ssh; chmod 600 $d/root/.ssh/authorized_keys
  (cd $d && find . | cpio -o -H newc --quiet | gzip -1) > ${work}/ak.cpio.gz
  cat ${art}/tftp/installer/initrd-base.img ${work}/ak.cpio.gz > ${work}/tftp/installer/initrd.img; chmod -R a+rX ${work}/tftp`);
const imagesDir = join(art, 'images');
const image = await readManifest(imagesDir, 'dom0-qemu');

// --- XSM: a fresh Redis prefix, the site file naming the machines and their QMP power, the workers.
const prefix = `xsm-qlab-${id}`;
const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
cleanups.push(async () => {
  await rt.close();
  await deleteKeys(prefix);
});
const pxe = new DnsmasqService(
  {
    stateDir: join(work, 'pxe'),
    tftpRoot: join(work, 'tftp'),
    interface: bridge,
    serverAddress: server,
    network: `10.214.${net}.0`,
    netmask: '255.255.255.0',
  },
  log.child({ component: 'dnsmasq' }),
);
await pxe.start();
cleanups.push(() => pxe.stop());
const images = new ImageServer(
  {
    imagesDir,
    address: server,
    interface: bridge,
    rsyncPort: 8873,
    stateDir: join(work, 'rsync'),
    multicastMaxBitrate: process.env.XSM_MULTICAST_MAX_BITRATE ?? '50m',
  },
  log.child({ component: 'images' }),
);
await images.start();
cleanups.push(() => images.stop());

function siteXml(vm?: { host: string; mem: number; vcpus: number }): string {
  const hosts = machines
    .map(
      (m) =>
        `    <Host name="${m.name}" address="${m.address}" mac="${m.mac}" cpus="2" memory="1023">\n      <Power driver="qmp" address="${m.qmp}"/>\n    </Host>`,
    )
    .join('\n');
  return tinyGuestSite(hosts, vm && { ...vm, hwaddr: '00:16:3e:5a:00:02', owner: 'xsm qemu lab' });
}

// The machines: bare, powered off (-S), booting from the network; QMP is their BMC.
for (const m of machines) {
  sh(`truncate -s 2G ${m.disk}`);
  const args = qemuArgs({ ...m, smp, memMiB: 2048 });
  writeFileSync(join(out, `${m.name}-qemu-command.txt`), [qemu, ...args].map((a) => shellQuote(a)).join(' ') + '\n');
  m.proc = spawn('nice', ['-n', String(labQemuNice()), qemu, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  m.proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  m.proc.on('exit', (code, sig) =>
    say(`${m.name}: qemu exited ${code ?? sig}${err.trim() ? `: ${err.trim().slice(0, 300)}` : ''}`),
  );
  cleanups.push(() => {
    m.proc?.kill('SIGKILL');
    try {
      const text = readFileSync(m.serial, 'latin1').replaceAll('\r', '');
      writeFileSync(join(out, `${m.name}-serial.log`), text);
    } catch {
      /* never started */
    }
  });
}
for (const m of machines) {
  for (let i = 0; !existsSync(m.qmp); i++) {
    if (i > 100 || m.proc?.exitCode !== null)
      setupFailed(77, `qemu cannot run here: ${m.name}'s qemu did not open its QMP socket`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const agents = new Map<
  string,
  { hv: XlHypervisor; shell: RecordingShell; ssh: SshShell; agent: { close(): Promise<void> } }
>();
const agentCache = join(work, 'agent-cache');
const peer = (host: string): Hypervisor | undefined => agents.get(host)?.hv;
const env: DeployEnv = {
  rt,
  log: log.child({ component: 'deploy' }),
  pxe,
  images,
  async power(host) {
    // As the deploy worker does: the site file's <Power> names the driver (QMP here).
    const { site } = await rt.sites.load(await rt.sites.currentVersion());
    return powerFor(host, site.hosts.find((h) => h.name === host)?.power, {
      shell: new LocalShell(),
      manual: rt.manualPower,
    });
  },
  ssh: { privateKey: readFileSync(keyPath), publicKey },
  netmask: '255.255.255.0',
  bootBaseUrl: `tftp://${server}`,
  // The lab's proven Xen line (scripts/xen-lab-boot): a PVH Dom0 on shadow paging, an IOMMU.
  xenBoot: {
    xen: 'xen-4.17-amd64',
    xenArgs:
      'console=com1 com1=115200,8n1 dom0=pvh,shadow dom0_mem=1024M,max:1024M iommu=1 loglvl=all guest_loglvl=all noreboot',
    kernel: 'vmlinuz',
    kernelArgs: 'root=LABEL=root console=hvc0 earlyprintk=xen',
    initrd: 'initrd.img',
  },
  // The lab's installer initramfs has no grub-install yet: its Dom0s boot Xen from the deploy server.
  xenBootFrom: 'server',
  layout: { swapMiB: 8 },
  installerInterface: 'eth0',
  relayCommand: ['false'],
  chainPort: 7070,
  sessionWaitS: 120,
  timeouts: { installerMs: 5 * 60_000, bootMs: 10 * 60_000, agentMs: 3 * 60_000 },
  async startAgent(installed, data) {
    // A slow heartbeat: each is a few `xl` processes in a Dom0 whose userspace the emulation corrupts
    // now and then (results/README.md); fewer processes, fewer chances. Jobs report state after each job.
    // What the systemd unit does on a real Dom0, from here: the agent for this host, driving its xl over
    // SSH with the host key XSM recorded, publishing to its gmond.
    await runChecked(installed, 'xl', ['list']);
    if (agents.has(data.host)) return;
    const hostKey = (await rt.deploys.field(data.host, 'hostKey'))!;
    const ssh = new SshShell({
      host: data.address,
      privateKey: readFileSync(keyPath),
      hostKeySha256: hostKey,
      readyTimeoutMs: 30000,
    });
    const shell = new RecordingShell(ssh);
    const hv = new XlHypervisor(shell, data.host);
    const publishMetrics = vmMetricsPublisher(
      hv,
      gmetricSender({ host: data.address, port: 8649 }, data.host),
      data.address,
    );
    const agent = startHostAgent({
      rt,
      hv,
      log: log.child({ component: 'host-agent', host: data.host }),
      peer,
      publishMetrics,
      heartbeatMs: 45000,
      lockDurationMs: 60000,
      concurrency: 2,
      cacheDir: join(agentCache, data.host),
    });
    agents.set(data.host, { hv, shell, ssh, agent });
  },
};
const deployWorker = startDeployWorker(env, { lockDurationMs: 60000 });
const control = startControlWorker(rt, log.child({ component: 'control' }));
cleanups.push(async () => {
  await closeWithin('the deploy worker', () => closeWhenReady(deployWorker), 15000, say);
  await closeWithin('the control worker', () => closeWhenReady(control), 15000, say);
  for (const [host, a] of agents) {
    writeFileSync(join(out, `${host}-xl-transcript.txt`), transcript(a.shell.calls));
    // An agent closes once its running job ends, which a hung `xl` on a broken Dom0 never does.
    await closeWithin(`${host}'s agent`, () => a.agent.close(), 15000, say);
    await a.ssh.close();
  }
});

const phases: { phase: string; ms: number; result: string }[] = [];
/** phases.txt and run.log, as they stand (also when the run is interrupted). */
function writeResults(): void {
  const table = [
    `# XSM deploys qemu machines and runs a guest on them: ${new Date().toISOString()}; ${nHosts} machine(s), ${method}${short ? ', --short' : ''}`,
    `# image ${image.name}: ${image.bytes} bytes, sha256 ${image.sha256}; ${image.description}`,
    `${'phase'.padEnd(18)} ${'seconds'.padStart(8)}  result`,
    ...phases.map((p) => `${p.phase.padEnd(18)} ${secs(p.ms).padStart(8)}  ${p.result}`),
  ].join('\n');
  say(`phase timings:\n${table}`);
  writeFileSync(join(out, 'phases.txt'), table + '\n');
  writeFileSync(join(out, 'run.log'), logLines.join('\n') + '\n');
}
onFirstSigint(() => {
  phases.push({
    phase: 'interrupted',
    ms: Date.now() - t0,
    result: 'stopped by SIGINT; the phases above are what had finished',
  });
  writeResults();
  void cleanup().then(() => process.exit(130));
});
let failed = false;
const deadline = t0 + timeoutS * 1000;
const timeLeft = () => Math.max(0, deadline - Date.now());

/** Follows jobs until `done` says so, a job fails for good, or the time is up; logs every change. */
async function follow(
  label: string,
  jobs: () => Promise<JobView[]>,
  done: () => Promise<boolean>,
  limitMs: number,
): Promise<{ ok: boolean; why?: string; steps: Map<string, number> }> {
  const start = Date.now();
  // Fixed when it starts: compared with the time left as it shrinks, a phase got half its share (the
  // storage proof's run 1 lost 76 s of its create that way).
  const until = start + Math.min(limitMs, timeLeft());
  const seen = new Map<string, string>();
  const steps = new Map<string, number>();
  for (;;) {
    for (const j of await jobs()) {
      const p = j.progress as { step?: string; message?: string; percent?: number } | undefined;
      const key = `${j.queue}/${j.id}`;
      // BullMQ keeps a retried job's last error: shown while it waits to retry, and when it failed for good.
      const why = j.failedReason && (j.state === 'failed' || j.state === 'delayed') ? `: ${j.failedReason}` : '';
      const desc = `${j.state}${p?.step ? ` step ${p.step}` : ''}${p?.message ? ` (${p.message})` : ''}${j.attemptsMade ? ` attempts ${j.attemptsMade}` : ''}${why}`;
      if (p?.step && !steps.has(`${j.id} ${p.step}`)) steps.set(`${j.id} ${p.step}`, Date.now() - start);
      if (seen.get(key) !== desc) {
        seen.set(key, desc);
        say(`${label}: ${key}: ${desc}`);
      }
      if (j.state === 'failed') return { ok: false, why: `${key} failed: ${j.failedReason}`, steps };
    }
    if (await done()) return { ok: true, steps };
    if (Date.now() > until) return { ok: false, why: `not done within ${secs(until - start)} s`, steps };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function xlListOn(host: string, label: string) {
  const a = agents.get(host);
  if (!a) return undefined;
  const r = await a.shell.run('xl', ['list'], { timeoutMs: 60000 });
  say(
    `xl list on ${host} (${label}), exit ${r.code}:\n${r.stdout.trimEnd()}${r.stderr.trim() ? `\nstderr: ${r.stderr.trim()}` : ''}`,
  );
  return r.code === 0 ? (parseXlList(r.stdout).find((d) => d.name === VM) ?? null) : undefined;
}

/** A site version through XSM's apply path, then `xl list` on the hosts until the guest shows it. */
async function applyPhase(
  name: string,
  xml: string,
  limitMs: number,
  check: () => Promise<string | undefined>,
): Promise<boolean> {
  say(`=== phase ${name} ===`);
  const start = Date.now();
  const base = await rt.sites.currentVersion();
  // As the API does: planned once and stored with its plan; the lab consents as its operator would.
  const submitted = await submitSite(rt, {
    xml,
    file: `site-${name}.xml`,
    base,
    author: 'qemu-lab',
    reason: name,
    consent: 'operator',
    apply: true,
  });
  const version = submitted.version;
  writeFileSync(join(out, `site-v${version}-${name}.xml`), xml);
  let planned = false;
  const r = await follow(
    name,
    async () => {
      if (!planned) {
        const plan = await storedPlan(rt, version);
        if (plan) {
          planned = true;
          say(
            `${name}: plan v${version}: ${JSON.stringify(plan.actions.map((a) => ({ kind: a.kind, vm: a.vm, reason: a.reason, ...('mode' in a ? { mode: a.mode } : {}) })))}`,
          );
        }
      }
      return (await listJobs(rt, { limit: 100 })).filter((j) => j.version === version);
    },
    async () => (await convergedVersion(rt)) >= version,
    limitMs,
  );
  const ms = Date.now() - start;
  let problem = r.ok ? await check() : r.why;
  // Xen's view may lag the job's last step by a heartbeat under emulation: look again for up to 60 s.
  for (const until = Date.now() + 60_000; r.ok && problem && Date.now() < until;) {
    await new Promise((res) => setTimeout(res, 5000));
    problem = await check();
  }
  phases.push({ phase: name, ms, result: problem ? `FAILED: ${problem}` : `ok (site v${version})` });
  if (problem) say(`${name}: FAILED: ${problem}`);
  return !problem;
}

/** The guest as the Dom0's gmond reports it (the agent's gmetric packets, spoofed as host "tiny"). */
async function gmondShows(host: Machine, label: string): Promise<string | undefined> {
  for (const until = Date.now() + 120_000; ;) {
    try {
      const xml = await fetchGangliaXml({ host: host.address, port: 8649 }, { timeoutMs: 20000 });
      writeFileSync(join(out, `gmond-${host.name}-${label}.xml`), xml);
      const dump = parseGangliaXml(xml, `gmond ${host.address}`);
      const guest = dump.clusters.flatMap((c) => c.hosts).find((h) => h.name === VM);
      const dom0 = dump.clusters.flatMap((c) => c.hosts).find((h) => h.metrics.vm_count);
      if (guest?.metrics.vm_cpu_time) {
        say(
          `gmond on ${host.name} (${label}): cluster ${dump.clusters[0]?.name}, ${dump.clusters.flatMap((c) => c.hosts).length} hosts; ${VM}: ${Object.keys(guest.metrics).length} metrics, vm_cpu_time ${guest.metrics.vm_cpu_time.value} s, reported ${Math.round(Date.now() / 1000 - guest.reported)} s ago; Dom0 vm_count ${dom0?.metrics.vm_count?.value}, load_one ${dump.clusters.flatMap((c) => c.hosts).find((h) => h.metrics.load_one)?.metrics.load_one?.value}`,
        );
        return undefined;
      }
      if (Date.now() > until)
        return `gmond on ${host.name} has no metrics for ${VM} (hosts: ${dump.clusters
          .flatMap((c) => c.hosts)
          .map((h) => h.name)
          .join(', ')})`;
    } catch (e) {
      if (Date.now() > until) return `gmond on ${host.name}: ${e instanceof Error ? e.message : String(e)}`;
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}

try {
  // --- Phase: deploy every machine at once, one session.
  await rt.sites.submit(siteXml(), { base: 0, author: 'qemu-lab', reason: 'lab machines' });
  say(
    `=== phase deploy (${nHosts} machine${nHosts > 1 ? 's' : ''}, ${method}, image ${image.name}: ${(image.bytes / 2 ** 20).toFixed(0)} MiB, sha256 ${image.sha256.slice(0, 12)}) ===`,
  );
  const deployStart = Date.now();
  const req = await enqueueDeploy(rt, imagesDir, { macs: machines.map((m) => m.mac), method, image: 'dom0-qemu' });
  const ids = new Set(req.jobs.map((j) => j.jobId));
  const d = await follow(
    'deploy',
    async () => (await listJobs(rt, { limit: 100, queue: DEPLOY_QUEUE })).filter((j) => ids.has(j.id)),
    async () => {
      const js = (await listJobs(rt, { limit: 100, queue: DEPLOY_QUEUE })).filter((j) => ids.has(j.id));
      return js.length === ids.size && js.every((j) => j.state === 'completed');
    },
    20 * 60_000,
  );
  for (const m of machines) {
    const st = await rt.deploys.record(m.name);
    // When each step was first seen running (polled every second, from the deploy request).
    const at = (...steps: string[]) =>
      steps
        .map((step) => [...d.steps].find(([k]) => k.startsWith(`deploy-${m.name}-`) && k.endsWith(` ${step}`))?.[1])
        .find((v) => v !== undefined);
    const installer = at('partition');
    const boot = at('boot-xen', 'verify-xen');
    const agentAt = at('start-agent', 'join');
    const summary = `PXE to installer SSH ${installer !== undefined ? `${secs(installer)} s` : '?'}, image by ${st.transferMethod ?? '?'} ${st.transferSeconds ? Number(st.transferSeconds).toFixed(1) : '?'} s, Xen boot to \`xl info\` ${boot !== undefined && agentAt !== undefined ? `${secs(agentAt - boot)} s` : '?'}`;
    say(
      `${m.name}: ${summary}; Xen ${st.xenVersion ?? '?'}, ${st.totalMemMiB ?? '?'} MiB, ${st.nrCpus ?? '?'} CPUs; host key ${st.hostKey ?? '?'}, power-ons ${st.powerOns ?? '?'}`,
    );
    phases.push({
      phase: `deploy ${m.name}`,
      ms: Date.now() - deployStart,
      result: d.ok ? `ok: ${summary}, Xen ${st.xenVersion}` : `FAILED: ${d.why}`,
    });
  }
  if (!d.ok) throw new Error(`deploy: ${d.why}`);

  if (!short && nHosts >= 2) {
    // --- Operator step: a site key for live migration, Dom0 to Dom0 (XSM does not hand these out yet).
    sh(`ssh-keygen -q -t ed25519 -N '' -C xsm-qemu-lab-migrate -f ${work}/migrate_key`);
    const mkey = readFileSync(join(work, 'migrate_key'), 'utf8');
    const mpub = readFileSync(join(work, 'migrate_key.pub'), 'utf8').trim();
    const known: string[] = [];
    for (const m of machines)
      known.push(
        `${m.address} ${(await runChecked(agents.get(m.name)!.ssh, 'cat', ['/etc/ssh/ssh_host_ed25519_key.pub'])).stdout.trim().split(/\s+/).slice(0, 2).join(' ')}`,
      );
    for (const m of machines) {
      const s = agents.get(m.name)!.ssh;
      await runChecked(s, 'sh', ['-c', 'umask 077; cat > /root/.ssh/id_ed25519'], { input: mkey });
      await runChecked(s, 'sh', ['-c', 'cat >> /root/.ssh/authorized_keys'], { input: mpub + '\n' });
      await runChecked(s, 'sh', ['-c', 'cat > /root/.ssh/known_hosts'], { input: known.join('\n') + '\n' });
    }
    say('migration key installed on every Dom0 (root to root over SSH, host keys pinned)');

    const [h1, h2] = machines as [Machine, Machine];
    // The guest must be in `xl list`, and Xen must hold the size asked for: its targets from `xl list -l`
    // (target_memkb, avail_vcpus). The guest balloons and onlines vCPUs at its own pace, which under
    // nested emulation can take minutes (or never come, when its kernel stalls): logged, not required.
    const expect = (host: string, mem: number, vcpus: number) => async () => {
      const row = await xlListOn(host, `${mem} MiB / ${vcpus} vCPUs`);
      if (row === undefined) return `xl list failed on ${host}`;
      if (!row) return `xl list on ${host} shows no ${VM}`;
      const d = await agents.get(host)!.hv.find(VM);
      if (!d) return `xl list -l on ${host} shows no ${VM}`;
      const held = heldSize(d);
      say(
        `${host}: Xen holds ${held.memMiB} MiB / ${held.vcpus} vCPUs for ${VM} (targets); the guest has ${row.memMiB} MiB / ${row.vcpus} vCPUs online, state ${row.state}`,
      );
      return held.memMiB !== mem || held.vcpus !== vcpus
        ? `Xen holds ${held.memMiB} MiB / ${held.vcpus} vCPUs for ${VM} on ${host}, expected ${mem} / ${vcpus}`
        : undefined;
    };
    // A guest can be live-migrated only once its kernel answers the suspend request (xenbus): under
    // nested emulation it boots for minutes, and a migration started before that fails on the sender
    // ("Dom 1 not suspended") and then on the target (no HVM context in the stream), as run 7 did.
    // Its init prints XSM-TINY-GUEST on the console once it reached userspace.
    const guestUp = async (host: Machine, limitMs: number): Promise<boolean> => {
      const start = Date.now();
      for (;;) {
        const r = await agents
          .get(host.name)!
          .ssh.run('grep', ['-c', 'XSM-TINY-GUEST: up', '/var/log/xen/console/guest-tiny.log'], { timeoutMs: 30000 })
          .catch(() => undefined);
        if (r?.code === 0) {
          say(`${VM} reached userspace on ${host.name} ${secs(Date.now() - start)} s after its create converged`);
          phases.push({
            phase: 'guest userspace',
            ms: Date.now() - start,
            result: `ok: its init wrote to the console on ${host.name}`,
          });
          return true;
        }
        if (Date.now() - start > limitMs) {
          phases.push({
            phase: 'guest userspace',
            ms: Date.now() - start,
            result: `not seen on ${host.name}'s console (the migration will likely fail: a guest that never booted cannot suspend)`,
          });
          return false;
        }
        await new Promise((res) => setTimeout(res, 5000));
      }
    };
    const ok1 = await applyPhase(
      'create',
      siteXml({ host: h1.name, mem: 96, vcpus: 1 }),
      15 * 60_000,
      expect(h1.name, 96, 1),
    );
    if (ok1) await guestUp(h1, 6 * 60_000);
    if (ok1) {
      const g = await gmondShows(h1, 'after-create');
      phases.push({
        phase: 'gmond (create)',
        ms: 0,
        result: g ? `FAILED: ${g}` : `ok: ${h1.name}'s gmond reports ${VM}`,
      });
      if (g) failed = true;
    }
    const ok2 =
      ok1 &&
      (await applyPhase(
        'reconfigure',
        siteXml({ host: h1.name, mem: 80, vcpus: 2 }),
        10 * 60_000,
        expect(h1.name, 80, 2),
      ));
    const ok3 =
      ok2 &&
      (await applyPhase('migrate', siteXml({ host: h2.name, mem: 80, vcpus: 2 }), 15 * 60_000, async () => {
        const gone = await xlListOn(h1.name, 'source after migrate');
        if (gone) return `${VM} is still on ${h1.name} (${gone.state})`;
        return expect(h2.name, 80, 2)();
      }));
    if (ok3) {
      const g = await gmondShows(h2, 'after-migrate');
      phases.push({
        phase: 'gmond (migrate)',
        ms: 0,
        result: g ? `FAILED: ${g}` : `ok: ${h2.name}'s gmond reports ${VM}`,
      });
      if (g) failed = true;
    }
    const where = ok3 ? h2.name : h1.name;
    const ok4 =
      ok1 &&
      (await applyPhase('remove', siteXml(), 10 * 60_000, async () => {
        const row = await xlListOn(where, 'after remove');
        return row === undefined
          ? `xl list failed on ${where}`
          : row
            ? `xl list on ${where} still shows ${VM} (${row.state})`
            : undefined;
      }));
    if (!(ok1 && ok2 && ok3 && ok4)) failed = true;
  }
} catch (e) {
  failed = true;
  say(`error: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  writeResults();
  await cleanup();
  writeFileSync(join(out, 'run.log'), logLines.join('\n') + '\n');
  rmSync(work, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
