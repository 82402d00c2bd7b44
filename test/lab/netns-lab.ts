// A deployment lab of bare machines as network namespaces on a bridge this lab creates (root only).
// Each machine has a NIC with a fixed MAC (a veth whose other end is on the bridge), a disk (an image
// file) and firmware that does what a PXE ROM + iPXE do, with the real protocols: DHCP from XSM's
// dnsmasq (busybox udhcpc, announcing iPXE's option 175), its boot script over TFTP, then either
//  - the installer: an sshd with a fresh host key (the deploy worker drives it over ssh2), or
//  - the installed system: the root partition is read from the disk; with no valid system there the
//    boot fails like a real one would (no sshd), else sshd starts with the host key the installer wrote
//    into that system, and `xl` is the simulated Xen host's (src/drivers/hypervisor/sim-xl.ts).
// Links can be shaped with tc (every link, the server's included, to one rate) for the Figure 5 bench.
// Everything stays on the lab's bridge and namespaces; teardown removes them.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { PowerControl, PowerState } from '../../src/drivers/power/power.ts';
import { parseGrubXenEntry } from '../../src/deploy/bootloader.ts';

/**
 * The lab installer's grub-install (i386-pc), for machines whose "disk" is a file: like GRUB's, it
 * needs the GPT's BIOS boot partition to embed core.img, writes boot.img's code (with GRUB's "GRUB "
 * signature) into the MBR's boot-code area, leaving the partition table alone, and puts its modules in
 * the boot directory. The lab's firmware boots a disk only when that signature is there.
 */
const LAB_GRUB_INSTALL = `#!/bin/sh
set -e
target= boot= disk=
for a; do case "$a" in --target=*) target=\${a#--target=};; --boot-directory=*) boot=\${a#--boot-directory=};; -*) ;; *) disk=$a;; esac; done
[ "$target" = i386-pc ] || { echo "grub-install: error: this lab's grub-install knows i386-pc only." >&2; exit 1; }
[ -n "$disk" ] && [ -n "$boot" ] || { echo "grub-install: error: install device isn't specified." >&2; exit 1; }
echo "Installing for i386-pc platform."
if ! sfdisk --json "$disk" | grep -qi 21686148-6449-6E6F-744E-656564454649; then
  echo "grub-install: warning: this GPT partition label contains no BIOS Boot Partition; embedding won't be possible." >&2
  echo "grub-install: error: embedding is not possible, but this is required for cross-disk install." >&2
  exit 1
fi
mkdir -p "$boot/grub/i386-pc"
printf 'lab core.img\n' > "$boot/grub/i386-pc/core.img"
printf 'GRUB \\000Geom\\000Hard Disk\\000Read\\000 Error\\r\\n' | dd of="$disk" bs=1 seek=384 conv=notrunc status=none
echo "Installation finished. No error reported."
`;

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');

export function labSupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'the lab needs root (network namespaces, a bridge)';
  for (const bin of [
    '/usr/sbin/ip',
    '/usr/sbin/dnsmasq',
    '/usr/sbin/sshd',
    '/usr/bin/busybox',
    '/usr/sbin/sfdisk',
    '/usr/sbin/debugfs',
    '/usr/bin/rsync',
  ]) {
    if (!existsSync(bin)) return `${bin} is missing (bash scripts/setup installs the lab's packages)`;
  }
  return undefined;
}

export interface LabNode {
  name: string;
  ns: string;
  mac: string;
  /** Address dnsmasq gives it (the site file's Host address). */
  address: string;
  /** The disk the installer writes: an image file (or a path that cannot be a disk, to break it). */
  disk: string;
  dir: string;
  power: LabPower;
}

export interface LabOptions {
  nodes: number;
  /** Rate of every link in Mbit/s (tc tbf), or undefined for unshaped veths. */
  rateMbit?: number;
  diskMiB?: number;
  /**
   * Where the machines' disk files go (default: each machine's lab directory). Real machines each have
   * a disk of their own; 16 lab disks on this machine's one disk would measure that disk, not the
   * image distribution, so the Figure 5 bench puts them in RAM (/dev/shm).
   */
  diskDir?: string;
  /** Simulated Xen memory of each installed host. */
  memMiB?: number;
  /** Public key (OpenSSH line) the deploy worker logs in with. */
  authorizedKey: string;
  /** The simulated xl compiled to one file (deploy-site's labBundle); else each `xl` call starts tsx. */
  xlEntry?: string;
}

