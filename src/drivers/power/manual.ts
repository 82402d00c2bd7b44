// Manual power: for hosts without a BMC an operator switches the machine and confirms. XSM records the
// request in Redis (`<prefix>:power:manual:<host>` = {"want":"on"|"off"|"pxe", ...}); the operator (or the
// API's POST /power/manual/:host/confirm) sets "done" and the driver returns. Status is what was last confirmed.

import type { Redis } from 'ioredis';
import type { PowerControl, PowerState } from './power.ts';

export interface ManualRequest {
  want: 'on' | 'off' | 'pxe';
  requestedAt: string;
  /** Set by the operator's confirmation. */
  done?: boolean;
  confirmedAt?: string;
}

export function manualPowerKey(prefix: string, host: string): string {
  return `${prefix}:power:manual:${host}`;
}

/** What the operator-side (API/CLI) calls to confirm the pending request. Returns false if none was pending. */
export async function confirmManualPower(redis: Redis, prefix: string, host: string): Promise<boolean> {
  const key = manualPowerKey(prefix, host);
  const raw = await redis.get(key);
  if (!raw) return false;
  const req = JSON.parse(raw) as ManualRequest;
  if (req.done) return false;
  await redis.set(key, JSON.stringify({ ...req, done: true, confirmedAt: new Date().toISOString() }));
  return true;
}

export class ManualPower implements PowerControl {
  readonly describe: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly host: string,
    private readonly opts: { timeoutMs?: number; pollMs?: number } = {},
  ) {
    this.describe = `manual ${host}`;
  }

  private get key(): string {
    return manualPowerKey(this.prefix, this.host);
  }

  async status(): Promise<PowerState> {
    const raw = await this.redis.get(`${this.key}:state`);
    return raw === 'on' || raw === 'off' ? raw : 'unknown';
  }

  private async ask(want: ManualRequest['want']): Promise<void> {
    const existing = await this.redis.get(this.key);
    const prev = existing ? (JSON.parse(existing) as ManualRequest) : undefined;
    // A resumed job keeps a request that is already pending or confirmed instead of asking twice.
    if (prev?.want !== want) {
      await this.redis.set(
        this.key,
        JSON.stringify({ want, requestedAt: new Date().toISOString() } satisfies ManualRequest),
      );
    }
    const deadline = Date.now() + (this.opts.timeoutMs ?? 3_600_000);
    for (;;) {
      const raw = await this.redis.get(this.key);
      const req = raw ? (JSON.parse(raw) as ManualRequest) : undefined;
      if (req?.want === want && req.done) {
        await this.redis.del(this.key);
        if (want !== 'pxe') await this.redis.set(`${this.key}:state`, want);
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
