// Power control through a Redfish BMC (HTTP + JSON). Discovers the system, takes the Reset action's target
// from the resource (never a guessed URL) and PATCHes the one-shot PXE boot override with If-Match.
// Requests go through node:https (not fetch) so certificate checking can be turned off per BMC, and so every
// address the BMC's name resolves to is checked before a connection carries the password.

import http from 'node:http';
import https from 'node:https';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import net from 'node:net';
import type { PowerControl, PowerState } from './power.ts';

export interface RedfishOptions {
  /** Base URL, e.g. https://10.0.0.201 (the service root is <base>/redfish/v1/). */
  baseUrl: string;
  user: string;
  password: string;
  /** Do not verify the BMC's TLS certificate (the site file's insecureTls="true"). */
  insecureTls?: boolean;
  /** Refuses an address the BMC resolves to (a reason), before connecting: local addresses outside a lab. */
  refuseAddress?: (ip: string) => string | undefined;
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
    const url = new URL(path, this.opts.baseUrl);
    const auth = Buffer.from(`${this.opts.user}:${this.opts.password}`).toString('base64');
    const res = await this.send(
      url,
      method,
      {
        Authorization: `Basic ${auth}`,
        Accept: 'application/json',
        ...(body ? { 'Content-Type': 'application/json' } : {}),
        ...headers,
      },
      body === undefined ? undefined : JSON.stringify(body),
    );
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new Error(
        `${this.describe}: ${method} ${path} answered ${res.status} ${res.statusText}${text ? `: ${text.slice(0, 300)}` : ''}`,
      );
    }
    return res;
  }

  /** One HTTP(S) exchange; the address is checked (literal or resolved) before anything is sent. */
  private send(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Response> {
    const refuse = this.opts.refuseAddress;
    const literal = url.hostname.replace(/^\[|\]$/g, '');
    if (refuse && net.isIP(literal)) {
      const why = refuse(literal);
      if (why) return Promise.reject(new Error(`${this.describe}: ${why}`));
    }
    const lookup = refuse ? guardedLookup(refuse) : undefined;
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          headers: { ...headers, ...(body !== undefined ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) },
          timeout: 30_000,
          ...(lookup ? { lookup } : {}),
          ...(url.protocol === 'https:' ? { rejectUnauthorized: !this.opts.insecureTls } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const h = new Headers();
            for (const [k, v] of Object.entries(res.headers))
              if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
            const noBody = status === 204 || status === 304 || method === 'HEAD';
            resolve(
              new Response(noBody ? null : Buffer.concat(chunks), {
                status,
                statusText: res.statusMessage ?? '',
                headers: h,
              }),
            );
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${this.describe}: no answer within 30 s`)));
      req.on('error', (e) => reject(new Error(`${this.describe}: ${method} ${url.pathname}: ${e.message}`)));
      req.end(body);
    });
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

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** dns.lookup that fails when any address the name resolves to is refused. */
function guardedLookup(refuse: (ip: string) => string | undefined) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const why = list.map((a) => refuse(a.address)).find(Boolean);
      if (why) return callback(Object.assign(new Error(`${hostname}: ${why}`), { code: 'EXSMREFUSED' }), []);
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
