// Which way a rolling upgrade updates hosts, chosen once per site by XSM_UPGRADE_METHOD, the same on every
// API process (whose plans say it) and every control worker (which does it):
//   in-place (default)  `xsm host update`'s job: rsync the image version over the running Dom0, keeping its
//                       identity, disks and VM storage; needs the host installed by XSM and a catalogued image
//   redeploy            the deploy job: PXE, partition, write the image; the host's local state is lost
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { HostImageUpdater } from './host-image-updater.ts';
import { InPlaceImageUpdater } from './in-place-updater.ts';
import { RedeployImageUpdater } from './redeploy-updater.ts';

export const UPGRADE_METHODS = ['in-place', 'redeploy'] as const;
export type UpgradeMethod = (typeof UPGRADE_METHODS)[number];

export function upgradeMethodFromEnv(env: NodeJS.ProcessEnv = process.env): UpgradeMethod {
  const m = env.XSM_UPGRADE_METHOD ?? 'in-place';
  if (!(UPGRADE_METHODS as readonly string[]).includes(m))
    throw new Error(`XSM_UPGRADE_METHOD=${m}: expected ${UPGRADE_METHODS.join(' or ')}`);
  return m as UpgradeMethod;
}

export function imageUpdaterFor(rt: XsmRuntime, method: UpgradeMethod, imagesDir?: string): HostImageUpdater {
  const dir = imagesDir ?? process.env.XSM_IMAGES_DIR ?? '/var/lib/xsm/images';
  return method === 'redeploy'
    ? new RedeployImageUpdater(rt, { imagesDir: dir })
    : new InPlaceImageUpdater(rt, { imagesDir: dir });
}
