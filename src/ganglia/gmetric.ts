// A native gmetric sender: Ganglia 3.1+ XDR packets over UDP (formats.md 2.6), so host agents publish
// per-VM metrics without forking `gmetric` per value. Each VM is spoofed as its own Ganglia host
// ("ip:name"), so it shows beside the Dom0s in Ganglia's web frontend, as in the paper.

import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

export type GmetricType = 'string' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float' | 'double';
const SLOPES = { zero: 0, positive: 1, negative: 2, both: 3, unspecified: 4, derivative: 5 } as const;

export interface GmetricSpec {
  name: string;
  value: number | string;
  type: GmetricType;
  units?: string;
  slope?: keyof typeof SLOPES;
  /** Expected max seconds between values, and seconds after which Ganglia forgets the metric (0: never). */
  tmax?: number;
  dmax?: number;
  group?: string;
  title?: string;
  desc?: string;
  /** "ip:hostname": send as this host (a VM). */
  spoof?: string;
}

const MAX_PACKET = 1464;
const BAD_CHARS = /["\\<>&]/;

class Xdr {
  private buf = Buffer.alloc(MAX_PACKET);
  private at = 0;
  u32(v: number): this {
    this.room(4);
    this.buf.writeUInt32BE(v >>> 0, this.at);
    this.at += 4;
    return this;
  }
  i32(v: number): this {
    this.room(4);
    this.buf.writeInt32BE(v | 0, this.at);
    this.at += 4;
    return this;
  }
  f32(v: number): this {
    this.room(4);
    this.buf.writeFloatBE(v, this.at);
    this.at += 4;
    return this;
  }
  f64(v: number): this {
    this.room(8);
    this.buf.writeDoubleBE(v, this.at);
    this.at += 8;
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const padded = (b.length + 3) & ~3;
    this.u32(b.length);
    this.room(padded);
    b.copy(this.buf, this.at);
    this.buf.fill(0, this.at + b.length, this.at + padded);
    this.at += padded;
    return this;
  }
  private room(n: number) {
    if (this.at + n > MAX_PACKET)
      throw new Error(`gmetric packet over ${MAX_PACKET} bytes; shorten the metric's name, title or description`);
  }
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }
}

/** Checks a metric as the gmetric command does, with the same kinds of messages. */
export function checkMetric(m: GmetricSpec): void {
  if (!m.name) throw new Error('gmetric: a metric needs a name');
  for (const [what, v] of [
    ['name', m.name],
    ['units', m.units],
    ['group', m.group],
    ['title', m.title],
    ['desc', m.desc],
    ['spoof', m.spoof],
    ['value', typeof m.value === 'string' ? m.value : ''],
  ] as const) {
    if (v && BAD_CHARS.test(v))
      throw new Error(`gmetric: metric ${m.name}: the ${what} has an invalid character (one of " \\ < > &)`);
  }
  if (m.type !== 'string' && (typeof m.value !== 'number' || !Number.isFinite(m.value)))
    throw new Error(`gmetric: metric ${m.name}: the value ${String(m.value)} does not represent a number`);
  if (m.spoof !== undefined) {
    const i = m.spoof.indexOf(':');
    if (i <= 0 || i === m.spoof.length - 1)
      throw new Error(`gmetric: metric ${m.name}: spoof "${m.spoof}" must be "ip:hostname"`);
  }
}

/** The metadata packet (id 128) and the value packet for one metric, as gmond expects them. */
export function encodeMetric(m: GmetricSpec, senderHost: string): { meta: Buffer; value: Buffer } {
  checkMetric(m);
  const host = m.spoof ?? senderHost;
  const spoof = m.spoof !== undefined ? 1 : 0;
  const extras: [string, string][] = [];
  // gmetric's own order (compared byte for byte in the tests): SPOOF_HOST, GROUP, DESC, TITLE.
  if (m.spoof) extras.push(['SPOOF_HOST', m.spoof]);
  if (m.group) for (const g of m.group.split(', ')) extras.push(['GROUP', g]);
  if (m.desc) extras.push(['DESC', m.desc]);
  if (m.title) extras.push(['TITLE', m.title]);
  const meta = new Xdr()
    .u32(128)
    .str(host)
    .str(m.name)
    .u32(spoof)
    .str(m.type)
    .str(m.name)
    .str(m.units ?? '')
    .u32(SLOPES[m.slope ?? 'both'])
    .u32(m.tmax ?? 60)
    .u32(m.dmax ?? 0)
    .u32(extras.length);
  for (const [k, v] of extras) meta.str(k).str(v);
  const value = new Xdr();
  // Typed packets let gmond format the value itself (printf of fmt), as its own modules do.
  switch (m.type) {
    case 'string':
      value.u32(133).str(host).str(m.name).u32(spoof).str('%s').str(String(m.value));
      break;
    case 'float':
      value
        .u32(134)
        .str(host)
        .str(m.name)
        .u32(spoof)
        .str('%.2f')
        .f32(m.value as number);
      break;
    case 'double':
      value
        .u32(135)
        .str(host)
        .str(m.name)
        .u32(spoof)
        .str('%.2f')
        .f64(m.value as number);
      break;
    case 'uint32':
    case 'uint16':
    case 'uint8':
      value
        .u32(132)
        .str(host)
        .str(m.name)
        .u32(spoof)
        .str('%u')
        .u32(Math.max(0, Math.round(m.value as number)));
      break;
    default:
      value
        .u32(131)
        .str(host)
        .str(m.name)
        .u32(spoof)
        .str('%d')
        .i32(Math.round(m.value as number));
  }
  return { meta: meta.done(), value: value.done() };
}

export interface GmetricSender {
  send(metrics: GmetricSpec[]): Promise<void>;
  close(): void;
}

/**
 * Sends to one gmond (unicast udp_recv_channel). Metadata goes before the first value of each metric and
 * again every `metadataEveryMs`: gmond drops values whose metadata it lacks, e.g. after a restart.
 */
export function gmetricSender(
  target: { host: string; port: number },
  senderHost: string,
  opts: { metadataEveryMs?: number } = {},
): GmetricSender {
  const family = isIP(target.host) === 6 ? 'udp6' : 'udp4';
  const socket: Socket = createSocket(family);
  socket.unref();
  const metaSentAt = new Map<string, number>();
  const every = opts.metadataEveryMs ?? 60000;
  const sendOne = (b: Buffer) =>
    new Promise<void>((resolve, reject) =>
      socket.send(b, target.port, target.host, (e) =>
        e ? reject(new Error(`gmetric to ${target.host}:${target.port}: ${e.message}`)) : resolve(),
      ),
    );
  return {
    async send(metrics) {
      const now = Date.now();
      for (const m of metrics) {
        const { meta, value } = encodeMetric(m, senderHost);
        const key = `${m.spoof ?? senderHost}/${m.name}`;
        if (now - (metaSentAt.get(key) ?? -Infinity) >= every) {
          await sendOne(meta);
          metaSentAt.set(key, now);
        }
        await sendOne(value);
      }
    },
    close() {
      socket.close();
    },
  };
}
