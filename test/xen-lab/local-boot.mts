// Issue 17 part 6: an installed Dom0 boots Xen from its own disk and rejoins the site without the deploy
// server, running its own host agent. Nothing simulated: a bare qemu machine (TCG) on a bridge this
// script makes, powered through QMP; XSM's dnsmasq and rsync daemon install it (XSM_XEN_BOOT_FROM=disk:
// the bootloader step runs the real grub-install, the boot-xen step switches its network boot to "boot
// from local disk"); its image carries systemd, Node and XSM, and the deploy's start-agent step starts
// the host agent under docker/xsm-host-agent.service, driving the Dom0's own `xl` and reaching a private
// Redis on the lab bridge. The lab stops dnsmasq and the rsync daemon just before the deploy power-cycles
// the machine into its installed system, so that boot, the agent's first start and the lab's own QMP
// power cycle after the deploy all happen without the deploy server; after each boot it waits for GRUB
// on the serial console, `xl info` over SSH and the agent's heartbeat.
//
//   scripts/xen-lab-artifacts && scripts/xen-lab-deploy-artifacts && scripts/xen-lab-local-boot-artifacts
//   flock /tmp/xsm-qemu-lab.lock npx tsx test/xen-lab/local-boot.mts [--out DIR]
//
// Needs root (bridge, taps), qemu-system-x86, dnsmasq, rsync, redis-server. Env: XSM_XEN_LAB_DIR
// (artifacts, default /var/tmp/xsm-xen-lab), XSM_QLAB_TIMEOUT_S (whole run, default 4800),
// XSM_LOCAL_BOOT_NET (the lab subnet's first two octets, default 10.216: apart from qemu-deploy's 10.214
// and the storage lab's 10.215).
// Writes run.log, phases.txt, the serial console (whole, and from the power cycle on), the agent's
// journal and unit status into --out (default test/xen-lab/results/local-boot).
// Exit: 0 every phase passed; 1 a phase failed (phases.txt says which and why); 2 setup missing;
// 77 qemu cannot run here.

import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DnsmasqService } from '../../src/deploy/dnsmasq.ts';
import { startHostAgentUnit } from '../../src/deploy/host-agent-unit.ts';
import { readManifest } from '../../src/deploy/image.ts';
import { ImageServer } from '../../src/deploy/transfer.ts';
import { parseXlInfo } from '../../src/drivers/hypervisor/xl-parse.ts';
import { powerFor } from '../../src/drivers/power/select.ts';
import { LocalShell, runChecked } from '../../src/drivers/shell.ts';
import { shellQuote, SshShell } from '../../src/drivers/ssh/ssh-shell.ts';
import { closeWhenReady } from '../../src/lib/redis.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { DEPLOY_QUEUE } from '../../src/runtime/queues.ts';
import { enqueueDeploy } from '../../src/services/deploy-service.ts';
import { listJobs } from '../../src/services/inspect.ts';
import type { DeployEnv } from '../../workflows/deploy-host.ts';
import { startDeployWorker } from '../../workers/deploy-lib.ts';
import { closeWithin, labCleanup, onFirstSigint, runLog, secs, tinyGuestSite } from './lab-common.ts';
import { labQemuNice, qemuArgs, qemuUnavailable } from './qemu-machine.ts';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const out = resolve(opt('--out') ?? join(repo, 'test/xen-lab/results/local-boot'));
const lab = process.env.XSM_XEN_LAB_DIR ?? '/var/tmp/xsm-xen-lab';
const art = join(lab, 'local-boot');
const timeoutS = Number(process.env.XSM_QLAB_TIMEOUT_S ?? 4800);
const netPrefix = process.env.XSM_LOCAL_BOOT_NET ?? '10.216';
if (!/^\d{1,3}\.\d{1,3}$/.test(netPrefix)) {
  process.stdout.write(`local-boot: XSM_LOCAL_BOOT_NET=${netPrefix}: give two octets, e.g. 10.215\n`);
  process.exit(2);
}
// The Dom0's agent: a slow heartbeat, since each one starts `xl` processes in an emulated Dom0 whose
// userspace the emulation corrupts now and then (results/README.md).
const AGENT_HEARTBEAT_MS = 30000;

