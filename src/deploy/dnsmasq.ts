// The PXE server: real dnsmasq configuration (DHCP + TFTP, DNS off), per-host iPXE scripts and PXELINUX
// configs, and the daemon itself. Host entries live in a dhcp-hostsfile so adding a host is a SIGHUP;
// the main config is rewritten (and the daemon restarted) only when it changes. Every file is written
// atomically (temp file + rename), and a main config is checked with `dnsmasq --test` before it replaces
// the old one.

import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, rename, writeFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PermanentError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { LocalShell, type Shell } from '../drivers/shell.ts';

export interface PxeServerConfig {
  /** Directory holding dnsmasq.conf, hosts, leases, pid file. */
  stateDir: string;
  /** TFTP root (iPXE scripts, pxelinux.cfg/). */
  tftpRoot: string;
  /** Interface dnsmasq binds to (the deployment bridge). */
  interface: string;
  /** dnsmasq's own address on that interface (next-server). */
  serverAddress: string;
  /** The static range's network, e.g. 10.20.0.0, and its netmask. Only hosts with a dhcp-host entry get an answer. */
  network: string;
  netmask: string;
  lease?: string;
  /** Boot file for plain PXE ROMs (chainloads iPXE). Default undionly.kpxe. */
  pxeBootFile?: string;
  /** Path of the dnsmasq binary. */
  dnsmasq?: string;
}

export interface PxeHostEntry {
  mac: string;
  address: string;
  hostname: string;
}

const macRe = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function normalizeMac(mac: string, where = 'mac'): string {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  if (!macRe.test(m)) throw new PermanentError(`${where}: "${mac}" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return m;
}

/** iPXE's ${mac:hexhyp}: 52-54-00-12-34-56. */
export function macHexhyp(mac: string): string {
  return normalizeMac(mac).replace(/:/g, '-');
}

/** PXELINUX's per-host config name: 01-aa-bb-cc-dd-ee-ff (ARP type 1 + MAC). */
export function pxelinuxName(mac: string): string {
  return `01-${macHexhyp(mac)}`;
}

export function renderMainConf(c: PxeServerConfig): string {
  const lines = [
    '# Written by XSM (src/deploy/dnsmasq.ts). DHCP + TFTP only; host entries are in the hosts file (SIGHUP reloads it).',
    'port=0',
    `interface=${c.interface}`,
    'bind-interfaces',
    'except-interface=lo',
    `dhcp-range=${c.network},static,${c.netmask},${c.lease ?? '12h'}`,
    `dhcp-hostsfile=${join(c.stateDir, 'hosts')}`,
    `dhcp-leasefile=${join(c.stateDir, 'leases')}`,
    'dhcp-ignore=tag:!known',
    'dhcp-authoritative',
    'dhcp-match=set:ipxe,175',
    `dhcp-boot=tag:!ipxe,${c.pxeBootFile ?? 'undionly.kpxe'},,${c.serverAddress}`,
    // iPXE expands ${mac:hexhyp} in the file name it is given.
    `dhcp-boot=tag:ipxe,tftp://${c.serverAddress}/\${mac:hexhyp}.ipxe`,
    'enable-tftp',
    `tftp-root=${c.tftpRoot}`,
    // No tftp-secure: dnsmasq drops root for its own user, and tftp-secure would then refuse the boot
    // scripts XSM writes as root. The TFTP root holds only boot files and scripts, nothing secret.
    'log-dhcp',
    // -k keeps dnsmasq in the foreground but logs to syslog; its errors belong in XSM's log instead.
    'log-facility=-',
    `pid-file=${join(c.stateDir, 'dnsmasq.pid')}`,
    '',
  ];
  return lines.join('\n');
}

export function renderHostsFile(hosts: readonly PxeHostEntry[]): string {
  const seen = new Map<string, string>();
  const out: string[] = [];
  for (const h of hosts) {
    const mac = normalizeMac(h.mac, `host ${h.hostname}`);
    const prev = seen.get(mac);
    if (prev) throw new PermanentError(`host ${h.hostname}: MAC ${mac} is already used by host ${prev}`);
    seen.set(mac, h.hostname);
    if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/.test(h.hostname))
      throw new PermanentError(`host ${h.hostname}: not a valid DHCP host name`);
    out.push(`${mac},${h.address},${h.hostname},infinite`);
  }
  return out.join('\n') + (out.length ? '\n' : '');
}

/** iPXE's multiboot code gives all command lines (URI + " " + args, for every image) one 512-byte buffer. */
export const IPXE_MULTIBOOT_CMDLINE_MAX = 512;

