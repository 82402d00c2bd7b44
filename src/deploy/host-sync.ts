// Moving a Dom0's root file system with rsync over SSH, both ways: capture (host -> a directory on the
// deploy server, to become an image version) and update in place (an unpacked image -> the host), as
// SystemImager's getimage and updateclient do. Real rsync, real OpenSSH client: the host key is the one
// XSM recorded when it installed the host (ssh-keyscan's answer must have that fingerprint, and ssh is then
// held to exactly that key), the login is the deploy worker's key.
//
// What never travels, either way: the host's identity (SSH host keys, hostname, machine-id, its network
// address, the agent's name and state, root's authorized keys), what the kernel makes at boot (/proc, /sys,
// /dev, /run), scratch (/tmp) and the host's own data (logs, Xen's domain state, VM disks under /srv,
// GRUB's files that match the boot code on the host's disk). rsync neither copies nor deletes excluded
// paths, so an update's --delete acts only within the paths the image manages.

import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Shell } from '../drivers/shell.ts';
import { PermanentError } from '../lib/errors.ts';

/** Identity of the host: kept on the host by an update, left out of a capture. */
export const IDENTITY_EXCLUDES: readonly string[] = [
  '/etc/ssh/ssh_host_*',
  '/etc/hostname',
  '/etc/machine-id',
  '/var/lib/dbus/machine-id',
  '/etc/network/interfaces.d/xsm',
  '/etc/xsm/host-agent.env',
  '/var/lib/xsm/',
  '/root/.ssh/',
];

/** Made at boot, scratch, or the host's own data: never part of an image, never touched by an update. */
export const SYSTEM_EXCLUDES: readonly string[] = [
  '/proc/*',
  '/sys/*',
  '/dev/*',
  '/run/*',
  '/tmp/*',
  '/var/tmp/*',
  '/mnt/*',
  '/media/*',
  '/lost+found',
  '/swapfile',
  '/var/log/*',
  '/var/cache/apt/archives/*.deb',
  '/var/lib/xen/',
  '/var/lib/xenstored/',
  '/srv/',
  '/home/',
  '/boot/grub/',
];

export const HOST_SYNC_EXCLUDES: readonly string[] = [...IDENTITY_EXCLUDES, ...SYSTEM_EXCLUDES];

/** How to reach one installed Dom0 over SSH with OpenSSH's client. */
export interface HostSshTarget {
  host: string;
  address: string;
  port?: number;
  user?: string;
  /** The fingerprint XSM recorded at install ("SHA256:..."), the only key accepted. */
  hostKeySha256: string;
  privateKey: Buffer;
  /** The directory on the host that is its root file system: `/` on a Dom0 (a test gives a tree of its own). */
  root?: string;
}

/** An SSH session for rsync's -e: a key file and a known_hosts holding just the pinned key. */
export interface PinnedSsh {
  /** rsync's `-e` value. */
  rsh: string;
  /** `user@address:root/` for rsync. */
  remoteRoot: string;
  /** ssh's arguments up to the command (`ssh ...args true` checks the login). */
  sshArgs: string[];
  close(): Promise<void>;
}

/** The fingerprint of a known_hosts / ssh-keyscan line ("host type base64 [comment]"). */
export function keyLineFingerprint(line: string): string | undefined {
  const blob = line.trim().split(/\s+/)[2];
  if (!blob) return undefined;
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Learns the host's keys with ssh-keyscan, keeps the one with the recorded fingerprint (or refuses, naming
 * both), and writes it and the login key to a private directory that `close` removes.
 */
