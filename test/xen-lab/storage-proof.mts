// Issue 16 part 5: XSM's storage pools and the paper's config files on real Xen under qemu (TCG). The same
// lab as qemu-deploy.mts (two bare qemu machines that XSM PXE-deploys as Xen hosts; its setup is copied
// from there, so that the two scripts' branches merge), then:
//   1. NFS pool: this machine exports a directory with nfs-ganesha (userspace NFSv4: the kernel nfsd is not
//      usable in a container), bound to the lab bridge's address only; both Dom0s' agents mount it as XSM's
//      `nfs` pool driver does (ShellStorage: `mount -t nfs SERVER:EXPORT PATH`).
//   2. XSM creates the tiny guest with a disk made from a template image in that pool; its init (the
//      `xsm_disk_proof` mode of scripts/xen-lab-artifacts' guest) writes a random nonce and the sha256 of
//      64 MiB of random data to /dev/xvda. XSM live-migrates it (`xl migrate`); the guest reads both back
//      from its disk on the target after its resume, the target Dom0 reads them from the pool file, and the
//      target's `xl block-list` backend (xenstore `params`) names the pool path.
//   3. The paper's Figure 3 with two distinct files, /etc/xen/apache_svr.cfg and /etc/xen/mysql_svr.cfg, on
//      both Dom0s: vm1 and vm4 differ in `xl list -l`; with mysql_svr.cfg removed from one host, a version
//      moving vm4 there is refused at plan time and nothing is stored. Two small guests, not the paper's site:
//      under TCG each guest costs minutes.
//
//   scripts/xen-lab-artifacts && scripts/xen-lab-guest-kernel && scripts/xen-lab-deploy-artifacts
//   flock /tmp/xsm-qemu-lab.lock npx tsx test/xen-lab/storage-proof.mts [--out DIR] [--method multicast|unicast]
//     [--proofs disk,figure3]   (default both; one alone for a run with fewer guest events to lose a Dom0 to)
//     [--guest-mib N]           (the disk guest's memory, default 96: less makes the live migration shorter)
//     [--guest-args 'OPTS']     (more kernel options for every guest, e.g. xen_no_percpu_upcall)
//
// Needs root, Redis (XSM_REDIS_URL), qemu-system-x86, dnsmasq, rsync, udpcast and nfs-ganesha +
// nfs-ganesha-vfs (.ci/packages.d/lab). Env: XSM_XEN_LAB_DIR, XSM_QLAB_TIMEOUT_S (default 2400), XSM_QLAB_CPU,
// XSM_QLAB_ACCEL and XSM_QLAB_NICE (qemu-machine.ts), XSM_QLAB_BRIDGE_PREFIX (default xn: the bridge is PREFIX + 4 hex
// digits), XSM_QLAB_NET (the second octet of the lab's 10.X.Y.0/24, default 215: qemu-deploy.mts uses 214).
// Writes into --out (default test/xen-lab/results/storage-proof). Exit: 0 every check passed; 1 one failed;
// 2 setup missing; 77 no qemu.

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
import { gmetricSender } from '../../src/ganglia/gmetric.ts';
import { vmMetricsPublisher } from '../../src/ganglia/vm-metrics.ts';
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
import { closeWithin, labCleanup, onFirstSigint, runLog, secs, TINY_GUEST } from './lab-common.ts';
import { labAccel, labCpuModel, labQemuNice, qemuArgs } from './qemu-machine.ts';
import { ShellStorage } from '../../src/drivers/storage/shell-storage.ts';
import { reportObserved } from '../../src/jobs/vm-action.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const nHosts = 2;
const method = (opt('--method') ?? 'multicast') as TransferMethod;
const out = resolve(opt('--out') ?? join(repo, 'test/xen-lab/results/storage-proof'));
const lab = process.env.XSM_XEN_LAB_DIR ?? '/var/tmp/xsm-xen-lab';
const art = join(lab, 'deploy');
const timeoutS = Number(process.env.XSM_QLAB_TIMEOUT_S ?? 2400);
const VM = TINY_GUEST;
// Every guest of this lab boots the small kernel (scripts/xen-lab-guest-kernel), not the Dom0's own: building a
// PVH guest maps its kernel image from the Dom0, and the emulated PVH Dom0 unmaps it one page per hypercall.
// With the Dom0's 63.6 MiB kernel that held the Dom0 26-94 s (runs 3 and 4) while libxl's 40 s hotplug clock ran.
const GUEST_KERNEL = '/lab/guest/vmlinuz-small';
// Two vCPUs per machine, as scripts/xen-lab-boot. With --smp 1 both Dom0s died at once in the initramfs
// (busybox: "trap invalid opcode ... in libc.so.6"); with two, the Dom0's userspace is corrupted now and
// then (xl aborting on a pthread assertion, xenstored gone, a read error on stdin): fixtures/real/README.md.
const smp = Number(opt('--smp') ?? 2);
// Which proofs this run makes: `disk` (create in the NFS pool, write, live migrate, read back) and `figure3`
// (the paper's two config files, a missing one refused at plan time). Each emulated guest event can cost a
// Dom0 (runs 3, 9, 10, 12 lost one to the emulation), and a run stops at the first lost Dom0: a run that makes
// one proof alone gets it with fewer chances to lose a machine first.
const PROOFS = ['disk', 'figure3'] as const;
const badOption = (why: string): never => {
  console.error(`storage-proof: ${why}`);
  process.exit(2);
};
const proofs = new Set((opt('--proofs') ?? PROOFS.join(',')).split(','));
for (const p of proofs)
  if (!(PROOFS as readonly string[]).includes(p))
    badOption(`--proofs takes ${PROOFS.join(',')} (comma-separated), not ${p}`);
