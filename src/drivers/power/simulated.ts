// Power control of a simulated host: off pulls the plug (its domains vanish), as a BMC would.
import type { SimulatedXenHost } from '../hypervisor/simulated.ts';
import type { PowerControl, PowerState } from './power.ts';

export class SimulatedPower implements PowerControl {
  readonly describe: string;
  constructor(private readonly host: SimulatedXenHost) {
    this.describe = `simulated ${host.hostName}`;
  }
  async status(): Promise<PowerState> {
    return (await this.host.isPowered()) ? 'on' : 'off';
  }
  async on(): Promise<void> {
    if ((await this.status()) === 'off') await this.host.powerOn();
  }
  async off(): Promise<void> {
    await this.host.powerOff();
    if ((await this.status()) !== 'off') throw new Error(`${this.describe}: still on after power off`);
  }
  async bootFromNetwork(): Promise<void> {}
}