/**
 * The first letters of every namespace, veth and bridge the lab makes (XSM_LAB_PREFIX, 1-3 lower-case
 * letters, default "xl"), so labs run side by side on one machine are told apart and cleaned up by name.
 */
function labPrefix(): string {
  const p = process.env.XSM_LAB_PREFIX ?? 'xl';
  if (!/^[a-z]{1,3}$/.test(p)) throw new Error(`XSM_LAB_PREFIX "${p}": give 1-3 lower-case letters`);
  return p;
}

export class NetnsLab {
  readonly id = randomBytes(2).toString('hex');
  readonly prefix = labPrefix();
  readonly bridge: string;
  readonly subnet: number;
  readonly serverAddress: string;
  readonly nodes: LabNode[] = [];
  dir = '';
  private proxies: Server[] = [];
  private proxied = new Set<import('node:net').Socket>();

  constructor(readonly opts: LabOptions) {
    this.bridge = `${this.prefix}${this.id}br`;
    this.subnet = 100 + (parseInt(this.id, 16) % 150);
    this.serverAddress = `10.213.${this.subnet}.1`;
  }

  get network() {
    return `10.213.${this.subnet}.0`;
  }

  async up(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), `xsm-lab-${this.id}-`));
    await chmod(this.dir, 0o755); // dnsmasq (its own user) reads its hosts file and TFTP root below it
    await mkdir('/run/sshd', { recursive: true });
    await run('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    // With its broadcast address set: udpcast's receivers say hello to the subnet's broadcast address.
    await run('ip', ['addr', 'add', `${this.serverAddress}/24`, 'brd', '+', 'dev', this.bridge]);
    await run('ip', ['link', 'set', this.bridge, 'up']);
    if (this.opts.rateMbit) await this.shape(this.bridge);
    for (let i = 1; i <= this.opts.nodes; i++) await this.addNode(i);
  }

  private async shape(dev: string): Promise<void> {
    const rate = `${this.opts.rateMbit}mbit`;
    // burst: at least rate/HZ; latency bounds the queue.
    await run('ip', ['link', 'set', dev, 'txqueuelen', '1000']);
    await run('tc', ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '50ms']);
  }

  private async nsShape(ns: string, dev: string): Promise<void> {
    await run('ip', [
      'netns',
      'exec',
      ns,
      'tc',
      'qdisc',
      'replace',
      'dev',
      dev,
      'root',
      'tbf',
      'rate',
      `${this.opts.rateMbit}mbit`,
      'burst',
      '64kb',
      'latency',
      '50ms',
    ]);
  }

  private async addNode(i: number): Promise<void> {
    const name = `node${i}`;
    const ns = `${this.prefix}${this.id}n${i}`;
    const veth = `${this.prefix}${this.id}v${i}`;
    const mac = `52:54:00:${this.id.slice(0, 2)}:${this.id.slice(2, 4)}:${i.toString(16).padStart(2, '0')}`;
    const dir = join(this.dir, name);
    await mkdir(dir, { recursive: true });
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await run('ip', ['link', 'set', veth, 'master', this.bridge]);
    await run('ip', ['link', 'set', veth, 'up']);
    await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'address', mac]);
    await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    await run('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up']);
    if (this.opts.rateMbit) {
      await this.shape(veth); // towards the node
      await this.nsShape(ns, 'eth0'); // from the node (chain forwarding)
    }
    const disk = this.opts.diskDir ? join(this.opts.diskDir, `xsm-lab-${this.id}-${name}.img`) : join(dir, 'disk.img');
    await run('truncate', ['-s', `${this.opts.diskMiB ?? 128}M`, disk]);
    const node: LabNode = {
      name,
      ns,
      mac,
      address: `10.213.${this.subnet}.${10 + i}`,
      disk,
      dir,
      power: undefined as unknown as LabPower,
    };
    node.power = new LabPower(this, node);
    this.nodes.push(node);
  }

  /** Makes a node's disk unusable (a directory where the disk should be): the "broken disk" case. */
  async breakDisk(node: LabNode): Promise<void> {
    await rm(node.disk, { force: true });
    await mkdir(node.disk, { recursive: true });
  }

  /** Forwards bridgeAddress:port to a loopback service (Redis) so agents in the namespaces reach it. */
  async forward(port: number, target: { host: string; port: number }): Promise<string> {
    const server = createServer((c) => {
      const up = connect(target.port, target.host);
      this.proxied.add(c).add(up);
      c.pipe(up).pipe(c);
      const end = () => {
        c.destroy();
        up.destroy();
        this.proxied.delete(c);
        this.proxied.delete(up);
      };
      c.on('error', end);
      up.on('error', end);
      c.on('close', end);
      up.on('close', end);
    });
    await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, this.serverAddress, () => ok()));
    this.proxies.push(server);
    return `${this.serverAddress}:${(server.address() as { port: number }).port}`;
  }

  async down(): Promise<void> {
    for (const n of this.nodes) await n.power.off().catch(() => {});
    // The namespaces' ends vanish with them: no FIN will ever come, so cut these here.
    for (const sock of this.proxied) sock.destroy();
    for (const p of this.proxies) p.close();
    for (const n of this.nodes) await run('ip', ['netns', 'del', n.ns]).catch(() => {});
    await run('ip', ['link', 'del', this.bridge]).catch(() => {});
    if (this.opts.diskDir) for (const n of this.nodes) await rm(n.disk, { recursive: true, force: true });
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

interface DhcpAnswer {
  ip: string;
  mask: string;
  siaddr: string;
  bootFile: string;
}

/**
 * A lab machine's power and firmware. on(): DHCP + TFTP, then the installer or the installed system.
 * off(): every process of the machine dies and its address goes, as when the plug is pulled.
 */
export class LabPower implements PowerControl {
  readonly describe: string;
  private state: PowerState = 'off';
  private procs: ChildProcess[] = [];
  /** What the machine's console would show: each boot's stages, for test failures. */
  readonly console: string[] = [];
  powerOns = 0;

  constructor(
    private readonly lab: NetnsLab,
    private readonly node: LabNode,
  ) {
    this.describe = `lab ${node.name}`;
  }

  async status(): Promise<PowerState> {
    return this.state;
  }
  async bootFromNetwork(): Promise<void> {
    // The lab firmware always boots from the network; the boot script decides installer or disk.
  }
  async on(): Promise<void> {
    if (this.state === 'on') return;
    this.state = 'on';
    this.powerOns++;
    // Firmware runs in the background like a real boot; failures land on the console.
    void this.boot().catch((e: Error) => this.console.push(`boot failed: ${e.message}`));
  }
  async off(): Promise<void> {
    this.state = 'off';
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
    this.procs = [];
    await run('ip', ['netns', 'exec', this.node.ns, 'ip', 'addr', 'flush', 'dev', 'eth0']).catch(() => {});
    // Processes a deploy started over SSH in this machine (receivers, relays, agents) die with it.
    await run('ip', ['netns', 'pids', this.node.ns])
      .then(({ stdout }) => {
        for (const pid of stdout.split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      })
      .catch(() => {});
  }

  private inNs(args: string[]) {
    return run('ip', ['netns', 'exec', this.node.ns, ...args], { maxBuffer: 16 << 20 });
  }

  private async dhcp(): Promise<DhcpAnswer> {
    const out = join(this.node.dir, 'dhcp.env');
    const script = join(this.node.dir, 'udhcpc.sh');
    await writeFile(
      script,
      `#!/bin/sh\ncase "$1" in bound|renew)\n  ip addr flush dev "$interface"\n  ip addr add "$ip/\${mask:-24}" brd + dev "$interface"\n  ip route replace 224.0.0.0/4 dev "$interface"\n  { echo "ip=$ip"; echo "mask=$mask"; echo "siaddr=$siaddr"; echo "boot_file=$boot_file"; } > ${out}\n;; esac\n`,
    );
    await chmod(script, 0o755);
    await rm(out, { force: true });
    // Option 175 present: dnsmasq tags the client "ipxe" and hands it the per-MAC script URL.
    await this.inNs([
      'busybox',
      'udhcpc',
      '-i',
      'eth0',
      '-n',
      '-q',
      '-f',
      '-t',
      '10',
      '-T',
      '1',
      '-x',
      '0xaf:0101',
      '-s',
      script,
    ]);
    const env = new Map(
      (await readFile(out, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
    );
    return {
      ip: env.get('ip') ?? '',
      mask: env.get('mask') ?? '',
      siaddr: env.get('siaddr') ?? '',
      bootFile: env.get('boot_file') ?? '',
    };
  }

  private async boot(): Promise<void> {
    let d: DhcpAnswer;
    try {
      d = await this.dhcp();
    } catch {
      // A PXE ROM that gets no DHCP answer gives up and the BIOS tries its next boot device.
      this.console.push('PXE: no DHCP answer; BIOS: next boot device, the disk');
      return this.bootLocal();
    }
    this.console.push(`DHCP: ${d.ip}/${d.mask} next-server ${d.siaddr} file ${d.bootFile}`);
    if (d.ip !== this.node.address) throw new Error(`DHCP gave ${d.ip}, expected ${this.node.address}`);
    const hexhyp = this.node.mac.replace(/:/g, '-');
    const file = d.bootFile.replace('${mac:hexhyp}', hexhyp).replace(/^tftp:\/\/[^/]+\//, '');
    const local = join(this.node.dir, 'boot.ipxe');
    await rm(local, { force: true });
    await this.inNs(['busybox', 'tftp', '-g', '-r', file, '-l', local, d.siaddr]);
    const script = await readFile(local, 'utf8');
    this.console.push(`TFTP: ${file} (${script.length} bytes)`);
    if (this.state !== 'on') return;
    if (/\/installer\/vmlinuz/.test(script)) return this.startInstaller();
    if (/^exit$/m.test(script)) {
      this.console.push('iPXE: exit; BIOS: next boot device, the disk');
      return this.bootLocal();
    }
    if (/^kernel /m.test(script)) return this.bootDisk();
    throw new Error(`boot script ${file} boots nothing: ${script.slice(0, 80)}`);
  }

  private async sshd(hostKey: string, path: string, env: Record<string, string> = {}): Promise<void> {
    const dir = this.node.dir;
    await writeFile(join(dir, 'authorized_keys'), this.lab.opts.authorizedKey + '\n', { mode: 0o600 });
    const setEnv = Object.entries({ PATH: path, ...env })
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const cfg = [
      `ListenAddress ${this.node.address}:22`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${join(dir, 'sshd.pid')}`,
      `SetEnv ${setEnv}`,
      'LogLevel ERROR',
    ].join('\n');
    await writeFile(join(dir, 'sshd_config'), cfg + '\n');
    // A real installer's root account is bare; this machine's root may have a ~/.bashrc that sshd's
    // `bash -c` sources for every command (a pyenv init here took seconds and serialized machines on its
    // lock, which made N unicast deploys look superlinear). `ip netns exec` gives sshd a mount namespace
    // of its own, so hiding the file there leaves the machine's root untouched.
    const bare = `for f in "$HOME/.bashrc" "$HOME/.bash_profile" "$HOME/.profile"; do [ -e "$f" ] && mount --bind /dev/null "$f"; done; exec /usr/sbin/sshd -D -e -f "$1"`;
    const p = spawn('ip', ['netns', 'exec', this.node.ns, 'sh', '-c', bare, 'sshd', join(dir, 'sshd_config')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    p.on('exit', (code) => code && this.console.push(`sshd exited ${code}: ${err.trim()}`));
    this.procs.push(p);
  }

  private async startInstaller(): Promise<void> {
    const key = join(this.node.dir, 'installer_host_key');
    await rm(key, { force: true });
    await rm(`${key}.pub`, { force: true });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const bin = join(this.node.dir, 'installer-bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'grub-install'), LAB_GRUB_INSTALL, { mode: 0o755 });
    this.console.push('installer: sshd up');
    await this.sshd(key, `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`);
  }

  /** The root file system's device (the disk at the root partition's offset, as debugfs reads it). */
  private async rootDevice(): Promise<string> {
    const { stdout } = await this.inNs(['sfdisk', '--json', this.node.disk]).catch(() => ({ stdout: '' }));
    const parts = stdout
      ? (
          JSON.parse(stdout) as {
            partitiontable: { sectorsize?: number; partitions: { start: number; name?: string }[] };
          }
        ).partitiontable
      : undefined;
    const root = parts?.partitions.find((p) => p.name === 'root');
    if (!root) throw new Error('no bootable system on the disk (no root partition)');
    return `${this.node.disk}?offset=${root.start * (parts?.sectorsize ?? 512)}`;
  }

  /**
   * BIOS boot from the disk: the MBR must hold GRUB's boot code, and GRUB's first entry must load Xen
   * and a Dom0 kernel that are in the root file system; then the installed system comes up.
   */
  private async bootLocal(): Promise<void> {
    const mbr = Buffer.alloc(512);
    const { open } = await import('node:fs/promises');
    const fh = await open(this.node.disk, 'r').catch(() => undefined);
    if (fh) {
      await fh.read(mbr, 0, 512, 0);
      await fh.close();
    }
    if (!mbr.subarray(0, 440).includes('GRUB '))
      throw new Error('BIOS: no bootable device (no boot loader on the disk)');
    const dev = await this.rootDevice();
    const cat = async (path: string) =>
      (await this.inNs(['debugfs', '-R', `cat ${path}`, dev]).catch(() => ({ stdout: '' }))).stdout;
    const entry = parseGrubXenEntry(await cat('/boot/grub/grub.cfg'));
    if (!entry) throw new Error('GRUB: no menu entry in /boot/grub/grub.cfg (grub rescue>)');
    for (const f of [entry.xen, ...entry.modules])
      if (!(await cat(f))) throw new Error(`GRUB: error: file \`${f}' not found.`);
    this.console.push(`GRUB: multiboot2 ${entry.xen}; module2 ${entry.modules.join(', ')}`);
    return this.bootDisk();
  }

  /**
   * The installed system brings up the static address the deploy wrote (ifupdown's
   * /etc/network/interfaces.d/xsm), not a DHCP lease: it comes up without the deploy server.
   */
  private async staticNetwork(dev: string): Promise<void> {
    const { stdout } = await this.inNs(['debugfs', '-R', 'cat /etc/network/interfaces.d/xsm', dev]);
    const address = /^\s*address\s+(\S+)/m.exec(stdout)?.[1];
    const mask = /^\s*netmask\s+(\S+)/m.exec(stdout)?.[1];
    if (!address || !mask) throw new Error('ifup: no static address in /etc/network/interfaces.d/xsm');
    const prefix = mask.split('.').reduce((n, o) => n + (Number(o) >>> 0).toString(2).replace(/0/g, '').length, 0);
    await this.inNs(['ip', 'addr', 'flush', 'dev', 'eth0']);
    await this.inNs(['ip', 'addr', 'add', `${address}/${prefix}`, 'brd', '+', 'dev', 'eth0']);
    this.console.push(`ifup: ${address}/${prefix} (static)`);
  }

  /** The installed system: its root partition must hold the host key the installer wrote, else no boot. */
  private async bootDisk(): Promise<void> {
    const dev = await this.rootDevice();
    const key = join(this.node.dir, 'system_host_key');
    await rm(key, { force: true });
    await this.inNs(['debugfs', '-R', `dump /etc/ssh/ssh_host_ed25519_key ${key}`, dev]);
    const text = await readFile(key, 'utf8').catch(() => '');
    if (!text.includes('PRIVATE KEY'))
      throw new Error('no bootable system on the disk (no SSH host key in its root file system)');
    await chmod(key, 0o600);
    await this.staticNetwork(dev);
    // Xen's toolstack on this "Dom0" is the simulated host's xl.
    const bin = join(this.node.dir, 'bin');
    await mkdir(bin, { recursive: true });
    const tsx = join(REPO, 'node_modules/tsx/dist/loader.mjs');
    const xl = this.lab.opts.xlEntry ?? `--import ${tsx} ${join(REPO, 'src/drivers/hypervisor/sim-xl.ts')}`;
    await writeFile(
      join(bin, 'xl'),
      `#!/bin/sh\nexport XSM_SIM_DIR=${join(this.node.dir, 'xen')} XSM_SIM_HOST=${this.node.name} XSM_SIM_MEM_MIB=${this.lab.opts.memMiB ?? 4096}\nexec node ${xl} "$@"\n`,
    );
    await chmod(join(bin, 'xl'), 0o755);
    this.console.push('disk: booted the installed system');
    await this.sshd(key, `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`);
  }
}
