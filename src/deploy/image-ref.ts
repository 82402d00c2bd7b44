// `NAME[:VERSION]`: how an operator names a Dom0 image (`xsm hosts upgrade --image dom0:3`). The same shape
// as the image catalogue's references (issue 17 part 4): a name of letters, digits, ".", "_" and "-", and an
// optional decimal version; no version means the newest. Version 0 is an unversioned manifest
// (`<name>.json` at the top of the images directory), which is all the deploy path knows today.

import { PermanentError } from '../lib/errors.ts';

export interface ImageRef {
  name: string;
  /** Absent: the newest version. */
  version?: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Parses `NAME[:VERSION]`; `where` names where the text came from (`--image`, `body.image`). */
export function parseImageRef(text: string, where: string): ImageRef {
  const m = /^([^:]+)(?::(\d{1,9}))?$/.exec(text);
  if (!m || !NAME.test(m[1]!) || m[1]!.endsWith('.json') || m[1]!.endsWith('.img'))
    throw new PermanentError(
      `${where}: "${text}" is not an image reference`,
      'give NAME or NAME:VERSION, e.g. dom0 or dom0:3 (a name is letters, digits, ".", "_" and "-")',
    );
  return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, version: Number(m[2]) };
}

/** `dom0` or `dom0:3`: what plans print and what the deploy record keeps as the installed image. */
export function formatImageRef(ref: ImageRef): string {
  return ref.version === undefined ? ref.name : `${ref.name}:${ref.version}`;
}

/**
 * Does the image recorded as installed (`dom0`, `dom0:3`) satisfy `ref`? A reference without a version is
 * met by any version of that name (the catalogue resolves "newest" before the update, and records it).
 */
export function installedMatches(installed: string | undefined, ref: ImageRef): boolean {
  if (installed === undefined) return false;
  const name = installed.split(':')[0];
  if (name !== ref.name) return false;
  if (ref.version === undefined) return true;
  const version = installed.includes(':') ? Number(installed.split(':')[1]) : 0;
  return version === ref.version;
}
