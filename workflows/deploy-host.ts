// Deploying one bare machine as a Xen Dom0, as a durable job on the deploy queue:
//   pxe-install -> power-on -> wait-installer -> partition -> write-image -> grow-root -> configure -> bootloader
//   -> volumes -> boot-xen -> verify-xen -> start-agent -> join
// The installed host boots Xen from its own disk (GRUB); its network-boot entry is switched to "boot
// from local disk", so it needs no deploy server at boot; a redeploy switches it back to the installer.
// Each step looks at the machine first (the journal says which step was running when a worker died):
// a resumed job never powers a machine on again once its installer answered, never re-partitions a disk
// that has the layout, and skips an image whose checksum is already on the disk.

import { createHash } from 'node:crypto';
import type { PowerControl } from '../src/drivers/power/power.ts';
import { parseXlInfo } from '../src/drivers/hypervisor/xl-parse.ts';
import type { HostInfo } from '../src/drivers/hypervisor/hypervisor.ts';
import { runChecked, type Shell } from '../src/drivers/shell.ts';
import { probeHostKey, shellQuote, SshShell } from '../src/drivers/ssh/ssh-shell.ts';
import {
  renderInstallerIpxe,
  renderLocalBootIpxe,
  renderXenIpxe,
  type DnsmasqService,
  type XenBootSpec,
} from '../src/deploy/dnsmasq.ts';
import {
  bootFilesFrom,
  bootMountDir,
  grubInstallCommand,
  mountRootCommand,
  renderGrubXenCfg,
  unmountCommand,
} from '../src/deploy/bootloader.ts';
import {
  layoutDisks,
  layoutTools,
  partitionFromJson,
  sfdiskScript,
  volumeCommands,
  type DiskLayout,
} from '../src/deploy/layout.ts';
import {
  chainReceiver,
  checksumCommand,
  isUdpcast,
  multicastReceiver,
  multicastReceiverLog,
  unicastReceiver,
  type ImageServer,
  type TransferMethod,
} from '../src/deploy/transfer.ts';
import { growFilesystem } from '../src/deploy/image.ts';
import type { DeployJobData } from '../src/runtime/queues.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Logger } from '../src/lib/log.ts';
import type { Step, StepRuntime } from '../src/lib/steps.ts';

export interface DeployEnv {
  rt: XsmRuntime;
  log: Logger;
  pxe: DnsmasqService;
  images: ImageServer;
  power(host: string): Promise<PowerControl>;
  /** The deploy worker's SSH identity (its public key is in the installer and written to the system). */
  ssh: { privateKey: Buffer; publicKey: string; user?: string };
  netmask: string;
  gateway?: string;
  /** Where the installer and Xen boot files are served (tftp://server or http://server). */
  bootBaseUrl: string;
  xenBoot: Omit<XenBootSpec, 'baseUrl'>;
  /**
   * Where the installed host boots Xen from: `disk` (GRUB installed by the bootloader step; its network
   * boot entry then says "boot from local disk") or `server` (iPXE multiboots Xen from the deploy
   * server at every boot: for an installer without grub-install).
   */
  xenBootFrom: 'disk' | 'server';
  layout: DiskLayout;
  /** The installer's network interface (udp-receiver binds it). */
  installerInterface: string;
  /** How the installer runs the chain relay (node + src/deploy/chain-relay.mjs). */
  relayCommand: string[];
  chainPort: number;
  /** Seconds the multicast/chain leader waits for the session's other machines. */
  sessionWaitS: number;
  timeouts: { installerMs: number; bootMs: number; agentMs: number };
  /** Starts the host agent on the freshly booted Dom0 (systemd on a real host). */
  startAgent(shell: Shell, data: DeployJobData): Promise<void>;
}

export interface DeployContext {
  env: DeployEnv;
  data: DeployJobData;
  /** 0 on the first attempt; a retried multicast or chain transfer falls back to unicast. */
  attemptsMade: number;
}

function field(c: DeployContext, f: string): Promise<string | undefined> {
  return c.env.rt.deploys.field(c.data.host, f);
}
function setFields(c: DeployContext, fields: Record<string, string | number>): Promise<void> {
  return c.env.rt.deploys.setFields(c.data.host, fields);
}

