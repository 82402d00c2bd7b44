// Image distribution: the server side (an rsync daemon for unicast, udp-sender for multicast, the head
// of a TCP chain) and the receiver commands the deploy workflow runs in each machine's installer.
// Every method ends with the same bytes at the same offset of the disk, checked against the manifest's
// SHA-256 before the host goes on.

import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { shellQuote } from '../drivers/ssh/ssh-shell.ts';
import type { Logger } from '../lib/log.ts';
import type { ImageManifest } from './image.ts';

export type TransferMethod = 'unicast' | 'multicast' | 'broadcast' | 'chain';
export const TRANSFER_METHODS: readonly TransferMethod[] = ['unicast', 'multicast', 'broadcast', 'chain'];

/** The methods that send one copy with udpcast (multicast group or the subnet's broadcast address). */
export function isUdpcast(m: TransferMethod): m is 'multicast' | 'broadcast' {
  return m === 'multicast' || m === 'broadcast';
}

export interface ImageServerConfig {
  imagesDir: string;
  /** The server's address on the deployment network (rsync binds it; receivers connect to it). */
  address: string;
  /** Its interface there (udp-sender sends on it). */
  interface: string;
  rsyncPort?: number;
  stateDir: string;
  /**
   * udp-sender's --max-bitrate (e.g. "95m"): a little under the slowest link's rate. Unpaced, udpcast
   * sends as fast as the server's NIC allows and the switch (or a shaped link) drops what does not fit,
   * which costs retransmission rounds for every receiver.
   */
  multicastMaxBitrate?: string;
}

/** Where the image goes in the machine: the disk and the root partition's byte offset. */
export interface DiskTarget {
  disk: string;
  offset: number;
}

const q = shellQuote;

/** dd that writes its stdin at the partition's offset of the disk, not truncating the disk. */
function ddInto(t: DiskTarget, from?: string): string {
  return `dd ${from ? `if=${q(from)} ` : 'iflag=fullblock '}of=${q(t.disk)} bs=4M seek=${t.offset} oflag=seek_bytes conv=notrunc,fsync status=none`;
}

/** The shell line (run by `sh -c` in the installer) that pulls the image over rsync and writes it. */
export function unicastReceiver(server: ImageServerConfig, image: ImageManifest, t: DiskTarget, tmp: string): string {
  const url = `rsync://${server.address}:${server.rsyncPort ?? 873}/images/${image.file}`;
  // --partial keeps what arrived if the link drops, so a retried step continues instead of restarting.
  return `set -e; rsync --partial --inplace --timeout=60 ${q(url)} ${q(tmp)}; ${ddInto(t, tmp)}; rm -f ${q(tmp)}`;
}

/**
 * Where the installer keeps udp-receiver's messages (a failed round's error quotes their end); one file
 * per host, since installers may share a /tmp (the netns lab's do).
 */
export function multicastReceiverLog(host: string): string {
  return `/tmp/xsm-udp-receiver-${host}.log`;
}

export function multicastReceiver(iface: string, portbase: number, t: DiskTarget, log: string): string {
  return `set -e; udp-receiver --interface ${q(iface)} --portbase ${portbase} --nokbd --start-timeout 90 --receive-timeout 30 --exit-wait 200 2>${q(log)} | ${ddInto(t)}`;
}

export function chainReceiver(
  relay: readonly string[],
  port: number,
  next: string | undefined,
  t: DiskTarget,
  image: ImageManifest,
): string {
  const args = [
    ...relay,
    '--listen',
    String(port),
    ...(next ? ['--next', next] : []),
    '--out',
    t.disk,
    '--seek',
    String(t.offset),
    '--bytes',
    String(image.bytes),
    '--timeout',
    '600',
  ];
  return args.map(q).join(' ');
}

/** Reads back the written region and hashes it: the line prints the hex SHA-256. */
export function checksumCommand(t: DiskTarget, bytes: number): string {
  return `dd if=${q(t.disk)} bs=4M skip=${t.offset} count=${bytes} iflag=skip_bytes,count_bytes status=none | sha256sum`;
}

export class ImageServer {
  private rsync?: ChildProcess;
  private senders = new Set<ChildProcess>();
  constructor(
    readonly config: ImageServerConfig,
    private readonly log: Logger,
  ) {}

