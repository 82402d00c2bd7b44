// `NAME[:VERSION]`: how an operator names a Dom0 image (`xsm hosts upgrade --image dom0:3`). The same shape
// as the image catalogue's references (issue 17 part 4): a name of letters, digits, ".", "_" and "-", and an
// optional decimal version; no version means the newest (a rolling upgrade pins it when it plans). Version 0
// is an unversioned manifest (`<name>.json` at the top of the images directory).

import { parseImageRef, type ImageRef } from './image-catalogue.ts';

// One parser for every place an image is named: the catalogue's.
export { parseImageRef, type ImageRef };

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
