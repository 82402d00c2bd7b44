// Deploy requests: machines named by boot MAC are looked up in the site inventory, and each becomes one
// job on the deploy queue. Machines asked for together form a session (their multicast round or chain).
// An unknown MAC refuses the whole request before anything is enqueued.

import { randomBytes } from 'node:crypto';
import type { XsmRuntime } from '../runtime/runtime.ts';
import { DEPLOY_QUEUE, type DeployJobData } from '../runtime/queues.ts';
import { normalizeMac } from '../deploy/dnsmasq.ts';
import { readManifest } from '../deploy/image.ts';
import { TRANSFER_METHODS, type TransferMethod } from '../deploy/transfer.ts';

export class DeployRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployRequestError';
  }
}

export interface DeployRequest {
  macs: string[];
  method?: TransferMethod;
  image: string;
  /** Disk per MAC (default /dev/sda). */
  disks?: Record<string, string>;
  defaultDisk?: string;
  /**
   * The session's id (default: a fresh one). Job ids are `deploy-HOST-SESSION`, so a caller that asks again
   * with the same session after a crash (a rolling upgrade resuming) finds its job instead of adding one.
   */
  session?: string;
}

export async function enqueueDeploy(
  rt: XsmRuntime,
  imagesDir: string,
  req: DeployRequest,
): Promise<{ session: string; jobs: { host: string; mac: string; jobId: string }[] }> {
  const method = req.method ?? 'unicast';
  if (!TRANSFER_METHODS.includes(method))
    throw new DeployRequestError(`method "${method}" is not one of ${TRANSFER_METHODS.join(', ')}`);
  if (!req.macs.length) throw new DeployRequestError('give at least one boot MAC');
  const version = await rt.sites.currentVersion();
  if (!version)
    throw new DeployRequestError('no site file yet: declare the hosts (<Host name address mac>) and submit it first');
  const { site } = await rt.sites.load(version);
  const macs = req.macs.map((m) => {
    try {
      return normalizeMac(m, 'MAC');
    } catch (e) {
      throw new DeployRequestError((e as Error).message);
    }
  });
  const hosts = macs.map((mac) => {
    const h = site.hosts.find((x) => x.bootMac === mac);
    if (!h)
      throw new DeployRequestError(
        `no host with boot MAC ${mac} in site version ${version}; add <Host name=".." address=".." mac="${mac}"> to the site file first`,
      );
    return h;
  });
  const dup = macs.find((m, i) => macs.indexOf(m) !== i);
  if (dup) throw new DeployRequestError(`MAC ${dup} is given twice`);
  const image = await readManifest(imagesDir, req.image).catch((e: Error) => {
    throw new DeployRequestError(e.message);
  });
  const layouts = new Map((site.layouts ?? []).map((l) => [l.name, l]));
  const disks = hosts.map((h, i) => {
    const asked = req.disks?.[macs[i]!] ?? req.defaultDisk;
    const mirror = h.layout ? layouts.get(h.layout)?.raid1 : undefined;
    if (mirror && asked && asked !== mirror[0])
      throw new DeployRequestError(
        `host ${h.name}: its layout ${h.layout} mirrors ${mirror.join(' and ')}; the request names disk ${asked}: leave the disk out or give ${mirror[0]}`,
      );
    return mirror?.[0] ?? asked ?? '/dev/sda';
  });
  const session = req.session ?? `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const jobs = hosts.map((h, i) => {
    const layout = h.layout ? layouts.get(h.layout) : undefined;
    const data: DeployJobData = {
      host: h.name,
      mac: macs[i]!,
      address: h.address,
      disk: disks[i]!,
      image,
      method,
      session,
      sessionSize: hosts.length,
      ...(h.memoryMiB ? { expectMemMiB: h.memoryMiB } : {}),
      ...(layout
        ? {
            layout: {
              name: layout.name,
              swapMiB: layout.swapMiB,
              ...(layout.rootMiB !== undefined ? { rootMiB: layout.rootMiB } : {}),
              ...(layout.volumeGroup ? { volumeGroup: layout.volumeGroup } : {}),
              ...(layout.raid1 ? { raid1: layout.raid1 } : {}),
            },
          }
        : {}),
    };
    return {
      name: 'deploy-host',
      data,
      opts: {
        jobId: `deploy-${h.name}-${session}`,
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { count: 500 },
      },
    };
  });
  await rt.queue(DEPLOY_QUEUE).addBulk(jobs);
  return { session, jobs: jobs.map((j) => ({ host: j.data.host, mac: j.data.mac, jobId: j.opts.jobId })) };
}