// Lab-only boot settings against what stopped runs 1-3 (results/README.md), overridable to try others
// (XSM_LOCAL_BOOT_DOM0_ARGS, XSM_LOCAL_BOOT_XEN_ARGS; empty for none):
// - noxsave: the Dom0 kernel saves FPU state with FXSAVE and tells userspace AVX is unusable (no
//   OSXSAVE); run 3 died on a #GP in XRSTOR and libc's AVX code then trapping "invalid opcode". Runs 4-5
//   (5 boots) had no such crash.
// - dom0_vcpus_pin: each Dom0 vCPU stays on its own emulated CPU. Runs 4-5 (5 boots with it) passed the
//   clock source switch's stop_machine every time; without it, run 1 and run 6's second boot hung there
//   (soft lockup of migration/1 for 100-745 s).
// Not tsc_early_khz: Linux 6.1 still calibrates the CPU against the PIT with it (runs 4-5: "Fast TSC
// calibration failed" 53-70 s into each boot, as without it); it only sets the TSC frequency.
const LAB_DOM0_ARGS = process.env.XSM_LOCAL_BOOT_DOM0_ARGS ?? 'noxsave';
const LAB_XEN_ARGS = process.env.XSM_LOCAL_BOOT_XEN_ARGS ?? 'dom0_vcpus_pin';

const { lines: logLines, t0, say, log } = runLog('local-boot');
function setupFailed(code: number, why: string): never {
  process.stdout.write(`${why}\n`);
  process.exit(code);
}

if (process.getuid?.() !== 0) setupFailed(2, 'local-boot: run as root (it creates a bridge and tap devices)');
const { qemu, why: noQemu } = qemuUnavailable();
if (noQemu || !qemu) setupFailed(77, `qemu cannot run here: ${noQemu}`);
for (const f of ['tftp/xen-4.17-amd64', 'tftp/vmlinuz', 'tftp/initrd.img', 'tftp/installer/vmlinuz'].concat([
  'tftp/installer/initrd-base.img',
  'images/dom0-boot.json',
]))
  if (!existsSync(join(art, f)))
    setupFailed(
      2,
      `local-boot: ${join(art, f)} is missing: run scripts/xen-lab-artifacts && scripts/xen-lab-deploy-artifacts && scripts/xen-lab-local-boot-artifacts`,
    );
for (const tool of ['dnsmasq', 'rsync', 'ip', 'cpio', 'redis-server'])
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    setupFailed(2, `local-boot: ${tool} is missing (scripts/setup installs it)`);

