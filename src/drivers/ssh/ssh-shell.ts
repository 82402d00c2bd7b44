// Running programs on a Dom0 over SSH (ssh2), with the host key pinned: XSM records each host's key
// fingerprint when it installs the host and refuses any other key afterwards, so a reinstalled or
// impersonated host is never sent a command. One connection per host, opened on first use and reopened
// after it drops.
//
// SSH always hands the remote side one command string, which the login shell splits. To keep the
// "arguments, never a shell line" rule, every argument is single-quoted here, so the remote shell sees
// each as one literal word: `$(...)`, `;`, spaces and quotes in a VM name do nothing.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, type ConnectConfig } from 'ssh2';
import type { CommandResult, RunOptions, Shell } from '../shell.ts';

export interface SshTarget {
  host: string;
  port?: number;
  username?: string;
  /** Private key (OpenSSH or PEM) or the path of one. */
  privateKey: Buffer | string;
  /** The pinned host key, as `ssh-keygen -lf` prints it: "SHA256:base64". */
  hostKeySha256: string;
  /** Connection timeout, ms (default 10 s). */
  readyTimeoutMs?: number;
}

export class SshError extends Error {
  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
    this.name = 'SshError';
  }
}

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Quotes one argument for a POSIX shell: the result is always exactly one literal word. */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('an argument cannot contain a NUL byte');
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function keyBytes(k: Buffer | string): Buffer {
  if (Buffer.isBuffer(k)) return k;
  if (k.includes('-----BEGIN')) return Buffer.from(k);
  return readFileSync(k);
}

export class SshShell implements Shell {
  readonly where: string;
  private conn: Promise<Client> | undefined;

  constructor(private readonly target: SshTarget) {
    this.where = `${target.username ?? 'root'}@${target.host}:${target.port ?? 22}`;
    if (!/^SHA256:[A-Za-z0-9+/]{43}$/.test(target.hostKeySha256)) {
      throw new SshError(
        this.where,
        `pinned host key "${target.hostKeySha256}" is not a SHA256 fingerprint (expected SHA256: and 43 base64 characters, as \`ssh-keygen -lf KEY.pub\` prints)`,
      );
    }
  }

  private connect(): Promise<Client> {
    if (this.conn) return this.conn;
    const t = this.target;
    this.conn = new Promise<Client>((resolve, reject) => {
      const c = new Client();
      let seenKey: string | undefined;
      const cfg: ConnectConfig = {
        host: t.host,
        port: t.port ?? 22,
        username: t.username ?? 'root',
        privateKey: keyBytes(t.privateKey),
        readyTimeout: t.readyTimeoutMs ?? 10000,
        hostVerifier: (key: Buffer) => {
          seenKey = fingerprint(key);
          return seenKey === t.hostKeySha256;
        },
      };
      c.once('ready', () => resolve(c));
      // `on`, not `once`: ssh2 can emit a second error for one connection (a ready timeout, then
      // "Connection lost before handshake" when the socket closes), and an unhandled one ends the process.
      c.on('error', (e: Error & { level?: string }) => {
        this.conn = undefined;
        if (seenKey && seenKey !== t.hostKeySha256) {
          reject(
            new SshError(
              this.where,
              `host key mismatch: pinned ${t.hostKeySha256}, the host offered ${seenKey}; no command was sent. If the host was reinstalled, redeploy it through XSM (which records the new key); otherwise treat it as an impostor`,
            ),
          );
        } else if (e.level === 'client-authentication') {
          reject(
            new SshError(
              this.where,
              `authentication failed for ${cfg.username}: the host does not accept XSM's key; check /root/.ssh/authorized_keys on the host`,
            ),
          );
        } else if (e.level === 'client-timeout') {
          reject(
            new SshError(this.where, `no SSH answer within ${cfg.readyTimeout} ms; is the host up and sshd running?`),
          );
        } else {
          reject(new SshError(this.where, `cannot connect: ${e.message}`));
        }
      });
      c.on('close', () => {
        this.conn = undefined;
      });
      c.connect(cfg);
    });
    return this.conn;
  }

  async run(program: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    const client = await this.connect();
    const env = options.env
      ? Object.entries(options.env).map(([k, v]) => {
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
            throw new SshError(this.where, `environment variable name ${JSON.stringify(k)} is not valid`);
          return `${k}=${shellQuote(v)}`;
        })
      : [];
    // A program past its timeout is killed on the host by coreutils' timeout(1), a second after XSM
    // stops waiting: a hung program (`xl` once xenstored died, seen in the qemu lab) would otherwise hold
    // its session, and after MaxSessions (10) of them sshd refuses every new command on the connection.
    // (The SSH "signal" request would be the protocol's way, but sshd refuses it for root sessions.)
    const limit = options.timeoutMs ? ['timeout', '-s', 'KILL', String(Math.ceil(options.timeoutMs / 1000) + 1)] : [];
    const line = [...limit, ...(env.length ? ['env', ...env] : []), shellQuote(program), ...args.map(shellQuote)].join(
      ' ',
    );
    return new Promise<CommandResult>((resolve, reject) => {
      client.exec(line, (err, stream) => {
        if (err) return reject(new SshError(this.where, `cannot start ${program}: ${err.message}`));
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let timer: NodeJS.Timeout | undefined;
        let timedOut = false;
        let done = false;
        const finish = (code: number | null, signal?: string) => {
          if (done) return;
          done = true;
          if (timer) clearTimeout(timer);
          resolve({
            code: timedOut ? 128 : (code ?? (signal ? 128 : 1)),
            stdout: Buffer.concat(out).toString('utf8'),
            stderr:
              Buffer.concat(errOut).toString('utf8') +
              (timedOut ? `\n(stopped after ${options.timeoutMs} ms)` : signal ? `\n(killed by ${signal})` : ''),
          });
        };
        if (options.timeoutMs) {
          timer = setTimeout(() => {
            timedOut = true;
            stream.close();
            // sshd answers a close only once the program has exited (it may never: `xl shutdown -w` of a
            // guest that ignores the request), so return after a short grace period whatever the remote
            // side does; the program may run on there until it ends by itself.
            timer = setTimeout(() => finish(null), 2000);
          }, options.timeoutMs);
        }
        stream.on('data', (b: Buffer) => out.push(b));
        stream.stderr.on('data', (b: Buffer) => errOut.push(b));
        stream.on('close', (code: number | null, signal?: string) => finish(code, signal));
        if (options.input !== undefined) stream.end(options.input);
        else stream.end();
      });
    });
  }

  async close(): Promise<void> {
    const c = await this.conn?.catch(() => undefined);
    this.conn = undefined;
    c?.end();
  }
}

/**
 * Reads the key a host offers, for recording at install time (trust on first use, done once by the
 * deploy workflow while the host is on the install network it booted into).
 */
export function probeHostKey(host: string, port = 22, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let key: string | undefined;
    // `on`, not `once`: refusing the key is an error, and a slow sshd (seen under emulation) can then
    // drop the connection before the handshake, a second error that would otherwise crash the process.
    c.on('error', () => {
      c.end();
      if (key) resolve(key);
      else reject(new SshError(`${host}:${port}`, 'no SSH host key offered (is sshd running?)'));
    });
    c.connect({
      host,
      port,
      username: 'xsm-probe',
      readyTimeout: timeoutMs,
      hostVerifier: (k: Buffer) => {
        key = fingerprint(k);
        // Refuse on purpose: the probe only wants the key, never a session.
        return false;
      },
    });
  });
}
