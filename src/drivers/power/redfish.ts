// Power control through a Redfish BMC (HTTP + JSON). Discovers the system, takes the Reset action's target
// from the resource (never a guessed URL) and PATCHes the one-shot PXE boot override with If-Match.

import type { PowerControl, PowerState } from './power.ts';

export interface RedfishOptions {
  /** Base URL, e.g. https://10.0.0.201 (the service root is <base>/redfish/v1/). */
  baseUrl: string;
  user: string;
  password: string;
  /** Boot mode for the override; omitted when undefined (BMC keeps its current mode). */
  bootMode?: 'Legacy' | 'UEFI';
  offTimeoutMs?: number;
  pollMs?: number;
}

interface SystemResource {
  PowerState?: string;
  Actions?: Record<string, { target?: string; 'ResetType@Redfish.AllowableValues'?: string[] } | undefined>;
  Boot?: Record<string, unknown>;
}

export class RedfishPower implements PowerControl {
  readonly describe: string;
  private systemPath?: string;

  constructor(private readonly opts: RedfishOptions) {
    this.describe = `redfish ${opts.baseUrl}`;
  }

  private async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const url = new URL(path, this.opts.baseUrl).toString();
    const auth = Buffer.from(`${this.opts.user}:${this.opts.password}`).toString('base64');
    const res = await fetch(url, {
      method,
      headers: {
        Authorization: `Basic ${auth}`,
        Accept: 'application/json',
        ...(body ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new Error(
        `${this.describe}: ${method} ${path} answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`,
      );
    }
    return res;
  }

  private async getJson<T>(path: string): Promise<{ body: T; etag?: string }> {
    const res = await this.request('GET', path);
    return { body: (await res.json()) as T, etag: res.headers.get('etag') ?? undefined };
  }

  /** Service root -> Systems collection -> the first (only) member. */
  private async system(): Promise<string> {
    if (this.systemPath) return this.systemPath;
    const root = await this.getJson<{ Systems?: { '@odata.id'?: string } }>('/redfish/v1/');
    const coll = root.body.Systems?.['@odata.id'];
    if (!coll) throw new Error(`${this.describe}: service root has no Systems link`);
    const members = await this.getJson<{ Members?: { '@odata.id'?: string }[] }>(coll);
    const first = members.body.Members?.[0]?.['@odata.id'];
    if (!first) throw new Error(`${this.describe}: ${coll} lists no systems`);
    if ((members.body.Members?.length ?? 0) > 1)
      throw new Error(
        `${this.describe}: ${coll} lists ${members.body.Members?.length} systems; one BMC per host is expected`,
      );
    this.systemPath = first;
    return first;
  }

  async status(): Promise<PowerState> {
    const { body } = await this.getJson<SystemResource>(await this.system());
    if (body.PowerState === 'On' || body.PowerState === 'PoweringOn') return 'on';
    if (body.PowerState === 'Off' || body.PowerState === 'PoweringOff') return 'off';
    return 'unknown';
  }

  private async reset(wanted: string[]): Promise<void> {
    const sys = await this.system();
    const { body } = await this.getJson<SystemResource>(sys);
    const action = body.Actions?.['#ComputerSystem.Reset'];
    if (!action?.target) throw new Error(`${this.describe}: ${sys} offers no #ComputerSystem.Reset action`);
    const allowed = action['ResetType@Redfish.AllowableValues'];
    const type = allowed ? wanted.find((w) => allowed.includes(w)) : wanted[0];
    if (!type)
      throw new Error(
        `${this.describe}: none of ResetType ${wanted.join('/')} is allowed (BMC allows ${allowed?.join(', ')})`,
      );
    await this.request('POST', action.target, { ResetType: type });
  }

  async on(): Promise<void> {
    if ((await this.status()) === 'on') return;
    await this.reset(['On', 'ForceOn']);
  }

  async off(): Promise<void> {
    if ((await this.status()) === 'off') return;
    await this.reset(['ForceOff']);
    const deadline = Date.now() + (this.opts.offTimeoutMs ?? 30_000);
    for (;;) {
      if ((await this.status()) === 'off') return;
      if (Date.now() > deadline) throw new Error(`${this.describe}: system still on after ForceOff`);
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 1000));
    }
  }

  async bootFromNetwork(): Promise<void> {
    const sys = await this.system();
    const { body, etag } = await this.getJson<SystemResource>(sys);
    const allowed = body.Boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (Array.isArray(allowed) && !allowed.includes('Pxe'))
      throw new Error(`${this.describe}: BMC does not allow BootSourceOverrideTarget Pxe`);
    const boot: Record<string, string> = { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' };
    if (this.opts.bootMode) boot.BootSourceOverrideMode = this.opts.bootMode;
    await this.request('PATCH', sys, { Boot: boot }, etag ? { 'If-Match': etag } : {});
  }
}