// --- The lab network: a bridge with the deploy server's address, one tap for the machine.
const id = randomBytes(2).toString('hex');
const net = 100 + (parseInt(id, 16) % 150);
const bridge = `xb${id}`;
const server = `${netPrefix}.${net}.1`;
const work = join(tmpdir(), `xsm-lboot-${id}`);
const disks = join('/dev/shm', `xsm-lboot-${id}`);
mkdirSync(out, { recursive: true });
mkdirSync(join(work, 'tftp/installer'), { recursive: true });
mkdirSync(disks, { recursive: true });
const sh = (line: string) => execFileSync('sh', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

const m = {
  name: 'lboot1',
  mac: `52:54:00:5b:${id.slice(0, 2)}:10`,
  address: `${netPrefix}.${net}.11`,
  tap: `${bridge}t1`,
  qmp: join(work, 'lboot1.qmp'),
  serial: join(work, 'lboot1-serial.log'),
  disk: join(disks, 'lboot1.img'),
  proc: undefined as ChildProcess | undefined,
};
process.env.XSM_QMP_DIR = work;

const { cleanups, cleanup } = labCleanup(say);
process.on('SIGTERM', () => void cleanup().then(() => process.exit(143)));
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
sh(`ip tuntap add dev ${m.tap} mode tap && ip link set ${m.tap} master ${bridge} && ip link set ${m.tap} up`);
cleanups.push(() => void spawnSync('ip', ['link', 'del', m.tap]));
cleanups.push(() => rmSync(disks, { recursive: true, force: true }));
say(`lab: bridge ${bridge} ${server}/24, ${m.name} ${m.mac} -> ${m.address}`);
say(`lab-only boot settings: Xen "${LAB_XEN_ARGS}", Dom0 kernel "${LAB_DOM0_ARGS}"`);

// --- A private Redis on the bridge address only, with a password: the Dom0's agent and this script's
// workers share it; nothing listens beyond the bridge.
const redisPort = await new Promise<number>((res, rej) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const a = s.address();
    s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no free port'))));
  });
});
const redisPass = randomBytes(16).toString('hex');
const redisPid = join(work, 'redis.pid');
sh(
  `redis-server --bind ${server} --port ${redisPort} --requirepass ${redisPass} --save '' --appendonly no --daemonize yes --pidfile ${redisPid} --dir ${work} --logfile ${work}/redis.log`,
);
for (let i = 0; !existsSync(redisPid); i++) {
  if (i > 50) setupFailed(2, `local-boot: redis-server did not start: ${readFileSync(`${work}/redis.log`, 'utf8')}`);
  await new Promise((r) => setTimeout(r, 100));
}
cleanups.push(() => {
  const pid = Number(readFileSync(redisPid, 'utf8').trim());
  if (pid > 0) process.kill(pid, 'SIGTERM');
});
const redisUrl = `redis://:${redisPass}@${server}:${redisPort}`;
say(`redis: ${server}:${redisPort} (bridge address only, password)`);

// --- What XSM serves: the boot files, and the installer with the deploy key appended as a cpio.
const keyPath = join(work, 'deploy_key');
sh(`ssh-keygen -q -t ed25519 -N '' -C xsm-local-boot-deploy -f ${keyPath}`);
const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').trim();
for (const f of ['xen-4.17-amd64', 'vmlinuz', 'initrd.img', 'installer/vmlinuz'])
  copyFileSync(join(art, 'tftp', f), join(work, 'tftp', f));
sh(`set -e; d=${work}/ak; mkdir -p $d/root/.ssh; cp ${keyPath}.pub $d/root/.ssh/authorized_keys; chmod 700 $d/root $d/root/.ssh; chmod 600 $d/root/.ssh/authorized_keys
  (cd $d && find . | cpio -o -H newc --quiet | gzip -1) > ${work}/ak.cpio.gz
  cat ${art}/tftp/installer/initrd-base.img ${work}/ak.cpio.gz > ${work}/tftp/installer/initrd.img; chmod -R a+rX ${work}/tftp`);
const imagesDir = join(art, 'images');
const image = await readManifest(imagesDir, 'dom0-boot');

const prefix = `xsm-lboot-${id}`;
const rt = new XsmRuntime({ url: redisUrl, prefix });
cleanups.push(() => rt.close());
const pxe = new DnsmasqService(
  {
    stateDir: join(work, 'pxe'),
    tftpRoot: join(work, 'tftp'),
    interface: bridge,
    serverAddress: server,
    network: `${netPrefix}.${net}.0`,
    netmask: '255.255.255.0',
  },
  log.child({ component: 'dnsmasq' }),
);
await pxe.start();
let serverUp = true;
cleanups.push(() => (serverUp ? pxe.stop() : undefined));
const images = new ImageServer(
  { imagesDir, address: server, interface: bridge, rsyncPort: 8873, stateDir: join(work, 'rsync') },
  log.child({ component: 'images' }),
);
await images.start();
cleanups.push(() => (serverUp ? images.stop() : undefined));

const siteXml = tinyGuestSite(
  `    <Host name="${m.name}" address="${m.address}" mac="${m.mac}" cpus="2" memory="1023">\n      <Power driver="qmp" address="${m.qmp}"/>\n    </Host>`,
);

