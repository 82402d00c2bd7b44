// Opens a BMC password file only when it is what the site file promised: after symlinks, inside the secrets
// directory, a regular file, readable by its owner alone. The checks run on the opened descriptor, so the
// file checked is the file read; a refused file is never read and its content never leaves XSM.

import { constants } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { PermanentError } from '../../lib/errors.ts';
import { isInside, type PowerPolicy } from '../../site/power-policy.ts';

const BITS: [number, string][] = [
  [0o040, 'group read'],
  [0o020, 'group write'],
  [0o010, 'group execute'],
  [0o004, 'others read'],
  [0o002, 'others write'],
  [0o001, 'others execute'],
];

/** Names the permission bits a secret must not have: "group read, others read". */
export function looseBits(mode: number): string[] {
  return BITS.filter(([bit]) => mode & bit).map(([, what]) => what);
}

async function resolveDir(dir: string, what: string, host: string): Promise<string> {
  try {
    return await realpath(dir);
  } catch (e) {
    throw new PermanentError(
      `host ${host}: the ${what} ${dir} cannot be opened: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      `create it (root-owned, mode 700) or set ${what === 'secrets directory' ? 'XSM_SECRETS_DIR' : 'XSM_QMP_DIR'}`,
    );
  }
}

/** The real path of a password file that passes every check; PermanentError naming what is wrong otherwise. */
export async function checkedSecretPath(file: string, policy: PowerPolicy, host: string): Promise<string> {
  const dir = await resolveDir(policy.secretsDir, 'secrets directory', host);
  let real: string;
  try {
    real = await realpath(file);
  } catch (e) {
    throw new PermanentError(
      `host ${host}: cannot read BMC password file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      `put the password in ${file} (chmod 600)`,
    );
  }
  if (!isInside(real, dir))
    throw new PermanentError(
      `host ${host}: BMC password file ${file} resolves to ${real}, outside the secrets directory ${dir}; it was not read`,
      `keep BMC passwords as regular files in ${dir} (no links out of it)`,
    );
  return real;
}

function checkFileMode(st: { isFile(): boolean; mode: number }, file: string, host: string): void {
  if (!st.isFile())
    throw new PermanentError(`host ${host}: BMC password file ${file} is not a regular file; it was not read`);
  const loose = looseBits(st.mode);
  if (loose.length)
    throw new PermanentError(
      `host ${host}: BMC password file ${file} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (${loose.join(', ')}); it was not read`,
      `chmod 600 ${file}`,
    );
}

/** Checks a password file for a tool that reads it itself (ipmitool -f): returns the real path to give it. */
export async function checkSecretFile(file: string, policy: PowerPolicy, host: string): Promise<string> {
  const real = await checkedSecretPath(file, policy, host);
  checkFileMode(await stat(real), file, host);
  return real;
}

/** Reads a password file (trimmed) after checking it on the open descriptor. */
export async function readSecretFile(file: string, policy: PowerPolicy, host: string): Promise<string> {
  const real = await checkedSecretPath(file, policy, host);
  const fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((e: Error) => {
    throw new PermanentError(`host ${host}: cannot read BMC password file ${file}: ${e.message}`);
  });
  try {
    checkFileMode(await fh.stat(), file, host);
    return (await fh.readFile('utf8')).trim();
  } finally {
    await fh.close();
  }
}

/** A QMP socket that, after symlinks, is inside the QMP directory (or does not exist yet). */
export async function checkQmpSocket(path: string, policy: PowerPolicy, host: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    // Not there (yet): connecting will fail and be retried like an unreachable BMC.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const dir = await resolveDir(policy.qmpDir, 'QMP directory', host);
  if (!isInside(real, dir))
    throw new PermanentError(
      `host ${host}: QMP socket ${path} resolves to ${real}, outside the QMP directory ${dir}`,
      `give the machine's QMP socket in ${dir} (XSM_QMP_DIR)`,
    );
  if (!(await stat(real)).isSocket()) throw new PermanentError(`host ${host}: QMP socket ${path} is not a socket`);
}
