// A deployment site on the netns lab: XSM's real dnsmasq on the lab bridge, the rsync daemon and image
// sender, the deploy worker, a site file declaring the lab machines, and agents that start (simulated
// Xen) on each machine once it is installed. Used by the deployment tests and the Figure 5 benchmark.

import { execFile } from 'node:child_process';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { PowerControl, PowerState } from '../../src/drivers/power/power.ts';
import type { PxeServerConfig } from '../../src/deploy/dnsmasq.ts';
import type { ImageServerConfig } from '../../src/deploy/transfer.ts';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { WorkerSupervisor } from '../../src/runtime/worker-supervisor.ts';
import { DnsmasqService } from '../../src/deploy/dnsmasq.ts';
import { buildLabImage, type ImageManifest } from '../../src/deploy/image.ts';
import { ImageServer } from '../../src/deploy/transfer.ts';
import { shellQuote, type SshShell } from '../../src/drivers/ssh/ssh-shell.ts';
import { runChecked } from '../../src/drivers/shell.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { closeWhenReady, redisConfigFromEnv } from '../../src/lib/redis.ts';
import { silentLogger, type Logger } from '../../src/lib/log.ts';
import type { DeployEnv } from '../../workflows/deploy-host.ts';
import { startDeployWorker } from '../../workers/deploy-lib.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';
import { NetnsLab, type LabOptions } from './netns-lab.ts';

const run = promisify(execFile);
const REPO = resolve(import.meta.dirname, '../..');

export interface DeploySite {
  lab: NetnsLab;
  rt: XsmRuntime;
  env: DeployEnv;
  image: ImageManifest;
  imagesDir: string;
  /** The deploy server's dnsmasq (DHCP + TFTP) and image server, to stop them as an outage would. */
  pxe: DnsmasqService;
  images: ImageServer;
  worker?: WorkerSupervisor;
  startWorker(): WorkerSupervisor;
  /** The deploy worker in a child process (to kill -9 it), its power control through the lab's BMC. */
  spawnWorker(): Promise<ChildProcess>;
  close(): Promise<void>;
}