// --- The machine: bare, powered off, booting from the network.
sh(`truncate -s 2G ${m.disk}`);
const args = qemuArgs({ ...m, smp: 2, memMiB: 2048 });
writeFileSync(join(out, `${m.name}-qemu-command.txt`), [qemu, ...args].map((a) => shellQuote(a)).join(' ') + '\n');
// At labQemuNice (0 unless set): at nice 10 on a loaded machine (runs 1-3) the Dom0 kernel's PIT calibration
// took 206-380 s and the emulated CPUs starved each other into a stop_machine soft lockup.
m.proc = spawn('nice', ['-n', String(labQemuNice()), qemu, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
let qemuErr = '';
m.proc.stderr!.on('data', (d: Buffer) => (qemuErr += d.toString()));
m.proc.on('exit', (code, sig) =>
  say(`${m.name}: qemu exited ${code ?? sig}${qemuErr.trim() ? `: ${qemuErr.trim().slice(0, 300)}` : ''}`),
);
const serialText = () => {
  try {
    return readFileSync(m.serial, 'latin1').replaceAll('\r', '');
  } catch {
    return '';
  }
};
cleanups.push(() => {
  m.proc?.kill('SIGKILL');
  writeFileSync(join(out, `${m.name}-serial.log`), serialText());
});
for (let i = 0; !existsSync(m.qmp); i++) {
  if (i > 100 || m.proc.exitCode !== null)
    setupFailed(77, `qemu cannot run here: ${m.name}'s qemu did not open its QMP socket`);
  await new Promise((r) => setTimeout(r, 100));
}

// --- XSM's deploy worker, as workers/deploy.ts wires it, with local boot and the real agent start.
const powerOf = async (host: string) => {
  const { site } = await rt.sites.load(await rt.sites.currentVersion());
  return powerFor(host, site.hosts.find((h) => h.name === host)?.power, {
    shell: new LocalShell(),
    manual: rt.manualPower,
  });
};
const agentEnv = [
  `XSM_REDIS_URL=${redisUrl}`,
  `XSM_PREFIX=${prefix}`,
  `XSM_HEARTBEAT_MS=${AGENT_HEARTBEAT_MS}`,
  'XSM_LOCK_MS=60000',
  'XSM_CONCURRENCY=2',
].join('\n');
let agentStartedAt = 0;
/**
 * Stops dnsmasq (DHCP, TFTP) and the rsync daemon, and checks that they are gone. The lab does it just
 * before the deploy power-cycles the machine into its installed system (boot-xen has then switched its
 * network boot to "boot from local disk"), so both boots from the disk happen without the deploy
 * server: the deploy's own, which the agent's first start follows, and the lab's power cycle after it.
 */
async function stopDeployServer(when: string): Promise<void> {
  serverUp = false;
  await pxe.stop();
  await images.stop();
  const rsyncGone = spawnSync('bash', ['-c', `exec 3<>/dev/tcp/${server}/8873`]).status !== 0;
  // pgrep itself, not through sh: the shell's own command line would match the pattern (run 3).
  const dnsmasqGone = spawnSync('pgrep', ['-f', `dnsmasq -k --conf-file=${work}/`]).status !== 0;
  say(
    `deploy server stopped ${when}: dnsmasq ${dnsmasqGone ? 'gone' : 'STILL RUNNING'}, rsync ${rsyncGone ? 'refused' : 'STILL ANSWERS'}`,
  );
  phases.push({
    phase: 'deploy server down',
    ms: Date.now() - t0,
    result:
      dnsmasqGone && rsyncGone
        ? `ok ${when}: dnsmasq (DHCP, TFTP) stopped, rsync daemon stopped (connection refused)`
        : `FAILED: dnsmasq ${dnsmasqGone ? 'gone' : 'running'}, rsync ${rsyncGone ? 'refused' : 'answers'}`,
  });
}
const env: DeployEnv = {
  rt,
  log: log.child({ component: 'deploy' }),
  pxe,
  images,
  async power(host) {
    const p = await powerOf(host);
    return {
      describe: p.describe,
      status: () => p.status(),
      off: () => p.off(),
      bootFromNetwork: () => p.bootFromNetwork(),
      async on() {
        const netboot = await rt.deploys.field(host, 'netboot');
        if (serverUp && netboot === 'local-disk')
          await stopDeployServer('before the power cycle into the installed system');
        await p.on();
      },
    };
  },
  ssh: { privateKey: readFileSync(keyPath), publicKey },
  netmask: '255.255.255.0',
  bootBaseUrl: `tftp://${server}`,
  // The lab's proven Xen line (a PVH Dom0 on shadow paging, an IOMMU); GRUB's entry carries the same.
  // Both vCPUs for Dom0: with one (run 3) its initramfs died as qemu-deploy's --smp 1 runs did ("invalid
  // opcode" in libc after a fault restoring FPU state); with two, run 1's hung in stop_machine under load.
  // net.ifnames=0: systemd's udev would rename eth0, which the Dom0's network start-up names.
  // LAB_XEN_ARGS and LAB_DOM0_ARGS are settings for the emulation only, not for a real site's Dom0.
  xenBoot: {
    xen: 'xen-4.17-amd64',
    xenArgs: `console=com1 com1=115200,8n1 dom0=pvh,shadow dom0_mem=1024M,max:1024M iommu=1 loglvl=all guest_loglvl=all noreboot ${LAB_XEN_ARGS}`,
    kernel: 'vmlinuz',
    kernelArgs: `root=LABEL=root console=hvc0 earlyprintk=xen net.ifnames=0 ${LAB_DOM0_ARGS}`,
    initrd: 'initrd.img',
  },
  xenBootFrom: 'disk',
  layout: { swapMiB: 8 },
  installerInterface: 'eth0',
  relayCommand: ['false'],
  chainPort: 7070,
  sessionWaitS: 30,
  // Minutes-scale under emulation on a loaded machine: the Dom0 kernel's quick PIT calibration (100 000
  // trapped port reads, nested in TCG) took 3.5 min in run 1 and over 10 in run 2.
  timeouts: { installerMs: 5 * 60_000, bootMs: 30 * 60_000, agentMs: 20 * 60_000 },
  async startAgent(installed, data) {
    // On failure the error carries the unit's status and journal (HostAgentStartError), read before the
    // emulated Dom0 can crash and lose its journal (run 6); the deploy's log and phases.txt show it.
    await startHostAgentUnit(installed, data.host, agentEnv).catch((e: Error) => {
      say(`${data.host}: xsm-host-agent did not start:\n${e.message}`);
      throw e;
    });
    agentStartedAt = Date.now();
    say(`${data.host}: systemctl enable --now ${'xsm-host-agent.service'} returned`);
  },
};
const deployWorker = startDeployWorker(env, { lockDurationMs: 60000 });
cleanups.push(() => closeWithin('the deploy worker', () => closeWhenReady(deployWorker), 15000, say));

const phases: { phase: string; ms: number; result: string }[] = [];
function writeResults(): void {
  const table = [
    `# An installed Dom0 boots from its own disk and rejoins without the deploy server: ${new Date().toISOString()}`,
    `# image ${image.name}: ${image.bytes} bytes, sha256 ${image.sha256}; ${image.description}`,
    `${'phase'.padEnd(22)} ${'seconds'.padStart(8)}  result`,
    ...phases.map((p) => `${p.phase.padEnd(22)} ${secs(p.ms).padStart(8)}  ${p.result}`),
  ].join('\n');
  say(`phase timings:\n${table}`);
  writeFileSync(join(out, 'phases.txt'), table + '\n');
  writeFileSync(join(out, 'run.log'), logLines.join('\n') + '\n');
}
onFirstSigint(() => {
  phases.push({ phase: 'interrupted', ms: Date.now() - t0, result: 'stopped by SIGINT' });
  writeResults();
  void cleanup().then(() => {
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
});
const deadline = t0 + timeoutS * 1000;

async function until<T>(what: string, limitMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Math.min(Date.now() + limitMs, deadline);
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${secs(limitMs)} s`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The installed system over SSH, with the host key the deploy made and recorded. */
async function dom0<T>(fn: (s: SshShell) => Promise<T>): Promise<T> {
  const hostKey = await rt.deploys.field(m.name, 'hostKey');
  if (!hostKey) throw new Error(`${m.name}: no host key on record`);
  const s = new SshShell({
    host: m.address,
    privateKey: readFileSync(keyPath),
    hostKeySha256: hostKey,
    readyTimeoutMs: 20000,
  });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

/** The agent's journal and unit state, saved into --out under `label`. */
async function saveAgentState(label: string): Promise<string> {
  return dom0(async (s) => {
    const journal = await s.run('journalctl', ['-u', 'xsm-host-agent', '-o', 'short-monotonic', '--no-pager'], {
      timeoutMs: 120000,
    });
    const status = await s.run(
      'systemctl',
      ['show', 'xsm-host-agent', '-p', 'ActiveState,SubState,MainPID,NRestarts,ExecMainStartTimestampMonotonic'],
      { timeoutMs: 60000 },
    );
    const active = (await s.run('systemctl', ['is-active', 'xsm-host-agent'], { timeoutMs: 60000 })).stdout.trim();
    const ps = await s.run('sh', ['-c', 'ps -o pid,etimes,args -C node 2>/dev/null || ps'], { timeoutMs: 60000 });
    const boot = await s.run('systemd-analyze', [], { timeoutMs: 60000 });
    writeFileSync(
      join(out, `${m.name}-agent-${label}.txt`),
      [
        `# systemctl is-active xsm-host-agent\n${active}`,
        `# systemctl show xsm-host-agent\n${status.stdout}`,
        `# systemd-analyze\n${boot.stdout}${boot.stderr}`,
        `# node processes\n${ps.stdout}`,
        `# journalctl -u xsm-host-agent -o short-monotonic\n${journal.stdout}`,
      ].join('\n'),
    );
    // The heartbeat alone could come from an agent started by hand; the lab wants systemd's.
    if (active !== 'active')
      throw new Error(`${label}: \`systemctl is-active xsm-host-agent\` says ${active || '(nothing)'}`);
    return `is-active ${active}; ${status.stdout.replace(/\n/g, ' ').trim()}`;
  });
}