  /** Starts the rsync daemon serving the images directory read-only to the deployment network. */
  async start(): Promise<void> {
    if (this.rsync) return;
    await mkdir(this.config.stateDir, { recursive: true });
    const conf = join(this.config.stateDir, 'rsyncd.conf');
    // rsyncd.conf: only whole-line comments; a value must not carry one.
    await writeFile(
      conf,
      [
        '# Written by XSM (src/deploy/transfer.ts): Dom0 images, read only.',
        'use chroot = no',
        'max connections = 64',
        `pid file = ${join(this.config.stateDir, 'rsyncd.pid')}`,
        `lock file = ${join(this.config.stateDir, 'rsyncd.lock')}`,
        '[images]',
        `    path = ${this.config.imagesDir}`,
        '    read only = yes',
        '    list = yes',
        // A capture's staging copy and the unpacked trees updates sync from are the deploy server's own.
        '    exclude = /.staging/ /.trees/',
        `    hosts allow = ${this.config.address.replace(/\.\d+$/, '.0')}/24`,
        '',
      ].join('\n'),
    );
    const p = spawn(
      'rsync',
      [
        '--daemon',
        '--no-detach',
        `--config=${conf}`,
        `--address=${this.config.address}`,
        `--port=${this.config.rsyncPort ?? 873}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    p.stderr?.on('data', (b: Buffer) => (err += b.toString()));
    this.rsync = p;
    // Ready when it accepts connections.
    const until = Date.now() + 5000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`rsync daemon exited ${p.exitCode}: ${err.trim()}`);
      const ok = await new Promise<boolean>((r) => {
        const s = connect(this.config.rsyncPort ?? 873, this.config.address);
        s.once('connect', () => (s.destroy(), r(true)));
        s.once('error', () => r(false));
      });
      if (ok) break;
      if (Date.now() > until)
        throw new Error(
          `rsync daemon not answering on ${this.config.address}:${this.config.rsyncPort ?? 873}: ${err.trim()}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
    this.log.info('rsync daemon started', { address: this.config.address, port: this.config.rsyncPort ?? 873 });
  }

  async stop(): Promise<void> {
    for (const s of this.senders) s.kill('SIGTERM');
    const p = this.rsync;
    this.rsync = undefined;
    if (p && p.exitCode === null) {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
    }
  }

  /**
   * One multicast round: udp-sender waits for `receivers` machines (or `maxWaitS` once at least one
   * joined) and sends the image once to all of them. Resolves when the sender exits; `onStart` is
   * called when the data starts to flow (udp-sender's "Starting transfer", after the rendezvous).
   * `broadcast`: the data goes to the subnet's broadcast address (udp-sender --broadcast), for networks
   * whose switches drop or flood multicast; the receivers are the same.
   */
  multicastSend(
    image: ImageManifest,
    opts: {
      portbase: number;
      receivers: number;
      maxWaitS: number;
      maxBitrate?: string;
      broadcast?: boolean;
      onStart?: () => void;
    },
  ): Promise<void> {
    const maxBitrate = opts.maxBitrate ?? this.config.multicastMaxBitrate;
    const args = [
      '--file',
      join(this.config.imagesDir, image.file),
      '--interface',
      this.config.interface,
      '--portbase',
      String(opts.portbase),
      '--nokbd',
      '--min-receivers',
      String(opts.receivers),
      '--max-wait',
      String(opts.maxWaitS),
      '--full-duplex',
      ...(opts.broadcast ? ['--broadcast'] : []),
      ...(maxBitrate ? ['--max-bitrate', maxBitrate] : []),
    ];
    return new Promise((resolve, reject) => {
      const p = spawn('udp-sender', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      this.senders.add(p);
      p.on('exit', () => this.senders.delete(p));
      let err = '';
      let started = false;
      p.stderr?.on('data', (b: Buffer) => {
        err = (err + b.toString()).slice(-4000);
        if (!started && err.includes('Starting transfer')) {
          started = true;
          opts.onStart?.();
        }
      });
      p.on('error', reject);
      p.on('exit', (code) =>
        code === 0
          ? resolve()
          : reject(new Error(`udp-sender exited ${code}: ${err.trim().split('\n').slice(-2).join(' ')}`)),
      );
    });
  }

  /** Streams the image to the first machine of a chain (which forwards it down the chain). */
  chainSend(image: ImageManifest, first: { host: string; port: number }, timeoutMs = 60000): Promise<void> {
    return new Promise((resolve, reject) => {
      const until = Date.now() + timeoutMs;
      const attempt = () => {
        const s = connect(first.port, first.host);
        s.once('connect', () => {
          s.removeAllListeners('error');
          s.on('error', (e) => reject(new Error(`chain head ${first.host}:${first.port}: ${e.message}`)));
          const file = createReadStream(join(this.config.imagesDir, image.file), { highWaterMark: 1 << 20 });
          file.on('error', reject);
          file.pipe(s);
          s.on('close', () => resolve());
        });
        s.once('error', (e) =>
          Date.now() > until
            ? reject(new Error(`chain head ${first.host}:${first.port} not listening: ${e.message}`))
            : setTimeout(attempt, 100),
        );
      };
      attempt();
    });
  }
}