export async function pinnedSsh(local: Shell, t: HostSshTarget): Promise<PinnedSsh> {
  const port = t.port ?? 22;
  const where = `host ${t.host} (${t.address}:${port})`;
  const scan = await local.run('ssh-keyscan', ['-T', '10', '-p', String(port), t.address], { timeoutMs: 20_000 });
  const lines = scan.stdout.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  if (!lines.length)
    throw new Error(
      `${where}: no SSH answer (ssh-keyscan: ${scan.stderr.trim().split('\n').pop() || `exit ${scan.code}`}); check that the host is up and sshd runs`,
    );
  const pinned = lines.find((l) => keyLineFingerprint(l) === t.hostKeySha256);
  if (!pinned)
    throw new PermanentError(
      `${where}: offers SSH host keys ${lines.map((l) => keyLineFingerprint(l)).join(', ')}, not the ${t.hostKeySha256} XSM recorded at install; nothing was sent`,
      'if the host was reinstalled outside XSM, redeploy it with xsm host deploy; otherwise treat it as an impostor',
    );
  const dir = await mkdtemp(join(tmpdir(), 'xsm-hostsync-'));
  await chmod(dir, 0o700);
  const keyFile = join(dir, 'id');
  const knownHosts = join(dir, 'known_hosts');
  await writeFile(keyFile, t.privateKey, { mode: 0o600 });
  await writeFile(knownHosts, pinned.trim() + '\n', { mode: 0o600 });
  const keyType = pinned.trim().split(/\s+/)[1]!;
  const options = [
    `-i ${keyFile}`,
    `-p ${port}`,
    '-o BatchMode=yes',
    '-o IdentitiesOnly=yes',
    '-o StrictHostKeyChecking=yes',
    `-o UserKnownHostsFile=${knownHosts}`,
    '-o GlobalKnownHostsFile=/dev/null',
    `-o HostKeyAlgorithms=${keyType}`,
    '-o ConnectTimeout=15',
    '-o ServerAliveInterval=15',
    '-o LogLevel=ERROR',
  ];
  const root = (t.root ?? '/').replace(/\/*$/, '/');
  const login = `${t.user ?? 'root'}@${t.address}`;
  return {
    rsh: ['ssh', ...options].join(' '),
    remoteRoot: `${login}:${root}`,
    sshArgs: [...options.flatMap((o) => o.split(' ')), login],
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

/** rsync's options shared by capture and update: everything a root file system has, numerically owned. */
function baseArgs(ssh: PinnedSsh): string[] {
  return [
    '-aHAX',
    '--numeric-ids',
    '--delete',
    '--timeout=120',
    '-e',
    ssh.rsh,
    ...HOST_SYNC_EXCLUDES.map((e) => `--exclude=${e}`),
  ];
}

const ITEM_FORMAT = '--out-format=%i|%l|%n%L';

/** Pull the host's root into `into` (a directory on this server); a repeat transfers only the differences. */
export function captureArgs(ssh: PinnedSsh, into: string): string[] {
  return [...baseArgs(ssh), '--delete-excluded', ssh.remoteRoot, into.replace(/\/*$/, '/')];
}

/** Push the unpacked image `tree` onto the host; with dryRun nothing on the host changes. */
export function updateArgs(ssh: PinnedSsh, tree: string, dryRun: boolean): string[] {
  return [...baseArgs(ssh), ...(dryRun ? ['--dry-run'] : []), ITEM_FORMAT, tree.replace(/\/*$/, '/'), ssh.remoteRoot];
}

export interface HostChange {
  change: 'add' | 'change' | 'delete';
  kind: 'file' | 'dir' | 'link' | 'device' | 'special';
  path: string;
  /** The file's size in the image (0 for a deletion and for a directory). */
  bytes: number;
}

export interface HostChangeSummary {
  added: number;
  changed: number;
  deleted: number;
  /** Bytes of the files added or changed (what the update writes on the host). */
  bytes: number;
  changes: HostChange[];
}

const KINDS: Record<string, HostChange['kind']> = { f: 'file', d: 'dir', L: 'link', D: 'device', S: 'special' };

/** Reads rsync's `%i|%l|%n%L` lines into what changes on the host. */
export function parseItemizedChanges(stdout: string): HostChangeSummary {
  const changes: HostChange[] = [];
  for (const line of stdout.split('\n')) {
    const [item, size, ...rest] = line.split('|');
    if (!item || size === undefined || !rest.length) continue;
    const path =
      '/' +
      rest
        .join('|')
        .replace(/ -> .*$/, '')
        .replace(/\/$/, '');
    if (item.startsWith('*deleting')) {
      changes.push({ change: 'delete', kind: rest.join('|').endsWith('/') ? 'dir' : 'file', path, bytes: 0 });
      continue;
    }
    const kind = KINDS[item[1] ?? ''];
    // A directory whose times or modes alone differ (`.d..t......`, often because a file in it changes) is
    // not a change worth listing; rsync still sets them.
    if (!kind || path === '/.' || path === '/' || (kind === 'dir' && item[0] === '.')) continue;
    const isNew = item.slice(2).startsWith('+++');
    // A hard link (`h`) writes no data: its bytes are another entry's.
    const bytes = kind === 'file' && item[0] !== 'h' ? Number(size) || 0 : 0;
    changes.push({ change: isNew ? 'add' : 'change', kind, path, bytes });
  }
  const count = (c: HostChange['change']) => changes.filter((x) => x.change === c).length;
  return {
    added: count('add'),
    changed: count('change'),
    deleted: count('delete'),
    bytes: changes.filter((c) => c.change !== 'delete').reduce((a, c) => a + c.bytes, 0),
    changes,
  };
}

/**
 * Runs rsync locally; exit 24 (files vanished while a live system was read) is not a failure. An SSH
 * failure (rsync's 255, or its "connection unexpectedly closed") names the host and says what to check.
 */
export async function runRsync(local: Shell, host: string, args: string[]): Promise<string> {
  const r = await local.run('rsync', args, { timeoutMs: 6 * 3600_000 });
  if (r.code === 0 || r.code === 24) return r.stdout;
  const said = r.stderr.trim().split('\n').slice(-3).join(' ');
  if (r.code === 255 || /connection unexpectedly closed|Permission denied|Host key verification failed/.test(said))
    throw new Error(
      `host ${host}: rsync over SSH failed (exit ${r.code}): ${said}; check that the host is up, sshd runs and it accepts the deploy worker's key`,
    );
  throw new Error(`host ${host}: rsync failed (exit ${r.code}): ${said}`);
}