let failed = false;
/** Where the serial console stood when the lab power-cycled the machine. */
let serialBefore: number | undefined;
try {
  // --- Phase: deploy with local boot, the agent started by the deploy under systemd.
  await rt.sites.submit(siteXml, { base: 0, author: 'local-boot-lab', reason: 'lab machine' });
  say(`=== phase deploy (unicast, image ${image.name}: ${(image.bytes / 2 ** 20).toFixed(0)} MiB) ===`);
  const deployStart = Date.now();
  const req = await enqueueDeploy(rt, imagesDir, { macs: [m.mac], method: 'unicast', image: 'dom0-boot' });
  const jobId = req.jobs[0]!.jobId;
  const stepAt = new Map<string, number>();
  let lastDesc = '';
  const job = await until('deploy', 60 * 60_000, async () => {
    const j = (await listJobs(rt, { limit: 20, queue: DEPLOY_QUEUE })).find((x) => x.id === jobId);
    if (!j) return undefined;
    const p = j.progress as { step?: string; message?: string } | undefined;
    if (p?.step && !stepAt.has(p.step)) stepAt.set(p.step, Date.now() - deployStart);
    const why = j.failedReason && (j.state === 'failed' || j.state === 'delayed') ? `: ${j.failedReason}` : '';
    const desc = `${j.state}${p?.step ? ` step ${p.step}` : ''}${p?.message ? ` (${p.message})` : ''}${why}`;
    if (desc !== lastDesc) say(`deploy: ${(lastDesc = desc)}`);
    return j.state === 'completed' || j.state === 'failed' ? j : undefined;
  });
  const st = await rt.deploys.record(m.name);
  const at = (s: string) => (stepAt.has(s) ? `${secs(stepAt.get(s)!)} s` : '?');
  phases.push({
    phase: 'deploy',
    ms: Date.now() - deployStart,
    result:
      job.state === 'completed'
        ? `ok: steps started at partition ${at('partition')}, bootloader ${at('bootloader')}, boot-xen ${at('boot-xen')}, verify-xen ${at('verify-xen')}, start-agent ${at('start-agent')}, join ${at('join')}; image ${st.transferSeconds ?? '?'} s by ${st.transferMethod}; bootloader ${st.bootloader}, netboot ${st.netboot}, Xen ${st.xenVersion}`
        : `FAILED: ${job.failedReason}`,
  });
  if (job.state !== 'completed') throw new Error(`deploy failed: ${job.failedReason}`);
  const firstBoot = stepAt.get('boot-xen');
  const firstXl = stepAt.get('start-agent');
  if (firstBoot !== undefined && firstXl !== undefined)
    phases.push({
      phase: 'first boot from disk',
      ms: firstXl - firstBoot,
      result: 'ok: power cycle to `xl info` over SSH, deploy server down (GRUB from the disk, Xen, Dom0 under systemd)',
    });
  const joinedAt = Date.now();
  const agent = await saveAgentState('after-deploy');
  phases.push({
    phase: 'agent start (deploy)',
    ms: joinedAt - agentStartedAt,
    result: `ok: \`systemctl enable --now\` returned to first heartbeat in Redis; ${agent}`,
  });
  const seen = await rt.observed.host(m.name);
  say(`observed ${m.name}: ${JSON.stringify(seen)}`);

  if (serverUp) await stopDeployServer('after the deploy');

  // --- Phase: power cycle through QMP; GRUB from the disk, Xen, `xl info`, the agent's heartbeat.
  say('=== phase power cycle through QMP ===');
  serialBefore = serialText().length;
  const power = await powerOf(m.name);
  await power.off();
  const onAt = Date.now();
  await power.on();
  const sinceOn = () => serialText().slice(serialBefore);
  const grubAt = await until('GRUB loading Xen on the serial console', 10 * 60_000, async () =>
    /Loading Xen xen-[^\n]*\.gz/.test(sinceOn()) ? Date.now() : undefined,
  ).catch((e: Error) => (say(e.message), undefined));
  phases.push({
    phase: 'reboot: GRUB',
    ms: (grubAt ?? Date.now()) - onAt,
    result: grubAt
      ? `ok: "${/Loading Xen [^\n]*/.exec(sinceOn())?.[0]}" on the serial console${/No configuration methods succeeded|Nothing to boot|No more network devices/.test(sinceOn()) ? ', after iPXE found no DHCP server' : ''}`
      : 'FAILED: no GRUB line on the serial console',
  });
  if (!grubAt) throw new Error('GRUB did not load Xen');
  const info = await until('`xl info` over SSH after the power cycle', 30 * 60_000, () =>
    dom0(async (s) => parseXlInfo((await runChecked(s, 'xl', ['info'], { timeoutMs: 60000 })).stdout)),
  );
  phases.push({
    phase: 'reboot: xl info',
    ms: Date.now() - onAt,
    result: `ok: Xen ${info.xenVersion}, ${info.totalMemMiB} MiB, ${info.nrCpus} CPUs, over SSH with the recorded host key`,
  });
  const beat = await until("the agent's heartbeat after the power cycle", 20 * 60_000, async () => {
    const o = await rt.observed.host(m.name);
    return o && o.heartbeatAt > onAt ? o : undefined;
  });
  const agent2 = await saveAgentState('after-reboot');
  phases.push({
    phase: 'reboot: agent rejoins',
    ms: Date.now() - onAt,
    result: `ok: heartbeat without the deploy server (${beat.freeMemMiB} MiB free of ${beat.totalMemMiB}); ${agent2}`,
  });
} catch (e) {
  failed = true;
  say(`error: ${e instanceof Error ? e.message : String(e)}`);
  phases.push({ phase: 'stopped', ms: Date.now() - t0, result: e instanceof Error ? e.message : String(e) });
} finally {
  writeResults();
  const text = serialText();
  writeFileSync(join(out, `${m.name}-serial.log`), text);
  if (serialBefore !== undefined)
    writeFileSync(join(out, `${m.name}-serial-after-power-cycle.log`), text.slice(serialBefore));
  await cleanup();
  writeFileSync(join(out, 'run.log'), logLines.join('\n') + '\n');
  rmSync(work, { recursive: true, force: true });
  process.exit(failed ? 1 : 0);
}
