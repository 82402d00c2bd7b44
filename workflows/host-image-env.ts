// What the image workflows (capture-image.ts, update-host.ts) need: the deploy records (where each host's
// recorded SSH host key is), the images directory, a local shell for rsync/mkfs/debugfs, and the deploy
// worker's SSH login. The deploy worker builds it from its own dependencies (src/jobs/host-image.ts).

import type { Shell } from '../src/drivers/shell.ts';
import { pinnedSsh, type PinnedSsh } from '../src/deploy/host-sync.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Logger } from '../src/lib/log.ts';
import type { DeployStore } from '../src/state/deploy-store.ts';

export interface HostImageEnv {
  deploys: DeployStore;
  log: Logger;
  imagesDir: string;
  /** Where rsync, mkfs.ext4 and debugfs run: the deploy server, beside the images. */
  local: Shell;
  ssh: {
    privateKey: Buffer;
    user?: string;
    port?: number;
    /** The host's root directory over SSH: `/` on a Dom0; a test gives a tree of its own. */
    root?: string;
  };
  /** How long verify waits for `xl info` after an update. */
  verifyTimeoutMs: number;
}

/** The host's SSH session for rsync, pinned to the host key XSM recorded at install. */
export async function hostSsh(env: HostImageEnv, host: string, address: string): Promise<PinnedSsh> {
  const hostKeySha256 = await hostKeyOf(env, host);
  return pinnedSsh(env.local, {
    host,
    address,
    hostKeySha256,
    privateKey: env.ssh.privateKey,
    ...(env.ssh.port ? { port: env.ssh.port } : {}),
    ...(env.ssh.user ? { user: env.ssh.user } : {}),
    ...(env.ssh.root ? { root: env.ssh.root } : {}),
  });
}

export async function hostKeyOf(env: HostImageEnv, host: string): Promise<string> {
  const key = await env.deploys.field(host, 'hostKey');
  if (!key)
    throw new PermanentError(
      `host ${host}: no SSH host key on record, so XSM cannot tell it from an impostor`,
      'deploy it with xsm host deploy first (which records its key); images are captured from and updated on XSM-installed hosts only',
    );
  return key;
}

/** Runs `fn` with the host's pinned SSH session, removing its key files afterwards. */
export async function withHostSsh<T>(
  env: HostImageEnv,
  host: string,
  address: string,
  fn: (ssh: PinnedSsh) => Promise<T>,
): Promise<T> {
  const ssh = await hostSsh(env, host, address);
  try {
    return await fn(ssh);
  } finally {
    await ssh.close();
  }
}

/** A job id as a file name (BullMQ ids may hold ':' or '/'). */
export function jobFileName(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9._-]/g, '_');
}