export interface XenBootSpec {
  /** Base URL the images are served from, e.g. http://10.20.0.1/xen or tftp://10.20.0.1/xen. */
  baseUrl: string;
  /** Uncompressed multiboot `xen` (iPXE cannot gunzip by default). */
  xen: string;
  xenArgs: string;
  kernel: string;
  kernelArgs: string;
  initrd?: string;
}

/** iPXE script that multiboots Xen with the dom0 kernel and initrd as modules 1 and 2. */
export function renderXenIpxe(host: string, b: XenBootSpec): string {
  const img = (f: string) => `${b.baseUrl.replace(/\/$/, '')}/${f}`;
  const cmdlines = [
    `${img(b.xen)} ${b.xenArgs}`,
    `${img(b.kernel)} ${b.kernelArgs}`,
    ...(b.initrd ? [img(b.initrd)] : []),
  ];
  // Each command line is NUL-terminated in the shared buffer.
  const used = cmdlines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
  if (used > IPXE_MULTIBOOT_CMDLINE_MAX)
    throw new PermanentError(
      `host ${host}: the Xen boot command lines take ${used} bytes, over iPXE's ${IPXE_MULTIBOOT_CMDLINE_MAX}-byte multiboot limit`,
      'shorten the URLs (serve from /) or the Xen/dom0 arguments',
    );
  return [
    '#!ipxe',
    `kernel ${cmdlines[0]}`,
    `module ${cmdlines[1]}`,
    ...(b.initrd ? [`module ${cmdlines[2]}`] : []),
    'boot',
    '',
  ].join('\n');
}

/** The installer's parameters travel on its kernel command line as xsm.key=value words. */
export interface InstallParams {
  hostname: string;
  address: string;
  netmask: string;
  gateway?: string;
  /** Where the image comes from (rsync://..., udpcast://...). */
  image: string;
}

export function renderInstallerIpxe(baseUrl: string, p: InstallParams): string {
  const args = Object.entries(p)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (/\s/.test(String(v)))
        throw new PermanentError(`host ${p.hostname}: install parameter ${k} contains white space: "${v}"`);
      return `xsm.${k}=${v}`;
    })
    .join(' ');
  const base = baseUrl.replace(/\/$/, '');
  return [
    '#!ipxe',
    `kernel ${base}/installer/vmlinuz console=ttyS0 ${args}`,
    `initrd ${base}/installer/initrd.img`,
    'boot',
    '',
  ].join('\n');
}

/** After installation the host boots its own disk: iPXE hands back to the BIOS boot order. */
export function renderLocalBootIpxe(): string {
  return ['#!ipxe', 'echo XSM: installed, booting from local disk', 'exit', ''].join('\n');
}

/** Reads the xsm.* parameters back from an installer iPXE script (what the installer does with /proc/cmdline). */
export function parseInstallerIpxe(text: string, where: string): InstallParams {
  const kernel = text.split('\n').find((l) => l.startsWith('kernel '));
  if (!kernel)
    throw new PermanentError(`${where}: boot script has no kernel line (is this host still set to install?)`);
  const kv = new Map<string, string>();
  for (const w of kernel.split(/\s+/)) {
    const m = /^xsm\.([a-z]+)=(.*)$/.exec(w);
    if (m?.[1] && m[2] !== undefined) kv.set(m[1], m[2]);
  }
  const need = (k: string): string => {
    const v = kv.get(k);
    if (!v) throw new PermanentError(`${where}: boot script lacks xsm.${k}=`);
    return v;
  };
  return {
    hostname: need('hostname'),
    address: need('address'),
    netmask: need('netmask'),
    gateway: kv.get('gateway'),
    image: need('image'),
  };
}

/** PXELINUX config with mboot.c32 (xen --- dom0 kernel --- initrd). */
export function renderPxelinux(b: XenBootSpec): string {
  const mods = [`${b.xen} ${b.xenArgs}`, `${b.kernel} ${b.kernelArgs}`, ...(b.initrd ? [b.initrd] : [])];
  return ['DEFAULT xen', 'LABEL xen', '  KERNEL mboot.c32', `  APPEND ${mods.join(' --- ')}`, ''].join('\n');
}

async function atomicWrite(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

async function readOr(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => undefined);
}

/**
 * Owns the PXE server's files and the dnsmasq process. Hosts are kept in a JSON map next to the hosts file
 * so that concurrent deploy jobs in one worker add entries without losing each other's.
 */
