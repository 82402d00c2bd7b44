// A real fake of the rolling upgrade's update, for tests, scenarios and the demo: the host's agent stops
// (its heartbeat goes quiet, as while a real Dom0 reboots), the simulated Dom0 reboots (every guest domain
// still on it is gone, as a reboot leaves it: a drain that left one behind shows up as a VM down), the new
// image is recorded as installed, and a fresh agent starts. An operator's fault can be set per host.

import { formatImageRef, installedMatches, type ImageRef } from '../deploy/image-ref.ts';
import type { SimStore } from '../drivers/hypervisor/simulated.ts';
import { PermanentError } from '../lib/errors.ts';
import type { HostSpec } from '../site/model.ts';
import type { DeployStore } from '../state/deploy-store.ts';
import type { HostImageUpdater, HostUpdateResult } from './host-image-updater.ts';

export interface SimulatedUpdaterHooks {
  /** Stops the host's agent (no heartbeat, no jobs taken) as a reboot does. */
  stopAgent(host: string): Promise<void>;
  /** Starts a fresh agent once the host is back. */
  startAgent(host: string): void | Promise<void>;
  /** Called as the update starts (a test kills a worker here). */
  beforeUpdate?(host: string): Promise<void>;
}

export class SimulatedImageUpdater implements HostImageUpdater {
  readonly method = 'simulated';
  /** Hosts whose update fails, and why (as a disk error, a bad image would). */
  readonly failures = new Map<string, string>();
  /** Every update started, in order (a resumed upgrade must not update a finished host again). */
  readonly calls: string[] = [];

  constructor(
    private readonly deploys: DeployStore,
    private readonly store: SimStore,
    /** Public so a test can set `beforeUpdate` on a running site. */
    readonly hooks: SimulatedUpdaterHooks,
    private readonly rebootMs = 300,
  ) {}

  async update(host: HostSpec, image: ImageRef): Promise<HostUpdateResult> {
    this.calls.push(host.name);
    await this.hooks.beforeUpdate?.(host.name);
    const ref = formatImageRef(image);
    if (installedMatches((await this.deploys.deployed(host.name))?.image, image))
      return { image: ref, method: this.method, detail: 'already installed' };
    const why = this.failures.get(host.name);
    if (why) throw new PermanentError(`${host.name}: update to ${ref} failed: ${why}`, 'the host was left as it was');
    await this.hooks.stopAgent(host.name);
    await this.store.update(host.name, (s) => {
      s.domains = s.domains.filter((d) => d.domid === 0);
    });
    await new Promise((r) => setTimeout(r, this.rebootMs));
    await this.deploys.markDeployed(host.name, { at: Date.now(), image: ref, sha256: 'simulated' });
    await this.hooks.startAgent(host.name);
    return { image: ref, method: this.method, detail: `rebooted in ${this.rebootMs} ms` };
  }
}
