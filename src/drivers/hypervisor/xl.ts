// The real Xen toolstack: runs `xl` through a Shell (locally on the Dom0, or over SSH), each argument
// separate, never through a shell string. Units are explicit (`xl mem-set NAME 512m`): the man page's
// "default kiB" is wrong for 4.17, whose bare numbers are MiB.

import { CommandError, type Shell } from '../shell.ts';
import { xlConfigName } from '../../site/xl-config.ts';
import {
  HypervisorRefusal,
  isConfigFileName,
  type ConfigFiles,
  type DomainConfig,
  type DomainInfo,
  type HostInfo,
  type Hypervisor,
  type MigrationTarget,
} from './hypervisor.ts';
import { hotplugTimeoutHint, isRefusal, parseXlInfo, parseXlList, parseXlListLong } from './xl-parse.ts';

export interface XlOptions {
  /** Where XSM writes the domain configs it renders (its own directory: never the operator's files). */
  configDir: string;
  /** The operator's xl config files, which a VM's `config="NAME"` names as NAME.cfg (default /etc/xen). */
  xenConfigDir: string;
  /** `xl migrate -s`: the command that reaches the target Dom0 (key-based, non-interactive). */
  migrateSsh: string;
  /**
   * How long `xl create` may take before XSM kills it and the step retries. It includes Xen's hotplug scripts
   * (libxl gives each 40 s), so a Dom0 whose tools allow them longer needs more (default 120 s).
   */
  createTimeoutMs: number;
}

export class XlHypervisor implements Hypervisor {
  private readonly opts: XlOptions;
  constructor(
    private readonly shell: Shell,
    readonly hostName: string,
    opts: Partial<XlOptions> = {},
  ) {
    this.opts = {
      configDir: '/etc/xen/xsm',
      xenConfigDir: '/etc/xen',
      migrateSsh: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes',
      createTimeoutMs: 120_000,
      ...opts,
    };
  }

  private async xl(args: string[], timeoutMs = 120000, input?: string): Promise<string> {
    const r = await this.shell.run('xl', args, { timeoutMs, ...(input !== undefined ? { input } : {}) });
    if (r.code !== 0) {
      const err = new CommandError(this.shell.where, 'xl', args, r);
      const hint = hotplugTimeoutHint(r.stderr);
      if (hint) err.message += `\n${hint}`;
      if (isRefusal(r.stderr)) throw new HypervisorRefusal(this.hostName, err.message);
      throw err;
    }
    return r.stdout;
  }

  async info(): Promise<HostInfo> {
    const i = parseXlInfo(await this.xl(['info']));
    return {
      host: i.host,
      totalMemMiB: i.totalMemMiB,
      freeMemMiB: i.freeMemMiB,
      nrCpus: i.nrCpus,
      xenVersion: i.xenVersion,
      scheduler: i.scheduler,
    };
  }

  async list(): Promise<DomainInfo[]> {
    const [table, long] = await Promise.all([this.xl(['list']), this.xl(['list', '-l'])]);
    const details = new Map(parseXlListLong(long).map((d) => [d.domid, d]));
    return parseXlList(table).map((row) => {
      const d = details.get(row.domid);
      return {
        name: row.name,
        domid: row.domid,
        state: row.state,
        memMiB: row.memMiB,
        maxMemMiB: d?.maxMemMiB ?? row.memMiB,
        vcpus: row.vcpus,
        maxVcpus: d?.maxVcpus ?? row.vcpus,
        cpuTimeSec: row.cpuTimeSec,
        ...(d?.targetMemMiB !== undefined ? { targetMemMiB: d.targetMemMiB } : {}),
        ...(d?.availVcpus !== undefined ? { targetVcpus: d.availVcpus } : {}),
        ...(d?.weight !== undefined ? { weight: d.weight } : {}),
        ...(d?.nics ? { nics: d.nics } : {}),
        ...(d ? {} : { limitsUnknown: true as const }),
      };
    });
  }