export async function startDeploySite(
  opts: Omit<LabOptions, 'authorizedKey'> & {
    imageMiB?: number;
    payloadMiB?: number;
    sessionWaitS?: number;
    log?: Logger;
    /** <Layout> elements for the site file's <Hosts>, and which layout each machine (by name) gets. */
    layouts?: { xml: string[]; of: Record<string, string> };
  },
): Promise<DeploySite> {
  const lab0 = new NetnsLab({ ...opts, authorizedKey: '' });
  // The deploy worker's SSH identity.
  const keyDir = join('/tmp', `xsm-deploykey-${lab0.id}`);
  await mkdir(keyDir, { recursive: true });
  await run('sh', ['-c', `rm -f ${keyDir}/id && ssh-keygen -q -t ed25519 -N '' -f ${keyDir}/id`]);
  const publicKey = (await readFile(`${keyDir}/id.pub`, 'utf8')).trim();
  const agentEntry = await labBundle('workers/host-agent.ts', `agent-${lab0.id}.mjs`);
  const xlEntry = await labBundle('src/drivers/hypervisor/sim-xl.ts', `sim-xl-${lab0.id}.mjs`);
  const lab = Object.assign(lab0, { opts: { ...lab0.opts, authorizedKey: publicKey, xlEntry } }) as NetnsLab;
  try {
    await lab.up();
  } catch (e) {
    await lab.down();
    throw e;
  }
  const prefix = freshPrefix();
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  const redisUrl = new URL(rt.config.url);
  const fwd = await lab.forward(0, { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
  const log = opts.log ?? silentLogger;

  const imagesDir = join(lab.dir, 'images');
  const image = await buildLabImage(imagesDir, 'dom0-lab', {
    sizeMiB: opts.imageMiB ?? 24,
    payloadMiB: opts.payloadMiB ?? 8,
  });
  const pxe = new DnsmasqService(
    {
      stateDir: join(lab.dir, 'pxe'),
      tftpRoot: join(lab.dir, 'tftp'),
      interface: lab.bridge,
      serverAddress: lab.serverAddress,
      network: lab.network,
      netmask: '255.255.255.0',
    },
    log,
  );
  await pxe.start();
  const images = new ImageServer(
    {
      imagesDir,
      address: lab.serverAddress,
      interface: lab.bridge,
      rsyncPort: 8730 + (parseInt(lab.id, 16) % 200),
      stateDir: join(lab.dir, 'rsync'),
      ...(opts.rateMbit ? { multicastMaxBitrate: `${Math.floor(opts.rateMbit * 0.95)}m` } : {}),
    },
    log,
  );
  await images.start();

  // The site file declares the machines (name, Dom0 address, boot MAC, capacity).
  const hostLines = lab.nodes.map(
    (n) =>
      `    <Host name="${n.name}" address="${n.address}" mac="${n.mac}" cpus="4" memory="${(opts.memMiB ?? 4096) - 1024}"${opts.layouts?.of[n.name] ? ` layout="${opts.layouts.of[n.name]}"` : ''}/>`,
  );
  const layoutLines = opts.layouts?.xml ?? [];
  const xml = `<XSMConfig>\n  <Hosts>\n${[...layoutLines, ...hostLines].join('\n')}\n  </Hosts>\n</XSMConfig>\n`;
  try {
    await rt.sites.submit(xml, { base: 0, author: 'lab', reason: 'lab machines' });
  } catch (e) {
    // A refused site file must not leave the lab's namespaces, dnsmasq and rsync behind.
    await Promise.allSettled([pxe.stop(), images.stop()]);
    await lab.down();
    await rt.close();
    throw e;
  }

  const cfg: LabDeployConfig = {
    prefix,
    redisUrl: rt.config.url,
    pxe: pxe.config,
    images: images.config,
    keyPath: `${keyDir}/id`,
    publicKey,
    serverAddress: lab.serverAddress,
    redisForward: fwd,
    memMiB: opts.memMiB ?? 4096,
    sessionWaitS: opts.sessionWaitS ?? 20,
    nodes: lab.nodes.map((n) => ({ name: n.name, dir: n.dir })),
    agentEntry,
  };
  const env = await labDeployEnv(cfg, rt, log, async (host) => {
    const n = lab.nodes.find((x) => x.name === host);
    if (!n) throw new Error(`no lab machine ${host}`);
    return n.power;
  });
  const bmc = await startLabBmc(lab);
  const site: DeploySite = {
    lab,
    rt,
    env,
    image,
    imagesDir,
    pxe,
    images,
    startWorker() {
      site.worker = startDeployWorker(env, { lockDurationMs: 10000 });
      return site.worker;
    },
    async spawnWorker() {
      const file = join(lab.dir, `worker-${Date.now()}.json`);
      await writeFile(file, JSON.stringify({ ...cfg, bmcUrl: bmc.url }));
      return spawn(process.execPath, ['--import', 'tsx', join(REPO, 'test/lab/deploy-worker-proc.ts'), file], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    },
    async close() {
      if (site.worker) await closeWhenReady(site.worker);
      await bmc.close();
      await pxe.stop();
      await images.stop();
      await lab.down();
      await rt.close();
      await deleteKeys(prefix);
      await run('rm', ['-rf', keyDir, agentEntry, xlEntry]);
    },
  };
  return site;
}

/** Everything a deploy worker of the lab needs, as JSON (a worker in a child process reads it). */
export interface LabDeployConfig {
  prefix: string;
  redisUrl: string;
  pxe: PxeServerConfig;
  images: ImageServerConfig;
  keyPath: string;
  publicKey: string;
  serverAddress: string;
  redisForward: string;
  memMiB: number;
  sessionWaitS: number;
  nodes: { name: string; dir: string }[];
  bmcUrl?: string;
  /** The host agent as one compiled file (labBundle), else it starts under tsx. */
  agentEntry?: string;
}

/**
 * The lab's time limits for a machine to come up in its installer, answer SSH after its reboot and have
 * its agent report. Every lab machine is a set of processes on this one machine (an installer's sshd,
 * debugfs at boot, sshd, the simulated xl, a Node agent), so N machines booting together take about N
 * times the CPU of one: 30 s for one machine, 4 s more for each further one (32 machines: 154 s). Real
 * machines bring their own CPU; the deploy worker's defaults (workers/deploy.ts) are minutes anyway.
 */
export function labTimeouts(machines: number): DeployEnv['timeouts'] {
  const ms = 30_000 + 4_000 * Math.max(0, machines - 1);
  return { installerMs: ms, bootMs: ms, agentMs: ms };
}

/**
 * Compiles a TypeScript entry (the host agent, the simulated xl) to one ES module with esbuild, so each
 * of the lab's 32 agents and every `xl` call starts plain Node instead of loading tsx and transforming
 * the sources again: that start-up, times 32 on 2 cores, made agents miss their report time. The file
 * goes under node_modules/.cache so its package imports (bullmq, ioredis, ssh2 with native parts) resolve
 * from the repository's node_modules, as under tsx.
 */
export async function labBundle(entry: string, name: string): Promise<string> {
  const out = join(REPO, 'node_modules/.cache/xsm-lab', name);
  await run(
    join(REPO, 'node_modules/.bin/esbuild'),
    [
      join(REPO, entry),
      '--bundle',
      '--platform=node',
      '--format=esm',
      '--packages=external',
      `--outfile=${out}`,
      '--log-level=warning',
    ],
    { cwd: REPO },
  );
  return out;
}

export async function labDeployEnv(
  cfg: LabDeployConfig,
  rt: XsmRuntime,
  log: Logger,
  power: DeployEnv['power'],
): Promise<DeployEnv> {
  return {
    rt,
    log,
    pxe: new DnsmasqService(cfg.pxe, log),
    images: new ImageServer(cfg.images, log),
    power,
    ssh: { privateKey: await readFile(cfg.keyPath), publicKey: cfg.publicKey },
    netmask: '255.255.255.0',
    bootBaseUrl: `tftp://${cfg.serverAddress}`,
    xenBoot: {
      xen: 'xen-4.17-amd64',
      xenArgs: 'dom0=pvh dom0_mem=1024M',
      kernel: 'vmlinuz',
      kernelArgs: 'root=/dev/sda3 console=hvc0',
    },
    xenBootFrom: 'disk',
    layout: { swapMiB: 8 },
    installerInterface: 'eth0',
    relayCommand: ['node', join(REPO, 'src/deploy/chain-relay.mjs')],
    chainPort: 7070,
    sessionWaitS: cfg.sessionWaitS,
    timeouts: labTimeouts(cfg.nodes.length),
    async startAgent(shell: SshShell, data) {
      const n = cfg.nodes.find((x) => x.name === data.host)!;
      const envs = {
        XSM_HOST: data.host,
        XSM_HYPERVISOR: 'sim',
        XSM_SIM_DIR: join(n.dir, 'xen'),
        XSM_SIM_MEM_MIB: String(cfg.memMiB),
        XSM_SIM_CPUS: '4',
        XSM_REDIS_URL: `redis://${cfg.redisForward}`,
        XSM_PREFIX: cfg.prefix,
        XSM_CACHE_DIR: join(n.dir, 'agent-cache'),
        XSM_HEARTBEAT_MS: '500',
      };
      const line = `cd ${shellQuote(REPO)} && ${Object.entries(envs)
        .map(([k, v]) => `${k}=${shellQuote(v)}`)
        .join(
          ' ',
        )} setsid nohup node ${cfg.agentEntry ? shellQuote(cfg.agentEntry) : '--import tsx workers/host-agent.ts'} > ${shellQuote(join(n.dir, 'agent.log'))} 2>&1 < /dev/null &`;
      await runChecked(shell, 'sh', ['-c', line]);
    },
  };
}

/** The lab machines' power buttons on loopback HTTP, for a deploy worker running in another process. */
async function startLabBmc(lab: NetnsLab): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const [, node, action] = (req.url ?? '').split('/');
    const n = lab.nodes.find((x) => x.name === node);
    const done = (code: number, body: string) => res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
    if (!n || req.method !== 'POST') return done(404, 'no such machine or action');
    const p = n.power;
    const act =
      action === 'on' ? p.on() : action === 'off' ? p.off() : action === 'status' ? Promise.resolve() : undefined;
    if (!act) return done(404, 'no such action');
    act.then(
      async () => done(200, await p.status()),
      (e: Error) => done(500, e.message),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Power control through the lab BMC (what the child-process worker uses). */
export class LabBmcPower implements PowerControl {
  readonly describe: string;
  constructor(
    private readonly url: string,
    private readonly node: string,
  ) {
    this.describe = `lab-bmc ${node}`;
  }
  private async call(action: string): Promise<string> {
    const r = await fetch(`${this.url}/${this.node}/${action}`, { method: 'POST' });
    const t = await r.text();
    if (!r.ok) throw new Error(`${this.describe}: ${action}: ${t}`);
    return t;
  }
  async status(): Promise<PowerState> {
    return (await this.call('status')) as PowerState;
  }
  async on(): Promise<void> {
    await this.call('on');
  }
  async off(): Promise<void> {
    await this.call('off');
  }
  async bootFromNetwork(): Promise<void> {}
}
