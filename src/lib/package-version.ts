// The package's own version, from the sources (src/lib -> package.json two levels up) and from the compiled
// build (dist/src/lib -> three levels up). The name is checked so another package.json is never taken.
import { readFileSync } from 'node:fs';

export const PACKAGE_NAME = 'xen-site-manager';

export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version: string };
      if (pkg.name === PACKAGE_NAME) return pkg.version;
    } catch {
      // not there: try the next level
    }
  }
  return 'unknown';
}