  async find(name: string): Promise<DomainInfo | undefined> {
    return (await this.list()).find((d) => d.name === name);
  }

  configPath(name: string): string {
    return `${this.opts.configDir}/${name}.cfg`;
  }

  async create(config: DomainConfig): Promise<void> {
    const path = this.configPath(config.name);
    const mk = await this.shell.run('mkdir', ['-p', this.opts.configDir]);
    if (mk.code !== 0) throw new CommandError(this.shell.where, 'mkdir', ['-p', this.opts.configDir], mk);
    const tee = await this.shell.run('tee', [path], { input: config.text });
    if (tee.code !== 0) throw new CommandError(this.shell.where, 'tee', [path], tee);
    await this.xl(['create', path], this.opts.createTimeoutMs);
  }

  async shutdown(name: string, timeoutMs: number, domid?: number): Promise<void> {
    // xl takes a domid where it takes a name: that instance or, once it is gone, none.
    const target = domid === undefined ? name : String(domid);
    const r = await this.shell.run('xl', ['shutdown', '-w', target], { timeoutMs });
    if (r.code === 0) return;
    if (/invalid domain identifier/.test(r.stderr)) return;
    // Did not stop in time (or has no PV control interface): pull the plug.
    await this.xl(['destroy', target]);
  }

  async destroy(name: string): Promise<void> {
    await this.xl(['destroy', name]);
  }

  async setMemory(name: string, memMiB: number): Promise<void> {
    await this.xl(['mem-set', name, `${memMiB}m`]);
  }

  async setVcpus(name: string, vcpus: number): Promise<void> {
    await this.xl(['vcpu-set', name, String(vcpus)]);
  }

  async migrate(name: string, target: MigrationTarget): Promise<void> {
    await this.xl(['migrate', '-s', this.opts.migrateSsh, name, target.address], 30 * 60 * 1000);
  }

  async setWeight(name: string, weight: number): Promise<void> {
    // Xen 4.17 defaults to credit2; `sched-credit` against it fails ("returned credit2 not credit").
    const { scheduler } = await this.info();
    await this.xl([scheduler === 'credit' ? 'sched-credit' : 'sched-credit2', '-d', name, '-w', String(weight)]);
  }

  /** Domain names by file hash: a file is read again only when its bytes change. */
  private readonly domainOf = new Map<string, string | undefined>();

  async configFiles(): Promise<ConfigFiles> {
    const dir = this.opts.xenConfigDir;
    const args = [dir, '-maxdepth', '1', '-type', 'f', '-name', '*.cfg', '-exec', 'sha256sum', '{}', '+'];
    const r = await this.shell.run('find', args);
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr))
      throw new CommandError(this.shell.where, 'find', args, r);
    const files = [];
    for (const line of r.stdout.split('\n')) {
      const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
      if (!m || !m[2]!.startsWith(`${dir}/`)) continue;
      const name = m[2]!.slice(dir.length + 1);
      if (!isConfigFileName(name)) continue;
      const sha256 = m[1]!;
      if (!this.domainOf.has(sha256)) {
        const text = await this.readConfigFile(name);
        this.domainOf.set(sha256, text === undefined ? undefined : xlConfigName(text));
      }
      const domain = this.domainOf.get(sha256);
      files.push({ name, sha256, ...(domain ? { domain } : {}) });
    }
    return { dir, files: files.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  async readConfigFile(name: string): Promise<string | undefined> {
    if (!isConfigFileName(name)) return undefined;
    const path = `${this.opts.xenConfigDir}/${name}`;
    const r = await this.shell.run('cat', ['--', path]);
    if (r.code === 0) return r.stdout;
    if (/No such file or directory/.test(r.stderr)) return undefined;
    throw new CommandError(this.shell.where, 'cat', ['--', path], r);
  }
}