// More kernel options for every guest of the run, e.g. `xen_no_percpu_upcall` (the lab guest kernel's own
// option, scripts/xen-lab-guest-kernel): the Dom0 triple faults of runs 9, 12, 15 and 16 came right after a
// guest registered its per-vCPU upcall vector.
const guestArgs = opt('--guest-args') ?? '';
if (!/^[A-Za-z0-9_=., -]*$/.test(guestArgs))
  badOption(`--guest-args takes kernel options (letters, digits, _=.,- and spaces), not ${guestArgs}`);
// The disk guest's memory. A live migration maps every page of it from the emulated PVH Dom0, one hypercall a
// page (run 9: `xl migrate` of 96 MiB took 372 s, about the 0.27 MB/s of run 6's soft-locked unmap), and every
// minute of emulation is a chance to lose a Dom0: less memory, a shorter migration. The small guest kernel needs
// far less than the 96 MiB that Debian's own kernel did.
const guestMiB = Number(opt('--guest-mib') ?? 96);
if (!Number.isInteger(guestMiB) || guestMiB < 32 || guestMiB > 128)
  badOption(`--guest-mib takes a whole number of MiB from 32 to 128, not ${opt('--guest-mib')}`);

// The Dom0 kernel's early TSC calibration fails under TCG ("tsc: Fast TSC calibration failed") and its slow
// fallback spent minutes of every boot under load; TCG's guest TSC ticks at the host's rate, so this machine's
// MHz skips it (Linux 6.1's tsc_early_khz). A lab setting only: XSM adds nothing like it on real hardware.
// XSM_QLAB_TSC_KHZ=0 leaves it out.
const tscKhz = ((): number | undefined => {
  const env = process.env.XSM_QLAB_TSC_KHZ;
  if (env !== undefined) return Number(env) > 0 ? Math.round(Number(env)) : undefined;
  const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  return mhz ? Math.round(Number(mhz) * 1000) : undefined;
})();

const qemuNice = labQemuNice();
const loadAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// --- The run log: XSM's structured lines and this script's own, in order, on stderr and in run.log.
const { lines: logLines, t0, say, log } = runLog('storage-proof');
function setupFailed(code: number, why: string): never {
  process.stdout.write(`${why}\n`);
  process.exit(code);
}

// --- Can this run here at all?
if (process.getuid?.() !== 0) setupFailed(2, 'storage-proof: run as root (it creates a bridge and tap devices)');
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
      `storage-proof: ${join(art, f)} is missing: run scripts/xen-lab-artifacts && scripts/xen-lab-deploy-artifacts`,
    );
if (!existsSync(join(lab, 'guest/vmlinuz-small')))
  setupFailed(
    2,
    `storage-proof: ${join(lab, 'guest/vmlinuz-small')} is missing: run scripts/xen-lab-guest-kernel && scripts/xen-lab-deploy-artifacts`,
  );
for (const tool of ['dnsmasq', 'rsync', 'udp-sender', 'ip', 'cpio', 'ganesha.nfsd'])
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    setupFailed(
      2,
      `storage-proof: ${tool} is missing (scripts/setup installs it; ganesha.nfsd: Debian packages nfs-ganesha nfs-ganesha-vfs)`,
    );
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
// Its own bridge name and subnet, so that it runs beside qemu-deploy.mts (xq*, 10.214.*) and local-boot.
const bridge = `${process.env.XSM_QLAB_BRIDGE_PREFIX ?? 'xn'}${id}`;
const netA = Number(process.env.XSM_QLAB_NET ?? 215);
const server = `10.${netA}.${net}.1`;
const work = join(tmpdir(), `xsm-nlab-${id}`);
const disks = join('/dev/shm', `xsm-nlab-${id}`);
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
  name: `nhost${i + 1}`,
  mac: `52:54:00:5c:${id.slice(0, 2)}:${(0x10 + i).toString(16)}`,
  address: `10.${netA}.${net}.${11 + i}`,
  tap: `${bridge}t${i + 1}`,
  qmp: join(work, `nhost${i + 1}.qmp`),
  serial: join(work, `nhost${i + 1}-serial.log`),
  disk: join(disks, `nhost${i + 1}.img`),
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