/** `ssh-ed25519 AAAA... comment` -> the SHA256 fingerprint ssh-keygen -lf prints. */
export function publicKeyFingerprint(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (!blob) throw new Error(`not an OpenSSH public key line: ${line.slice(0, 40)}`);
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

async function installerShell(c: DeployContext): Promise<SshShell> {
  const key = await field(c, 'installerKey');
  if (!key) throw new Error(`${c.data.host}: no installer host key on record (wait-installer did not finish)`);
  return new SshShell({
    host: c.data.address,
    privateKey: c.env.ssh.privateKey,
    hostKeySha256: key,
    ...(c.env.ssh.user ? { username: c.env.ssh.user } : {}),
  });
}

async function withShell<T>(c: DeployContext, fn: (s: SshShell) => Promise<T>): Promise<T> {
  const s = await installerShell(c);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function sh(s: Shell, line: string, timeoutMs?: number) {
  return runChecked(s, 'sh', ['-c', line], timeoutMs ? { timeoutMs } : {});
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > until)
      throw new Error(`${what} within ${Math.round(timeoutMs / 1000)} s${last ? ` (last: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The host's layout from the site file (carried in the job), else the deploy worker's default. */
function layoutOf(c: DeployContext): DiskLayout {
  return c.data.layout ?? c.env.layout;
}

function target(offset: number, c: DeployContext) {
  return { disk: c.data.disk, offset };
}

async function rootOffset(c: DeployContext): Promise<number> {
  const v = await field(c, 'rootOffset');
  if (v === undefined)
    throw new Error(`${c.data.host}: root partition offset not on record (partition did not finish)`);
  return Number(v);
}

async function imageOnDisk(c: DeployContext, s: Shell): Promise<boolean> {
  const offset = await rootOffset(c);
  const r = await s.run('sh', ['-c', checksumCommand(target(offset, c), c.data.image.bytes)]);
  return r.code === 0 && r.stdout.trim().split(/\s+/)[0] === c.data.image.sha256;
}

/** The portbase of a session's multicast round (even, as udpcast wants; one per session). */
function portbaseOf(session: string): number {
  const h = createHash('sha256').update(session).digest().readUInt16BE(0);
  return 9000 + 2 * (h % 400);
}

async function writeUnicast(c: DeployContext, s: Shell, srt: StepRuntime): Promise<void> {
  const offset = await rootOffset(c);
  // A name of its own per attempt: the rsync of an attempt whose worker died may still be running.
  const tmp = `/tmp/xsm-image-${c.data.image.sha256.slice(0, 12)}-${Date.now().toString(36)}.img`;
  const started = Date.now();
  // Progress: the size of the partial file, polled on a second channel of the same connection; one
  // poll at a time, so a slow installer is not buried under stat commands.
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    void s
      .run('stat', ['-c', '%s', tmp])
      .then(
        (r) => {
          const bytes = Number(r.stdout.trim());
          if (r.code === 0 && bytes > 0)
            void srt.report({
              bytes,
              totalBytes: c.data.image.bytes,
              percent: Math.round((100 * bytes) / c.data.image.bytes),
              rate: Math.round(bytes / Math.max(0.001, (Date.now() - started) / 1000)),
              message: 'rsync',
            });
        },
        () => {},
      )
      .finally(() => (polling = false));
  }, 1000);
  try {
    await sh(s, unicastReceiver(c.env.images.config, c.data.image, target(offset, c), tmp), 30 * 60_000);
  } finally {
    clearInterval(timer);
  }
}

async function writeUdpcast(
  c: DeployContext,
  s: Shell,
  srt: StepRuntime,
  mode: 'multicast' | 'broadcast',
): Promise<void> {
  const offset = await rootOffset(c);
  const portbase = portbaseOf(c.data.session);
  const deploys = c.env.rt.deploys;
  // The first machine of the session to get here runs udp-sender (in this worker, beside the images);
  // it waits for the others, or sessionWaitS, then sends once to everyone who joined.
  const leader = await deploys.claimSessionLead(c.data.session, 'sender', c.data.host);
  if (leader) {
    // sentAt: when the data starts to flow, once the session's machines joined (what Figure 5 times).
    const onStart = () => void deploys.markSessionSent(c.data.session, Date.now()).catch(() => {});
    void c.env.images
      .multicastSend(c.data.image, {
        portbase,
        receivers: c.data.sessionSize,
        maxWaitS: c.env.sessionWaitS,
        broadcast: mode === 'broadcast',
        onStart,
      })
      .then(() => c.env.log.info(`${mode} round done`, { session: c.data.session }))
      .catch((e: Error) => c.env.log.warn('udp-sender failed', { session: c.data.session, error: e.message }));
  }
  await srt.report({
    message: `udp-receiver (${mode}) on portbase ${portbase}${leader ? ' (this machine started the sender)' : ''}`,
  });
  await sh(
    s,
    multicastReceiver(c.env.installerInterface, portbase, target(offset, c), multicastReceiverLog(c.data.host)),
    30 * 60_000,
  );
}

async function writeChain(c: DeployContext, s: Shell, srt: StepRuntime): Promise<void> {
  const offset = await rootOffset(c);
  const deploys = c.env.rt.deploys;
  const session = c.data.session;
  await deploys.joinChain(session, { host: c.data.host, address: c.data.address });
  const leader = await deploys.claimSessionLead(session, 'head', c.data.host);
  if (leader) {
    // Form the chain from the machines ready by now: all of the session, or those that made the wait.
    const until = Date.now() + c.env.sessionWaitS * 1000;
    while ((await deploys.chainReady(session)).length < c.data.sessionSize && Date.now() < until)
      await new Promise((r) => setTimeout(r, 200));
    const members = await deploys.chainReady(session);
    await deploys.setChain(session, members);
    await deploys.markSessionSent(session, Date.now());
    void c.env.images
      .chainSend(c.data.image, { host: members[0]!.address, port: c.env.chainPort })
      .then(() => c.env.log.info('chain fed', { session: c.data.session, members: members.length }))
      .catch((e: Error) => c.env.log.warn('chain send failed', { session: c.data.session, error: e.message }));
  }
  const chain = await waitFor('the chain was not formed', (c.env.sessionWaitS + 30) * 1000, () =>
    deploys.chain(session),
  );
  const at = chain.findIndex((m) => m.host === c.data.host);
  if (at < 0)
    throw new Error(`${c.data.host} reached the transfer after its session's chain was formed; it retries by unicast`);
  const next = chain[at + 1];
  await srt.report({
    message: `chain position ${at + 1} of ${chain.length}${next ? `, forwarding to ${next.host}` : ' (tail)'}`,
  });
  await sh(
    s,
    chainReceiver(
      c.env.relayCommand,
      c.env.chainPort,
      next ? `${next.address}:${c.env.chainPort}` : undefined,
      target(offset, c),
      c.data.image,
    ),
    30 * 60_000,
  );
}

/** What verifyXen needs: the Dom0, its pinned host key, and what its Xen must offer. */
export interface VerifyXenTarget {
  host: string;
  address: string;
  port?: number;
  privateKey: Buffer;
  hostKeySha256: string;
  timeoutMs: number;
  /** Memory the site file gives the host's guests: Xen must report at least this. */
  expectMemMiB?: number;
}

/**
 * The verify step of deploy and of an in-place update: SSH with the recorded host key only, until `xl info`
 * answers; a Xen with less memory than the site file gives the host fails for good.
 */
export async function verifyXen(t: VerifyXenTarget): Promise<HostInfo> {
  const info = await waitFor(
    `${t.host} did not come back with its installed system (host key ${t.hostKeySha256}) and \`xl info\``,
    t.timeoutMs,
    async () => {
      const s = new SshShell({
        host: t.address,
        ...(t.port ? { port: t.port } : {}),
        privateKey: t.privateKey,
        hostKeySha256: t.hostKeySha256,
        readyTimeoutMs: 3000,
      });
      try {
        return parseXlInfo((await runChecked(s, 'xl', ['info'])).stdout);
      } finally {
        await s.close();
      }
    },
  );
  if (t.expectMemMiB && info.totalMemMiB < t.expectMemMiB)
    throw new PermanentError(
      `${t.host}: Xen reports ${info.totalMemMiB} MiB but the site file gives its guests ${t.expectMemMiB} MiB`,
      "check the machine's memory, or lower the host's memory in the site file",
    );
  return info;
}

export const deploySteps: readonly Step<DeployContext>[] = [
  {
    name: 'pxe-install',
    run: async (c) => {
      const { env, data } = c;
      const script = renderInstallerIpxe(env.bootBaseUrl, {
        hostname: data.host,
        address: data.address,
        netmask: env.netmask,
        ...(env.gateway ? { gateway: env.gateway } : {}),
        image: `${data.method}://${env.images.config.address}/${data.image.name}`,
      });
      await env.pxe.setHost({ mac: data.mac, address: data.address, hostname: data.host }, script);
    },
  },
  {
    name: 'power-on',
    run: async (c, srt) => {
      const power = await c.env.power(c.data.host);
      // Resumed after the machine was switched on: if its installer answers, do not reboot it.
      if (
        srt.resumed &&
        (await probeHostKey(c.data.address, 22, 2000).then(
          () => true,
          () => false,
        ))
      )
        return;
      await power.bootFromNetwork();
      if ((await power.status()) === 'on') await power.off();
      await power.on();
      await c.env.rt.deploys.increment(c.data.host, 'powerOns');
      await srt.report({ message: `switched on through ${power.describe}, booting from the network` });
    },
  },
  {
    name: 'wait-installer',
    run: async (c) => {
      // The installer's key is new at every boot: it is learnt here, on the deployment network XSM
      // controls, and pinned for the rest of the install.
      const key = await waitFor(
        `${c.data.host} (${c.data.mac}) did not answer in its installer at ${c.data.address}:22; check that it boots from the network (dnsmasq's log) and its cabling`,
        c.env.timeouts.installerMs,
        () => probeHostKey(c.data.address, 22, 3000),
      );
      await setFields(c, { installerKey: key });
    },
  },
  {
    name: 'partition',
    run: async (c, srt) => {
      const layout = layoutOf(c);
      const disks = layoutDisks(layout, c.data.disk);
      await withShell(c, async (s) => {
        const script = sfdiskScript(layout);
        if (srt.resumed) {
          const r = await s.run('sfdisk', ['--json', c.data.disk]);
          if (r.code === 0 && /"name":\s*"root"/.test(r.stdout)) {
            const p = partitionFromJson(r.stdout, 'root', c.data.disk);
            await setFields(c, { rootOffset: p.offset, rootBytes: p.bytes, rootNode: p.node });
            return;
          }
        }
        // Check, then act: a layout the installer cannot make fails before any disk is wiped.
        const missing = [];
        for (const tool of layoutTools(layout))
          if ((await s.run('sh', ['-c', `command -v ${tool}`])).code !== 0) missing.push(tool);
        if (missing.length)
          throw new PermanentError(
            `${c.data.host}: layout ${layout.name ?? '(default)'} needs ${missing.join(', ')}, which the installer lacks; no disk was touched`,
            'add mdadm/lvm2 to the installer, or give the host a layout without <Raid1>/<VolumeGroup>',
          );
        for (const disk of disks) {
          const r = await s.run('sfdisk', ['--wipe', 'always', '-q', disk], { input: script });
          // A disk that refuses a partition table is broken or absent: retrying will not fix it.
          if (r.code !== 0)
            throw new PermanentError(
              `${c.data.host}: partitioning ${disk} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`,
              'check the disk (or the disk path given to xsm host deploy), then deploy the host again',
            );
        }
        const json = await runChecked(s, 'sfdisk', ['--json', c.data.disk]);
        const p = partitionFromJson(json.stdout, 'root', c.data.disk);
        if (p.bytes < c.data.image.bytes)
          throw new PermanentError(
            `${c.data.host}: root partition has ${p.bytes} bytes, the image needs ${c.data.image.bytes}`,
            'use a larger disk or a smaller swap in the layout',
          );
        await setFields(c, {
          rootOffset: p.offset,
          rootBytes: p.bytes,
          rootNode: p.node,
          layout: layout.name ?? '(default)',
        });
      });
    },
  },
  {
    name: 'write-image',
    run: async (c, srt) => {
      await withShell(c, async (s) => {
        // Resumed: the interrupted transfer may have finished, or a previous attempt did.
        if (srt.resumed && (await imageOnDisk(c, s))) {
          await setFields(c, {
            imageSha256: c.data.image.sha256,
            transferMethod: (await field(c, 'transferMethod')) ?? 'found on disk',
          });
          return;
        }
        const started = Date.now();
        await setFields(c, { imageStartedAt: started });
        const method: TransferMethod = c.attemptsMade > 0 ? 'unicast' : c.data.method;
        if (method !== c.data.method)
          srt.log.warn('retrying the transfer by unicast', { host: c.data.host, was: c.data.method });
        if (method === 'unicast') await writeUnicast(c, s, srt);
        else if (isUdpcast(method)) await writeUdpcast(c, s, srt, method);
        else await writeChain(c, s, srt);
        if (!(await imageOnDisk(c, s))) {
          // udp-receiver can end early and still exit 0 (a receive timeout): its last words say why.
          const said = isUdpcast(method)
            ? (await s.run('tail', ['-n', '2', multicastReceiverLog(c.data.host)]).catch(() => undefined))?.stdout
                .trim()
                .replace(/\s+/g, ' ')
            : undefined;
          throw new Error(
            `${c.data.host}: the image on ${c.data.disk} does not match its SHA-256 after the ${method} transfer${said ? ` (udp-receiver: ${said})` : ''}`,
          );
        }
        const secs = (Date.now() - started) / 1000;
        await setFields(c, {
          imageSha256: c.data.image.sha256,
          transferMethod: method,
          transferSeconds: secs.toFixed(3),
          imageDoneAt: Date.now(),
        });
        await srt.report({
          bytes: c.data.image.bytes,
          totalBytes: c.data.image.bytes,
          percent: 100,
          rate: Math.round(c.data.image.bytes / Math.max(0.001, secs)),
          message: `${method} done, checksum verified`,
        });
      });
    },
  },
  {
    name: 'grow-root',
    run: async (c, srt) => {
      const layout = layoutOf(c);
      // A mirror's root is md0, whose metadata (1.0) sits at the end of the partition: the volumes step
      // grows the file system on md0 once the mirror exists, to md0's size, not the partition's.
      if (layout.raid1) return;
      const bytes = Number(await field(c, 'rootBytes'));
      if (!bytes) throw new Error(`${c.data.host}: root partition size not on record (partition did not finish)`);
      await withShell(c, async (s) => {
        const node = await field(c, 'rootNode');
        const g = await growFilesystem(s, {
          disk: c.data.disk,
          offset: await rootOffset(c),
          bytes,
          ...(node ? { node } : {}),
        });
        await setFields(c, { rootFsBytes: g.toBytes });
        await srt.report({
          message: `root file system grown from ${Math.round(g.fromBytes / 1048576)} MiB (the image) to ${Math.round(g.toBytes / 1048576)} MiB (its partition)`,
        });
      });
    },
  },
  {
    name: 'configure',
    run: async (c) => {
      await withShell(c, async (s) => {
        const offset = await rootOffset(c);
        const fs = `${c.data.disk}?offset=${offset}`;
        const dir = `/tmp/xsm-configure-${c.data.host}`;
        const key = `${dir}/ssh_host_ed25519_key`;
        // A host key made here, for the installed system: recorded now, pinned for every later SSH.
        await sh(
          s,
          `set -e; rm -rf ${shellQuote(dir)}; mkdir -p ${shellQuote(dir)}; ssh-keygen -q -t ed25519 -N '' -C ${shellQuote(`root@${c.data.host}`)} -f ${shellQuote(key)}`,
        );
        const files: [string, string][] = [
          ['hostname', `${c.data.host}\n`],
          [
            'interfaces',
            `auto xenbr0\niface xenbr0 inet static\n    address ${c.data.address}\n    netmask ${c.env.netmask}\n${c.env.gateway ? `    gateway ${c.env.gateway}\n` : ''}    bridge_ports eth0\n`,
          ],
          ['authorized_keys', c.env.ssh.publicKey.trim() + '\n'],
        ];
        for (const [name, text] of files)
          await runChecked(s, 'sh', ['-c', `cat > ${shellQuote(`${dir}/${name}`)}`], { input: text });
        const cmds = [
          ['/etc/hostname', 'hostname'],
          ['/etc/network/interfaces.d/xsm', 'interfaces'],
          ['/root/.ssh/authorized_keys', 'authorized_keys'],
          ['/etc/ssh/ssh_host_ed25519_key', 'ssh_host_ed25519_key'],
          ['/etc/ssh/ssh_host_ed25519_key.pub', 'ssh_host_ed25519_key.pub'],
        ].flatMap(([into, from]) => [`rm ${into}`, `write ${dir}/${from} ${into}`]);
        await runChecked(s, 'sh', ['-c', `cat > ${shellQuote(`${dir}/debugfs.cmd`)}`], {
          input: cmds.join('\n') + '\n',
        });
        await runChecked(s, 'debugfs', ['-w', '-f', `${dir}/debugfs.cmd`, fs]);
        const check = await runChecked(s, 'debugfs', ['-R', 'cat /etc/hostname', fs]);
        if (check.stdout.trim() !== c.data.host)
          throw new Error(
            `${c.data.host}: /etc/hostname on the new system reads "${check.stdout.trim()}" after configuring`,
          );
        const pub = await runChecked(s, 'cat', [`${key}.pub`]);
        await setFields(c, { hostKey: publicKeyFingerprint(pub.stdout) });
        await s.run('rm', ['-rf', dir]);
      });
    },
  },
  {
    name: 'bootloader',
    run: async (c, srt) => {
      if (c.env.xenBootFrom !== 'disk') {
        await srt.report({ message: 'no bootloader installed: this site boots Xen from the deploy server' });
        return;
      }
      await withShell(c, async (s) => {
        const dir = bootMountDir(c.data.host);
        const table = await runChecked(s, 'sfdisk', ['--json', c.data.disk]);
        const root = partitionFromJson(table.stdout, 'root', c.data.disk);
        const ls = await s.run('sh', ['-c', mountRootCommand({ disk: c.data.disk, ...root }, dir)]);
        if (ls.code !== 0) {
          await s.run('sh', ['-c', unmountCommand(dir)]);
          throw new Error(
            `${c.data.host}: mounting the new root file system failed: ${(ls.stderr || ls.stdout).trim()}`,
          );
        }
        let cfg: string;
        try {
          const files = bootFilesFrom(ls.stdout.split('\n').filter(Boolean), c.data.host);
          cfg = renderGrubXenCfg(files, c.env.xenBoot);
          await setFields(c, { bootXen: files.xen, bootKernel: files.kernel });
        } catch (e) {
          await s.run('sh', ['-c', unmountCommand(dir)]);
          throw e;
        }
        const r = await s.run('sh', ['-c', grubInstallCommand(c.data.disk, dir)], { input: cfg });
        if (r.code !== 0)
          throw new PermanentError(
            `${c.data.host}: grub-install on ${c.data.disk} failed: ${(r.stdout || r.stderr).trim().split('\n').slice(-2).join(' ')}`,
            'check that the layout has a BIOS boot partition and the installer has grub-pc-bin, then deploy again',
          );
      });
      const xen = await field(c, 'bootXen');
      await setFields(c, { bootloader: 'grub' });
      await srt.report({ message: `GRUB installed on ${c.data.disk} with Debian's Xen entry (/boot/${xen})` });
    },
  },
  {
    name: 'volumes',
    run: async (c, srt) => {
      const layout = layoutOf(c);
      if (!layout.raid1 && !layout.volumeGroup) return;
      await withShell(c, async (s) => {
        const disks = layoutDisks(layout, c.data.disk);
        const tables = await Promise.all(disks.map((d) => runChecked(s, 'sfdisk', ['--json', d])));
        const nodes = (name: string) => tables.map((t, i) => partitionFromJson(t.stdout, name, disks[i]!).node);
        const root = partitionFromJson(tables[0]!.stdout, 'root', disks[0]!);
        const bios = partitionFromJson(tables[0]!.stdout, 'bios', disks[0]!);
        const cmds = volumeCommands(
          layout,
          { root: nodes('root'), vg: layout.volumeGroup ? nodes('vg') : [] },
          { offset: root.offset, bytes: root.bytes, biosOffset: bios.offset, disks },
        );
        for (const cmd of cmds) await sh(s, cmd, 30 * 60_000);
      });
      await srt.report({
        message: [
          layout.raid1 ? `RAID1 over ${layout.raid1.join(' and ')} (md0: root)` : '',
          layout.volumeGroup ? `volume group ${layout.volumeGroup.name} for VM disks` : '',
        ]
          .filter(Boolean)
          .join('; '),
      });
    },
  },
  {
    name: 'boot-xen',
    run: async (c, srt) => {
      const fromDisk = c.env.xenBootFrom === 'disk';
      await c.env.pxe.setBootScript(
        c.data.mac,
        fromDisk ? renderLocalBootIpxe() : renderXenIpxe(c.data.host, { ...c.env.xenBoot, baseUrl: c.env.bootBaseUrl }),
      );
      await setFields(c, { netboot: fromDisk ? 'local-disk' : 'xen-from-server' });
      const power = await c.env.power(c.data.host);
      await power.off();
      await power.on();
      await srt.report({
        message: fromDisk
          ? `network boot entry set to "boot from local disk"; power-cycled: GRUB on ${c.data.disk} loads Xen (/boot/${(await field(c, 'bootXen')) ?? '?'})`
          : `network boot entry set to multiboot Xen from the deploy server (${c.env.bootBaseUrl}); power-cycled: this host needs the deploy server at every boot`,
      });
    },
  },
  {
    name: 'verify-xen',
    run: async (c, srt) => {
      const hostKey = await field(c, 'hostKey');
      if (!hostKey) throw new Error(`${c.data.host}: no host key on record from configure`);
      const info = await verifyXen({
        host: c.data.host,
        address: c.data.address,
        privateKey: c.env.ssh.privateKey,
        hostKeySha256: hostKey,
        timeoutMs: c.env.timeouts.bootMs,
        ...(c.data.expectMemMiB ? { expectMemMiB: c.data.expectMemMiB } : {}),
      });
      await setFields(c, { xenVersion: info.xenVersion, totalMemMiB: info.totalMemMiB, nrCpus: info.nrCpus });
      await srt.report({ message: `Xen ${info.xenVersion}: ${info.totalMemMiB} MiB, ${info.nrCpus} CPUs` });
    },
  },
  {
    name: 'start-agent',
    run: async (c) => {
      const hostKey = (await field(c, 'hostKey'))!;
      const s = new SshShell({ host: c.data.address, privateKey: c.env.ssh.privateKey, hostKeySha256: hostKey });
      try {
        await c.env.startAgent(s, c.data);
      } finally {
        await s.close();
      }
    },
  },
  {
    name: 'join',
    run: async (c, srt) => {
      const since = Number((await field(c, 'agentWaitFrom')) ?? 0) || Date.now() - 1000;
      await setFields(c, { agentWaitFrom: since });
      const seen = await waitFor(
        `the host agent on ${c.data.host} did not report to Redis`,
        c.env.timeouts.agentMs,
        async () => {
          const o = await c.env.rt.observed.host(c.data.host);
          return o && o.heartbeatAt >= since ? o : undefined;
        },
      );
      // The image the host runs, as `xsm host update` records it too (N:V; version 0: unversioned).
      await setFields(c, { deployedAt: Date.now(), image: `${c.data.image.name}:${c.data.image.version ?? 0}` });
      const hostKey = await field(c, 'hostKey');
      await c.env.rt.deploys.markDeployed(c.data.host, {
        at: Date.now(),
        image: c.data.image.name,
        sha256: c.data.image.sha256,
        ...(hostKey ? { hostKey } : {}),
      });
      await srt.report({ message: `joined: agent reports ${seen.freeMemMiB} MiB free of ${seen.totalMemMiB}` });
    },
  },
];