export class DnsmasqService {
  private child?: ChildProcess;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly config: PxeServerConfig,
    private readonly log: Logger,
    private readonly shell: Shell = new LocalShell(),
  ) {}

  private get bin(): string {
    return this.config.dnsmasq ?? 'dnsmasq';
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  /** Checks a config with `dnsmasq --test`; throws with dnsmasq's own message naming the line. */
  async test(confPath: string): Promise<void> {
    const r = await this.shell.run(this.bin, ['--test', `--conf-file=${confPath}`]);
    if (r.code !== 0 || !/syntax check OK/.test(r.stdout + r.stderr))
      throw new PermanentError(`dnsmasq config ${confPath} rejected: ${(r.stderr || r.stdout).trim()}`);
  }

  /** Writes the main config if it changed (tested first). Returns true when it changed. */
  async writeMainConf(): Promise<boolean> {
    const path = join(this.config.stateDir, 'dnsmasq.conf');
    const text = renderMainConf(this.config);
    if ((await readOr(path)) === text) return false;
    // dnsmasq re-reads the hosts file and serves TFTP as its unprivileged user: both must be readable.
    for (const d of [this.config.stateDir, this.config.tftpRoot]) {
      await mkdir(d, { recursive: true });
      await chmod(d, 0o755);
    }
    if (!existsSync(join(this.config.stateDir, 'hosts'))) await atomicWrite(join(this.config.stateDir, 'hosts'), '');
    const candidate = `${path}.new`;
    await atomicWrite(candidate, text);
    await this.test(candidate);
    await rename(candidate, path);
    return true;
  }

  /** Starts dnsmasq in the foreground (-k) as our child; restarts it if the main config changed. */
  async start(): Promise<void> {
    const changed = await this.writeMainConf();
    if (this.child && !changed) return;
    if (this.child) await this.stop();
    const conf = join(this.config.stateDir, 'dnsmasq.conf');
    const child = spawn(this.bin, ['-k', `--conf-file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    this.child = child;
    // dnsmasq -k writes its pid file once it has bound its sockets.
    const pidFile = join(this.config.stateDir, 'dnsmasq.pid');
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode} at start: ${err.trim()}`);
      if ((await readOr(pidFile))?.trim() === String(child.pid)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.on('exit', (code, sig) => this.log.warn('dnsmasq exited', { code, signal: sig ?? undefined }));
    this.log.info('dnsmasq started', { pid: child.pid, interface: this.config.interface });
  }

  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    if (!c || c.exitCode !== null) return;
    c.removeAllListeners('exit');
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  }

  /** SIGHUP re-reads the hosts file (not dnsmasq.conf). */
  private async reload(): Promise<void> {
    const pid = (await readOr(join(this.config.stateDir, 'dnsmasq.pid')))?.trim();
    if (!pid) return; // not running here: the next start reads the file
    try {
      process.kill(Number(pid), 'SIGHUP');
    } catch (e) {
      this.log.warn('dnsmasq not running for SIGHUP', { pid, error: String(e) });
    }
  }

  private async entries(): Promise<Record<string, PxeHostEntry>> {
    const raw = await readOr(join(this.config.stateDir, 'hosts.json'));
    return raw ? (JSON.parse(raw) as Record<string, PxeHostEntry>) : {};
  }

  /** Adds or updates one host's DHCP entry and its boot script; reloads dnsmasq only on a change. */
  async setHost(entry: PxeHostEntry, bootScript: string): Promise<void> {
    await this.serial(async () => {
      const mac = normalizeMac(entry.mac, `host ${entry.hostname}`);
      const all = await this.entries();
      const next = { ...all, [mac]: { ...entry, mac } };
      const hostsText = renderHostsFile(Object.values(next));
      const scriptPath = join(this.config.tftpRoot, `${macHexhyp(mac)}.ipxe`);
      if ((await readOr(scriptPath)) !== bootScript) await atomicWrite(scriptPath, bootScript);
      const hostsPath = join(this.config.stateDir, 'hosts');
      if ((await readOr(hostsPath)) === hostsText) return;
      await atomicWrite(join(this.config.stateDir, 'hosts.json'), JSON.stringify(next, null, 1));
      await atomicWrite(hostsPath, hostsText);
      await this.reload();
    });
  }

  /** Replaces only the boot script (e.g. install -> local boot). */
  async setBootScript(mac: string, bootScript: string): Promise<void> {
    const path = join(this.config.tftpRoot, `${macHexhyp(mac)}.ipxe`);
    if ((await readOr(path)) !== bootScript) await atomicWrite(path, bootScript);
  }

  async removeHost(mac: string): Promise<void> {
    await this.serial(async () => {
      const m = normalizeMac(mac);
      const all = await this.entries();
      if (!all[m]) return;
      delete all[m];
      await atomicWrite(join(this.config.stateDir, 'hosts.json'), JSON.stringify(all, null, 1));
      await atomicWrite(join(this.config.stateDir, 'hosts'), renderHostsFile(Object.values(all)));
      await rm(join(this.config.tftpRoot, `${macHexhyp(m)}.ipxe`), { force: true });
      await this.reload();
    });
  }
}
