// Manual power: for hosts without a BMC an operator switches the machine and confirms. XSM records the
// request ({"want":"on"|"off"|"pxe", ...}) in a store the control plane shares (src/state/manual-power-store.ts);
// the operator (or the API's POST /power/manual/:host/confirm) marks it done and the driver returns. Status is
// what was last confirmed.

import type { PowerControl, PowerState } from './power.ts';

export interface ManualRequest {
  want: 'on' | 'off' | 'pxe';
  requestedAt: string;
  /** Set by the operator's confirmation. */
  done?: boolean;
  confirmedAt?: string;
}

/** Where manual requests are kept; the control plane's shared state (Redis), or its twin in tests. */
export interface ManualPowerRequests {
  pending(host: string): Promise<ManualRequest | undefined>;
  request(host: string, req: ManualRequest): Promise<void>;
  clear(host: string): Promise<void>;
  lastConfirmed(host: string): Promise<string | undefined>;
  setLastConfirmed(host: string, state: 'on' | 'off'): Promise<void>;
}

/** What the operator-side (API/CLI) calls to confirm the pending request. Returns false if none was pending. */
export async function confirmManualPower(requests: ManualPowerRequests, host: string): Promise<boolean> {
  const req = await requests.pending(host);
  if (!req || req.done) return false;
  await requests.request(host, { ...req, done: true, confirmedAt: new Date().toISOString() });
  return true;
}

export class ManualPower implements PowerControl {
  readonly describe: string;

  constructor(
    private readonly requests: ManualPowerRequests,
    private readonly host: string,
    private readonly opts: { timeoutMs?: number; pollMs?: number } = {},
  ) {
    this.describe = `manual ${host}`;
  }

  async status(): Promise<PowerState> {
    const raw = await this.requests.lastConfirmed(this.host);
    return raw === 'on' || raw === 'off' ? raw : 'unknown';
  }

  private async ask(want: ManualRequest['want']): Promise<void> {
    const prev = await this.requests.pending(this.host);
    // A resumed job keeps a request that is already pending or confirmed instead of asking twice.
    if (prev?.want !== want) {
      await this.requests.request(this.host, { want, requestedAt: new Date().toISOString() });
    }
    const deadline = Date.now() + (this.opts.timeoutMs ?? 3_600_000);
    for (;;) {
      const req = await this.requests.pending(this.host);
      if (req?.want === want && req.done) {
        await this.requests.clear(this.host);
        if (want !== 'pxe') await this.requests.setLastConfirmed(this.host, want);
        return;
      }
      if (Date.now() > deadline)
        throw new Error(
          `${this.describe}: nobody confirmed "${want}" (confirm with POST /power/manual/${this.host}/confirm)`,
        );
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 1000));
    }
  }

  async on(): Promise<void> {
    if ((await this.status()) === 'on') return;
    await this.ask('on');
  }

  async off(): Promise<void> {
    if ((await this.status()) === 'off') return;
    await this.ask('off');
  }

  bootFromNetwork(): Promise<void> {
    return this.ask('pxe');
  }
}
