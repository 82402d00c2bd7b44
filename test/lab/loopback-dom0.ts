// A Dom0 on loopback for the image tests and benchmark: a real OpenSSH server on 127.0.0.1 (its own host
// key, a test-only client key) whose `xl` is the simulated Xen host's. The "root file system" rsync reaches
// is a directory the caller names (HostImageEnv.ssh.root), so nothing of this machine's own / is touched.
// Needs root (sshd).

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '../..');

/** Why the loopback Dom0 cannot run here, or undefined when it can. */
export function loopbackDom0Unsupported(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (sshd)';
  for (const bin of ['rsync', '/usr/sbin/sshd', 'ssh-keyscan', 'debugfs', 'mkfs.ext4'])
    try {
      execFileSync(bin, ['-V'], { stdio: 'ignore' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return `${bin} is not installed`;
    }
  return undefined;
}

export interface LoopbackDom0 {
  dir: string;
  port: number;
  fingerprint: string;
  clientKey: Buffer;
  sshd: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as AddressInfo).port;
  s.close();
  return p;
}

export async function startLoopbackDom0(): Promise<LoopbackDom0> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-hostimage-'));
  for (const name of ['host', 'client'])
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name), '-C', `xsm-test-${name}`]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(join(dir, 'client.pub')));
  const bin = join(dir, 'bin');
  await mkdir(bin);
  await writeFile(
    join(bin, 'xl'),
    `#!/bin/sh\nexport XSM_SIM_DIR=${join(dir, 'xen')} XSM_SIM_HOST=node1\nexec node --import ${join(REPO, 'node_modules/tsx/dist/loader.mjs')} ${join(REPO, 'src/drivers/hypervisor/sim-xl.ts')} "$@"\n`,
  );
  await chmod(join(bin, 'xl'), 0o755);
  await mkdir('/run/sshd', { recursive: true });
  const port = await freePort();
  const cfg = [
    `ListenAddress 127.0.0.1:${port}`,
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'PidFile none',
    `SetEnv PATH=${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
    'LogLevel ERROR',
  ];
  await writeFile(join(dir, 'sshd_config'), cfg.join('\n') + '\n');
  const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: 'ignore' });
  const until = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (up) break;
    if (sshd.exitCode !== null || Date.now() > until) throw new Error('sshd did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const fingerprint = execFileSync('ssh-keygen', ['-lf', join(dir, 'host.pub')])
    .toString()
    .split(' ')[1]!;
  return {
    dir,
    port,
    fingerprint,
    clientKey: await readFile(join(dir, 'client')),
    sshd,
    stop: async () => {
      sshd.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
