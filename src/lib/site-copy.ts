// The copy of the site every host agent keeps on its Dom0 (the XSM paper's XSMd keeps the whole site on
// every host): the newest applied version it has seen, with its version number and the SHA-256 of its XML,
// so the desired state survives losing Redis entirely. `newestCopy` picks what a recovery rebuilds from:
// the newest version, and only when every copy of that version is the same file.

import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SiteCopy {
  version: number;
  /** SHA-256 of `xml`, hex. */
  sha256: string;
  xml: string;
}

export const SITE_COPY_FILE = 'site.json';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Writes the copy atomically (a temporary file renamed over the old one): a crash leaves the old or the new. */
export async function writeSiteCopy(dir: string, version: number, xml: string): Promise<SiteCopy> {
  const copy: SiteCopy = { version, sha256: sha256(xml), xml };
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${SITE_COPY_FILE}.tmp-${process.pid}`);
  await writeFile(tmp, JSON.stringify(copy));
  await rename(tmp, join(dir, SITE_COPY_FILE));
  return copy;
}

/** The copy kept in `dir`, or undefined when there is none; a damaged copy throws naming its file. */
export async function readSiteCopy(dir: string): Promise<SiteCopy | undefined> {
  const file = join(dir, SITE_COPY_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let copy: Partial<SiteCopy>;
  try {
    copy = JSON.parse(text) as Partial<SiteCopy>;
  } catch {
    throw new Error(`${file}: not a site copy (not JSON); remove it and let the agent write it again`);
  }
  if (!Number.isSafeInteger(copy.version) || copy.version! < 1 || typeof copy.xml !== 'string')
    throw new Error(`${file}: not a site copy (needs a version number and the site's XML)`);
  if (copy.sha256 !== sha256(copy.xml))
    throw new Error(`${file}: the XML does not match its SHA-256 (damaged copy of version ${copy.version})`);
  return copy as SiteCopy;
}

/** One host's copy, as a recovery collects them. */
export interface HostCopy {
  host: string;
  copy: SiteCopy;
}

export class CopiesDisagreeError extends Error {
  constructor(
    readonly version: number,
    readonly byHash: Map<string, string[]>,
  ) {
    const groups = [...byHash.entries()].map(([h, hosts]) => `${hosts.sort().join(', ')} (sha256 ${h.slice(0, 12)})`);
    super(
      `the hosts' copies of version ${version}, the newest any host has, are different files: ` +
        `${groups.join(' vs ')}; nothing was recovered. Find which host's copy is right, remove the others' ` +
        `copies (${SITE_COPY_FILE} in each agent's cache directory) and run recover again`,
    );
    this.name = 'CopiesDisagreeError';
  }
}

/**
 * The copy a recovery rebuilds from: the newest version any host has, with the hosts that hold it. Refuses
 * (CopiesDisagreeError, naming the hosts and the version) when copies of that version are different files;
 * undefined when no host has a copy.
 */
export function newestCopy(copies: HostCopy[]): { copy: SiteCopy; hosts: string[]; older: HostCopy[] } | undefined {
  if (!copies.length) return undefined;
  const newest = Math.max(...copies.map((c) => c.copy.version));
  const top = copies.filter((c) => c.copy.version === newest);
  const byHash = new Map<string, string[]>();
  for (const c of top) byHash.set(c.copy.sha256, [...(byHash.get(c.copy.sha256) ?? []), c.host]);
  if (byHash.size > 1) throw new CopiesDisagreeError(newest, byHash);
  return {
    copy: top[0]!.copy,
    hosts: top.map((c) => c.host).sort(),
    older: copies.filter((c) => c.copy.version !== newest),
  };
}