const POOL = 'labnfs';
const POOL_EXPORT = '/xsm-pool';
const POOL_MOUNT = `/mnt/xsm/${POOL}`;
const BASE_IMAGE = 'tiny-base.img';
const PROOF_MIB = 64;
const exportDir = join(lab, `nfs-export-${id}`);
const diskPath = `${POOL_MOUNT}/${VM}-xvda.img`;

// --- The NFS server: nfs-ganesha (userspace, NFSv4 only: no rpcbind), bound to the bridge's address and
// exporting to the lab's subnet only, with root not squashed (xl's block script and XSM's disk steps run as
// root in the Dom0s). The pool holds the template image: an empty raw disk the guest fills.
const ganeshaDir = join(work, 'ganesha');
mkdirSync(join(ganeshaDir, 'recovery'), { recursive: true });
mkdirSync(exportDir, { recursive: true });
sh(`truncate -s ${PROOF_MIB + 8}M ${join(exportDir, BASE_IMAGE)}`);
writeFileSync(
  join(ganeshaDir, 'ganesha.conf'),
  `NFS_CORE_PARAM { Bind_addr = ${server}; Protocols = 4; NFS_Port = 2049; Enable_NLM = false; Enable_RQUOTA = false; }
NFSV4 { Graceless = true; RecoveryBackend = fs; RecoveryRoot = ${join(ganeshaDir, 'recovery')}; }
EXPORT {
  Export_Id = 1; Path = ${exportDir}; Pseudo = ${POOL_EXPORT};
  Access_Type = None; Squash = No_Root_Squash; SecType = sys; Protocols = 4; Transports = TCP;
  CLIENT { Clients = 10.${netA}.${net}.0/24; Access_Type = RW; }
  FSAL { Name = VFS; }
}
`,
);
const ganesha = spawn(
  'ganesha.nfsd',
  [
    '-F',
    '-f',
    join(ganeshaDir, 'ganesha.conf'),
    '-L',
    join(ganeshaDir, 'ganesha.log'),
    '-p',
    join(ganeshaDir, 'pid'),
    '-N',
    'NIV_EVENT',
  ],
  { stdio: 'ignore' },
);
ganesha.on('exit', (code, sig) => say(`ganesha.nfsd exited ${code ?? sig}`));
cleanups.push(() => {
  ganesha.kill('SIGTERM');
  try {
    copyFileSync(join(ganeshaDir, 'ganesha.log'), join(out, 'ganesha.log'));
  } catch {
    /* never started */
  }
  rmSync(exportDir, { recursive: true, force: true });
});
for (let i = 0; ; i++) {
  if (spawnSync('sh', ['-c', `ss -ltn 'sport = :2049' | grep -q '${server}'`]).status === 0) break;
  if (i > 60 || ganesha.exitCode !== null)
    throw new Error(
      `storage-proof: nfs-ganesha does not listen on ${server}:2049; see ${join(ganeshaDir, 'ganesha.log')}`,
    );
  await new Promise((r) => setTimeout(r, 500));
}
say(
  `nfs-ganesha exports ${exportDir} as ${server}:${POOL_EXPORT} to 10.${netA}.${net}.0/24 (base image ${BASE_IMAGE}, ${PROOF_MIB + 8} MiB)`,
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
const prefix = `xsm-nlab-${id}`;
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
    network: `10.${netA}.${net}.0`,
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

// --- The NFS pool: a directory of this machine, exported by nfs-ganesha on the lab bridge's address only.

interface LabVm {
  name: string;
  config: string;
  host: string;
  mem: number;
  vcpus: number;
  hwaddr: string;
}
/** The site: the machines, the NFS pool, the disk guest's template, and the VMs given. */
function siteXml(vms: LabVm[] = []): string {
  const hosts = machines
    .map(
      (m) =>
        `    <Host name="${m.name}" address="${m.address}" mac="${m.mac}" cpus="2" memory="1023">\n      <Power driver="qmp" address="${m.qmp}"/>\n    </Host>`,
    )
    .join('\n');
  const sets = new Map<string, LabVm[]>();
  for (const vm of vms) {
    const set = vm.name === VM ? 'lab' : 'paper';
    sets.set(set, [...(sets.get(set) ?? []), vm]);
  }
  const setsXml = [...sets]
    .map(
      ([set, list]) => `  <Set name="${set}">
    <Owner>xsm qemu lab</Owner>
${list
  .map(
    (vm) =>
      `    <VM name="${vm.name}" config="${vm.config}">
      <DOM0>${vm.host}</DOM0><VCPUS>${vm.vcpus}</VCPUS><HWADDR>${vm.hwaddr}</HWADDR><IP>DHCP</IP><MEM>${vm.mem}</MEM>
    </VM>`,
  )
  .join('\n')}
  </Set>`,
    )
    .join('\n');
  // The guest is the lab's tiny one (lab-common.ts) with a disk XSM makes in the NFS pool from BASE_IMAGE;
  // `xsm_disk_proof` has its init write and check the disk.
  return `<?xml version="1.0" encoding="UTF-8"?>
<XSMConfig>
  <Hosts>
${hosts}
  </Hosts>
  <Pools>
    <Pool name="${POOL}" type="nfs" server="${server}" export="${POOL_EXPORT}" path="${POOL_MOUNT}"/>
  </Pools>
  <Templates>
    <Template name="diskguest" type="pvh" maxmem="128" maxvcpus="2">
      <Kernel>${GUEST_KERNEL}</Kernel>
      <Ramdisk>/lab/guest/initrd.cpio.gz</Ramdisk>
      <Extra>console=hvc0 loglevel=4 xsm_disk_proof${guestArgs ? ` ${guestArgs}` : ''}</Extra>
      <Disk vdev="xvda" pool="${POOL}" image="${BASE_IMAGE}"/>
      <Bridge>xenbr0</Bridge>
    </Template>
  </Templates>
${setsXml}
</XSMConfig>
`;
}

/**
 * The paper's two config files (Figure 3's apache_svr and mysql_svr), visibly different: memory, vCPUs and
 * the kernel command line. Both boot the lab's tiny guest (no disk: what the paper's disks hold does not
 * matter here, and each guest costs minutes under TCG).
 */
const paperConfig = (role: 'apache' | 'mysql') => {
  const mem = role === 'apache' ? 96 : 112;
  return `# The paper's ${role}_svr (Figure 3), for the XSM qemu lab: test/xen-lab/storage-proof.mts
name = "${role}_svr"
type = "pvh"
kernel = "${GUEST_KERNEL}"
ramdisk = "/lab/guest/initrd.cpio.gz"
extra = "console=hvc0 loglevel=4 xsm_role=${role}_svr${guestArgs ? ` ${guestArgs}` : ''}"
memory = ${mem}
maxmem = 128
vcpus = 1
maxvcpus = 2
vif = [ 'bridge=xenbr0' ]
on_crash = "destroy"
`;
};

// The machines: bare, powered off (-S), booting from the network; QMP is their BMC.
for (const m of machines) {
  sh(`truncate -s 2G ${m.disk}`);
  const args = qemuArgs({ ...m, smp, memMiB: 2048 });
  writeFileSync(join(out, `${m.name}-qemu-command.txt`), [qemu, ...args].map((a) => shellQuote(a)).join(' ') + '\n');
  m.proc = spawn('nice', ['-n', String(qemuNice), qemu, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
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
  {
    hv: XlHypervisor;
    storage: ShellStorage;
    shell: RecordingShell;
    ssh: SshShell;
    agent: { close(): Promise<void> };
  }
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
    kernelArgs: `root=LABEL=root console=hvc0 earlyprintk=xen${tscKhz ? ` tsc_early_khz=${tscKhz}` : ''}`,
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
    // The lab's Dom0 image gives Xen's hotplug scripts 300 s instead of libxl's 40 s
    // (scripts/xen-lab-deploy-artifacts), so `xl create` may take that long plus the domain build.
    const hv = new XlHypervisor(shell, data.host, { createTimeoutMs: 600_000 });
    const storage = new ShellStorage(shell, data.host);
    const publishMetrics = vmMetricsPublisher(
      hv,
      gmetricSender({ host: data.address, port: 8649 }, data.host),
      data.address,
    );
    const agent = startHostAgent({
      rt,
      hv,
      // XSM's storage driver on the Dom0: it mounts the NFS pool and reports it, and makes the VM's disk.
      storage,
      log: log.child({ component: 'host-agent', host: data.host }),
      peer,
      publishMetrics,
      heartbeatMs: 45000,
      lockDurationMs: 60000,
      concurrency: 2,
      cacheDir: join(agentCache, data.host),
    });
    agents.set(data.host, { hv, storage, shell, ssh, agent });
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
    `# XSM storage pools and config files on real Xen under qemu: ${new Date().toISOString()}; ${nHosts} machines, ${method}`,
    `# image ${image.name}: ${image.bytes} bytes, sha256 ${image.sha256}; ${image.description}`,
    `# Dom0 kernel: ${tscKhz ? `tsc_early_khz=${tscKhz} (this machine's MHz)` : 'no tsc_early_khz'}; qemu -accel ${labAccel()} -cpu ${labCpuModel()} at nice ${qemuNice}; proofs ${[...proofs].join(',')}; disk guest ${guestMiB} MiB; guest options '${guestArgs}'; load average at the start ${loadAtStart}`,
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
  // Fixed when it starts: compared with the time left as it shrinks, a phase got half its share (run 1).
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
    // Room for one Dom0 boot lost to the emulation and retried by verify-xen (its 600 s wait, then a power
    // cycle): run 7 lost its deploy to a 20-minute limit that way.
    30 * 60_000,
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
  /** A shell line in a Dom0, through the agent's recording shell (so it is in the transcript). */
  // The lab's own commands on a Dom0 (all safe to repeat) try again when the SSH connection itself fails: in
  // run 11 the emulated Dom0's sshd reset one connection after XSM's create had retried through the same
  // fault, and the run ended on the lab's check rather than on anything XSM did.
  const onDom0 = async (m: Machine, line: string, timeoutMs = 120_000, input?: string) => {
    const run = () =>
      agents.get(m.name)!.shell.run('sh', ['-c', line], { timeoutMs, ...(input !== undefined ? { input } : {}) });
    let r;
    for (let attempt = 1; ; attempt++) {
      try {
        r = await run();
        break;
      } catch (e) {
        if (attempt >= 3 || !/cannot connect|ECONNRESET|ETIMEDOUT|not connected/.test((e as Error).message)) throw e;
        say(`${m.name}: ${(e as Error).message}; trying again in 15 s (attempt ${attempt + 1} of 3)`);
        await new Promise((resolve) => setTimeout(resolve, 15_000));
      }
    }
    say(
      `${m.name}$ ${line}\n  exit ${r.code}${r.stdout.trim() ? `\n  ${r.stdout.trimEnd().replaceAll('\n', '\n  ')}` : ''}${r.stderr.trim() ? `\n  stderr: ${r.stderr.trim().slice(0, 500)}` : ''}`,
    );
    return r;
  };
  /** What the agent reports every heartbeat, now: the planner then sees this moment's pools and files. */
  const reportNow = async (m: Machine) => {
    const a = agents.get(m.name)!;
    await reportObserved(rt, a.hv, a.storage);
    return (await rt.observed.all()).hosts[m.name];
  };
  /**
   * Waits for a line of a guest's console on a Dom0 (xenconsoled's log) that matches `re`. xenconsoled names
   * the log after the domain's name when it first sees it: a guest that arrived by live migration logs to
   * `guest-NAME--incoming.log` (xl's name for it until the stream is in), so both are read. Run 17 looked
   * only at `guest-tiny.log` until a link was made by hand (operator-actions.txt).
   */
  const consoleLine = async (m: Machine, domain: string, re: RegExp, limitMs: number) => {
    const start = Date.now();
    const until = start + Math.min(limitMs, timeLeft());
    const logs = [`guest-${domain}.log`, `guest-${domain}--incoming.log`].map((f) => `/var/log/xen/console/${f}`);
    for (;;) {
      const r = await agents
        .get(m.name)!
        .ssh.run('sh', ['-c', `cat ${logs.join(' ')} 2>/dev/null; true`], { timeoutMs: 30000 })
        .catch(() => undefined);
      const hit =
        r?.code === 0
          ? r.stdout
              .replaceAll('\r', '')
              .split('\n')
              .find((l) => re.test(l))
          : undefined;
      if (hit) return { line: hit, ms: Date.now() - start };
      if (Date.now() > until) return { ms: Date.now() - start };
      await new Promise((res) => setTimeout(res, 5000));
    }
  };
  const tiny = (host: string): LabVm => ({
    name: VM,
    config: 'diskguest',
    host,
    mem: guestMiB,
    vcpus: 1,
    hwaddr: '00:16:3e:5c:00:02',
  });

  // --- Phase pool: both Dom0s mount the export (XSM's agents do it: ShellStorage.mount) and report it.
  say('=== phase pool ===');
  {
    const start = Date.now();
    const problems: string[] = [];
    for (const m of machines) {
      let pool;
      for (let i = 0; i < 3 && !pool; i++) {
        pool = (
          await reportNow(m).catch((e: Error) => (say(`${m.name}: report: ${e.message}`), undefined))
        )?.pools?.find((p) => p.name === POOL);
        if (!pool) await new Promise((res) => setTimeout(res, 10000));
      }
      await onDom0(m, `grep ' ${POOL_MOUNT} ' /proc/mounts`);
      if (!pool) problems.push(`${m.name}'s agent does not report pool ${POOL}`);
      else
        say(
          `${m.name} reports pool ${POOL}: ${pool.sizeMiB} MiB, ${pool.freeMiB} MiB free, images ${pool.images?.map((i) => i.name).join(', ')}`,
        );
    }
    phases.push({
      phase: 'nfs pool mounted',
      ms: Date.now() - start,
      result: problems.length
        ? `FAILED: ${problems.join('; ')}`
        : `ok: both Dom0s mount ${server}:${POOL_EXPORT} on ${POOL_MOUNT}`,
    });
    if (problems.length) throw new Error(problems.join('; '));
  }

  // --- Phase hotplug probe: in run 2 every `xl create` died in /etc/xen/scripts/block (killed by libxl's
  // 40 s hotplug timeout). Time by hand, on h1, what that script does for a `file` disk: its forks, a
  // xenstore read, stat and losetup, on a file in the NFS pool and on a local one, so that the cause is
  // decided from figures (fork cost under TCG, or NFS) and not guessed.
  say('=== phase hotplug probe ===');
  {
    const start = Date.now();
    const probeLines = [
      't() { a=$(date +%s%N); "$@" >/dev/null 2>&1; r=$?; b=$(date +%s%N); echo "$(( (b - a) / 1000000 )) ms, exit $r: $*"; }',
      `P=${POOL_MOUNT}/.xsm-hotplug-probe.img; L=/var/tmp/xsm-hotplug-probe.img`,
      't /bin/true',
      "t sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done'",
      't xenstore-read /local/domain/0/name',
      "t bash -c 'dir=/etc/xen/scripts; . $dir/xen-hotplug-common.sh'",
      't truncate -s 64M $P',
      't truncate -s 64M $L',
      't stat -c %i $P',
      't stat -c %i $L',
      't losetup -f',
      't losetup -a',
      'for F in $P $L; do a=$(date +%s%N); d=$(losetup -f --show $F); r=$?; b=$(date +%s%N); echo "$(( (b - a) / 1000000 )) ms, exit $r: losetup -f --show $F -> $d"; [ -n "$d" ] && t losetup -d $d; done',
      'rm -f $P $L',
    ];
    const r = await onDom0(h1, probeLines.join('\n'), 600_000).catch((e: Error) => ({
      code: -1,
      stdout: '',
      stderr: e.message,
    }));
    writeFileSync(
      join(out, 'hotplug-probe.txt'),
      `# ${h1.name}: the steps of /etc/xen/scripts/block add for a file disk, timed by hand (exit ${r.code})\n` +
        `${probeLines.join('\n')}\n--- output ---\n${r.stdout}${r.stderr ? `--- stderr ---\n${r.stderr}` : ''}`,
    );
    phases.push({
      phase: 'hotplug probe',
      ms: Date.now() - start,
      result: `${r.code === 0 ? 'ok' : `exit ${r.code}`}: ${r.stdout.trim().split('\n').join('; ').slice(0, 900)}`,
    });
  }

  // --- Phase create: XSM makes the disk from the template image in the pool, and starts the guest on h1.
  let migrated = false;
  if (proofs.has('disk')) {
    const created = await applyPhase('create', siteXml([tiny(h1.name)]), 15 * 60_000, async () => {
      const row = await xlListOn(h1.name, 'after create');
      if (!row) return `xl list on ${h1.name} shows no ${VM}`;
      const f = await onDom0(h1, `ls -ls ${diskPath}`);
      return f.code === 0 ? undefined : `no disk ${diskPath} on ${h1.name}`;
    });
    if (!created) throw new Error('create failed');
    const written = await consoleLine(h1, VM, /XSM-TINY-GUEST: disk written/, 20 * 60_000);
    const w = /nonce=([0-9a-f]+) sha256=([0-9a-f]{64}) mib=(\d+)/.exec(written.line ?? '');
    phases.push({
      phase: 'guest writes disk',
      ms: written.ms,
      result: w ? `ok: ${written.line!.trim()}` : `FAILED: no "disk written" line on ${h1.name}'s console`,
    });
    if (!w) throw new Error('the guest did not write its disk');
    const [, nonce, dataSum, mib] = w;
    if (Number(mib) < PROOF_MIB) throw new Error(`the guest wrote ${mib} MiB, fewer than ${PROOF_MIB}`);

    // --- Phase migrate: XSM's live migration (the plan must say live: the disk is on a pool both hosts list).
    migrated = await applyPhase('migrate', siteXml([tiny(h2.name)]), 20 * 60_000, async () => {
      const gone = await xlListOn(h1.name, 'source after migrate');
      if (gone) return `${VM} is still on ${h1.name} (${gone.state})`;
      const row = await xlListOn(h2.name, 'target after migrate');
      return row ? undefined : `xl list on ${h2.name} shows no ${VM}`;
    });
    if (migrated) {
      // The target's block device: `xl block-list` names the backend, whose xenstore `params` is the file.
      const bl = await onDom0(h2, `xl block-list ${VM}`);
      const bePath = bl.stdout
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((cols) => /^\d+$/.test(cols[0] ?? ''))
        ?.at(-1);
      const params = bePath
        ? await onDom0(
            h2,
            `xenstore-read ${bePath}/params ${bePath}/physical-device-path 2>/dev/null || xenstore-read ${bePath}/params`,
          )
        : undefined;
      const names = params?.stdout.split('\n')[0]?.trim();
      phases.push({
        phase: 'target block-list',
        ms: 0,
        result:
          names === diskPath
            ? `ok: xl block-list on ${h2.name}: backend ${bePath}, params ${names}`
            : `FAILED: the backend ${bePath ?? '(none)'} names ${names ?? '(nothing)'}, not ${diskPath}`,
      });
      if (names !== diskPath) failed = true;
      // The guest reads its disk again after its resume on the target (page cache dropped first).
      const back = await consoleLine(h2, VM, /XSM-TINY-GUEST: disk read \(after resume/, 10 * 60_000);
      const r = /header \[XSM-DISK nonce=([0-9a-f]+) sha256=([0-9a-f]{64}) mib=(\d+)\] data sha256=([0-9a-f]{64})/.exec(
        back.line ?? '',
      );
      const guestOk = r && r[1] === nonce && r[2] === dataSum && r[4] === dataSum;
      phases.push({
        phase: 'guest reads on target',
        ms: back.ms,
        result: guestOk
          ? `ok: nonce ${nonce} and sha256 ${dataSum} of ${mib} MiB read back by the guest on ${h2.name}`
          : `FAILED: ${back.line ? `read ${back.line.trim()}, wrote nonce ${nonce} sha256 ${dataSum}` : `no "disk read (after resume" line on ${h2.name}'s console`}`,
      });
      if (!guestOk) failed = true;
      // And the target Dom0 reads the pool's file itself (its own NFS client, caches dropped).
      const t = Date.now();
      const dom0 = await onDom0(
        h2,
        `echo 3 > /proc/sys/vm/drop_caches; dd if=${diskPath} bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n 1; dd if=${diskPath} bs=1M skip=1 count=${mib} 2>/dev/null | sha256sum`,
        600_000,
      );
      const [head, sum] = dom0.stdout.split('\n');
      const dom0Ok = head?.includes(`nonce=${nonce} sha256=${dataSum}`) && sum?.startsWith(dataSum!);
      phases.push({
        phase: 'target Dom0 reads',
        ms: Date.now() - t,
        result: dom0Ok
          ? `ok: ${h2.name} reads nonce ${nonce} and sha256 ${dataSum} from ${diskPath}`
          : `FAILED: ${h2.name} read [${head}] and ${sum}`,
      });
      if (!dom0Ok) failed = true;
    } else failed = true;
  }

  // --- Phase Figure 3: the paper's two config files, and a missing one refused at plan time.
  if (proofs.has('figure3')) {
    say('=== phase figure3 ===');
    // Each file synced before its host reports it, and the report checked: in run 13 nhost2's Dom0
    // triple-faulted seconds after the files were written, came back without them (never flushed), and its
    // agent reported none, so the later refusal proved less than it seemed. A host whose report lacks
    // either file gets both written again, up to three times.
    const reportLine = (h: Awaited<ReturnType<typeof reportNow>>) =>
      h?.configFiles?.map((f) => `${f.name} ${f.sha256.slice(0, 12)}`).join(', ') ?? '(no config files reported)';
    const written: Record<string, string> = {};
    for (const m of machines) {
      let h: Awaited<ReturnType<typeof reportNow>>;
      for (let attempt = 1; ; attempt++) {
        for (const role of ['apache', 'mysql'] as const) {
          const r = await onDom0(
            m,
            `cat > /etc/xen/${role}_svr.cfg && sync /etc/xen/${role}_svr.cfg && sha256sum /etc/xen/${role}_svr.cfg`,
            60_000,
            paperConfig(role),
          );
          written[`${role}_svr.cfg`] = r.stdout.split(' ')[0] ?? '';
        }
        h = await reportNow(m);
        const holds = (name: string) => h?.configFiles?.some((f) => f.name === name && f.sha256 === written[name]);
        if (holds('apache_svr.cfg') && holds('mysql_svr.cfg')) break;
        say(`${m.name}'s agent reports ${reportLine(h)}, not both files as written (attempt ${attempt})`);
        if (attempt === 3) throw new Error(`${m.name}'s agent never reported both config files`);
        await new Promise((r) => setTimeout(r, 30_000));
      }
      say(`${m.name} reports config files: ${reportLine(h)}`);
    }
    // The disk proof's guest stays in the site where it ended, so that these versions change only Figure 3's VMs.
    const keep = proofs.has('disk') ? [tiny(migrated ? h2.name : h1.name)] : [];
    const vm1 = (host: string): LabVm => ({
      name: 'vm1',
      config: 'apache_svr',
      host,
      mem: 96,
      vcpus: 1,
      hwaddr: '00:16:3e:5c:00:11',
    });
    const vm4 = (host: string, vcpus: number): LabVm => ({
      name: 'vm4',
      config: 'mysql_svr',
      host,
      mem: 112,
      vcpus,
      hwaddr: '00:16:3e:5c:00:14',
    });
    const fig = await applyPhase(
      'figure3 create',
      siteXml([...keep, vm1(h1.name), vm4(h1.name, 2)]),
      15 * 60_000,
      async () => {
        const problems: string[] = [];
        const seen: Record<string, { memkb?: number; vcpus?: number; cmdline?: string }> = {};
        for (const name of ['vm1', 'vm4']) {
          const r = await onDom0(h1, `xl list -l ${name}`);
          if (r.code !== 0) {
            problems.push(`xl list -l ${name} on ${h1.name} failed`);
            continue;
          }
          const j = (
            JSON.parse(r.stdout) as {
              config?: { b_info?: { target_memkb?: number; max_vcpus?: number; cmdline?: string } };
            }[]
          )[0]?.config?.b_info;
          seen[name] = { memkb: j?.target_memkb, vcpus: j?.max_vcpus, cmdline: j?.cmdline };
        }
        say(`xl list -l on ${h1.name}: ${JSON.stringify(seen)}`);
        if (!seen.vm1?.cmdline?.includes('xsm_role=apache_svr')) problems.push(`vm1's cmdline is ${seen.vm1?.cmdline}`);
        if (!seen.vm4?.cmdline?.includes('xsm_role=mysql_svr')) problems.push(`vm4's cmdline is ${seen.vm4?.cmdline}`);
        if (seen.vm1?.memkb === seen.vm4?.memkb) problems.push('vm1 and vm4 have the same memory');
        return problems.length ? problems.join('; ') : undefined;
      },
    );
    if (!fig) failed = true;
    // A config file missing on a target host: planning refuses the version, and nothing is stored or run.
    {
      const start = Date.now();
      await onDom0(h2, 'rm -f /etc/xen/mysql_svr.cfg && sync /etc/xen');
      // The refusal must come from this removal, on a fresh report: apache_svr.cfg still there, mysql_svr.cfg not.
      const report = await reportNow(h2);
      const fresh =
        report?.configFiles?.some((f) => f.name === 'apache_svr.cfg' && f.sha256 === written['apache_svr.cfg']) &&
        !report.configFiles.some((f) => f.name === 'mysql_svr.cfg');
      say(`${h2.name} reports config files after the removal: ${reportLine(report)}`);
      const before = await rt.sites.currentVersion();
      const jobsBefore = (await listJobs(rt, { limit: 200 })).length;
      let refusal: string | undefined;
      try {
        const r = await submitSite(rt, {
          xml: siteXml([...keep, vm1(h1.name), vm4(h2.name, 2)]),
          file: 'site-figure3-vm4-to-host-without-file.xml',
          base: before,
          author: 'qemu-lab',
          reason: 'vm4 to a host without mysql_svr.cfg',
          consent: 'operator',
          apply: true,
        });
        refusal = undefined;
        say(`UNEXPECTED: stored as v${r.version}`);
      } catch (e) {
        refusal = e instanceof Error ? e.message : String(e);
      }
      const after = await rt.sites.currentVersion();
      const jobsAfter = (await listJobs(rt, { limit: 200 })).length;
      const ok =
        !!fresh &&
        !!refusal &&
        /mysql_svr\.cfg/.test(refusal) &&
        refusal.includes(h2.name) &&
        after === before &&
        jobsAfter === jobsBefore;
      say(
        `missing config file: ${refusal ?? 'not refused'}; version ${before} -> ${after}, jobs ${jobsBefore} -> ${jobsAfter}`,
      );
      phases.push({
        phase: 'missing cfg refused',
        ms: Date.now() - start,
        result: ok
          ? `ok: with ${h2.name} reporting ${reportLine(report)}, refused at plan time, nothing stored or run: ${refusal!.split('\n').slice(0, 3).join(' | ')}`
          : `FAILED: ${fresh ? '' : `${h2.name}'s report after the removal is ${reportLine(report)}; `}${refusal ?? 'not refused'} (version ${before} -> ${after}, jobs ${jobsBefore} -> ${jobsAfter})`,
      });
      if (!ok) failed = true;
    }
    // Figure 3's change: vm1 moves live to the other host (its file is there), vm4 drops to one vCPU live.
    if (fig && timeLeft() > 10 * 60_000) {
      const ok = await applyPhase(
        'figure3 change',
        siteXml([...keep, vm1(h2.name), vm4(h1.name, 1)]),
        20 * 60_000,
        async () => {
          const on2 = await xlListOn(h2.name, 'figure3 change');
          const r = await onDom0(h2, 'xl list vm1');
          const d = await agents.get(h1.name)!.hv.find('vm4');
          if (on2 === undefined || r.code !== 0) return `vm1 is not on ${h2.name}`;
          return d && heldSize(d).vcpus === 1 ? undefined : `Xen holds ${d ? heldSize(d).vcpus : '?'} vCPUs for vm4`;
        },
      );
      if (!ok) failed = true;
    }
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
