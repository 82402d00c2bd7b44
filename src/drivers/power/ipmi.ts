// Power control through a BMC with ipmitool (IPMI 2.0 lanplus). The password never reaches the command
// line (it would show in `ps`): it goes through -E (IPMI_PASSWORD in the child's environment) or -f FILE.

import type { Shell } from '../shell.ts';
import type { PowerControl, PowerState } from './power.ts';

export interface IpmiOptions {
  /** BMC host name or address. */
  host: string;
  user: string;
  /** Exactly one of these: a file holding the password (-f), or the password itself passed via -E. */
  passwordFile?: string;
  password?: string;
  /** lanplus cipher suite (-C), e.g. 17 or 3. */
  cipherSuite?: number;
  port?: number;
  /** ipmitool's per-try timeout in seconds (-N) and retries (-R): how soon a BMC that stopped answering fails. */
  timeoutS?: number;
  retries?: number;
  /** How long `off()` waits for the chassis to report off. */
  offTimeoutMs?: number;
  pollMs?: number;
}

export class IpmiPower implements PowerControl {
  readonly describe: string;

  constructor(
    private readonly shell: Shell,
    private readonly opts: IpmiOptions,
  ) {
    if (!opts.passwordFile && opts.password === undefined)
      throw new Error(`ipmi ${opts.host}: no password file or password given`);
    this.describe = `ipmi ${opts.host}`;
  }

  private async ipmitool(args: string[]): Promise<string> {
    const base = ['-I', 'lanplus', '-H', this.opts.host, '-U', this.opts.user];
    if (this.opts.port) base.push('-p', String(this.opts.port));
    if (this.opts.cipherSuite !== undefined) base.push('-C', String(this.opts.cipherSuite));
    if (this.opts.timeoutS !== undefined) base.push('-N', String(this.opts.timeoutS));
    if (this.opts.retries !== undefined) base.push('-R', String(this.opts.retries));
    let env: Record<string, string> | undefined;
    if (this.opts.passwordFile) base.push('-f', this.opts.passwordFile);
    else {
      base.push('-E');
      env = { IPMI_PASSWORD: this.opts.password ?? '' };
    }
    const r = await this.shell.run('ipmitool', [...base, ...args], { env, timeoutMs: 60_000 });
    if (r.code !== 0) {
      const detail = r.stderr.trim() || r.stdout.trim() || 'no output';
      throw new Error(`${this.describe}: ipmitool ${args.join(' ')} exited ${r.code}: ${detail}`);
    }
    return r.stdout;
  }

  async status(): Promise<PowerState> {
    const out = await this.ipmitool(['chassis', 'power', 'status']);
    if (/Chassis Power is on/.test(out)) return 'on';
    if (/Chassis Power is off/.test(out)) return 'off';
    return 'unknown';
  }

  async on(): Promise<void> {
    if ((await this.status()) === 'on') return;
    const out = await this.ipmitool(['chassis', 'power', 'on']);
    if (!/Chassis Power Control: Up\/On/.test(out))
      throw new Error(`${this.describe}: unexpected answer to power on: ${out.trim()}`);
  }

  async off(): Promise<void> {
    if ((await this.status()) === 'off') return;
    const out = await this.ipmitool(['chassis', 'power', 'off']);
    if (!/Chassis Power Control: Down\/Off/.test(out))
      throw new Error(`${this.describe}: unexpected answer to power off: ${out.trim()}`);
    // Fencing contract: return only once the BMC says off.
    const deadline = Date.now() + (this.opts.offTimeoutMs ?? 30_000);
    for (;;) {
      if ((await this.status()) === 'off') return;
      if (Date.now() > deadline) throw new Error(`${this.describe}: chassis still on after power off`);
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 1000));
    }
  }

  /** Power cycle (off, then on) of a chassis that is on; the BMC refuses it for one that is off. */
  async cycle(): Promise<void> {
    const out = await this.ipmitool(['chassis', 'power', 'cycle']);
    if (!/Chassis Power Control: Cycle/.test(out))
      throw new Error(`${this.describe}: unexpected answer to power cycle: ${out.trim()}`);
  }

  async bootFromNetwork(): Promise<void> {
    const out = await this.ipmitool(['chassis', 'bootdev', 'pxe']);
    if (!/Set Boot Device to pxe/.test(out))
      throw new Error(`${this.describe}: unexpected answer to bootdev pxe: ${out.trim()}`);
  }
}
