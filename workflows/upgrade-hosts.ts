// A rolling Dom0 upgrade as one durable job on the control queue, ONE host at a time:
//   HOST:drain -> HOST:update -> HOST:verify-xen -> HOST:rejoin -> HOST:return, then the next host.
// The steps of every host are one list, so the journal says exactly where a control worker died and the
// job resumes there: finished hosts are not drained, updated or returned again. Each step looks at the world
// first (the site version's maintenance flag, the image the deploy record says is installed, the agent's
// report), and what it did is kept in the job's data (`progress`), so a resumed step finds it.
// The first failure stops the job: the host it failed on stays in maintenance with its VMs elsewhere (the
// site still serving), and the hosts after it are not touched.

import { formatImageRef, installedMatches } from '../src/deploy/image-ref.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Logger } from '../src/lib/log.ts';
import type { Step } from '../src/lib/steps.ts';
import type { UpgradeHostProgress, UpgradeJobData } from '../src/runtime/queues.ts';
import type { ServiceRuntime } from '../src/runtime/service-runtime.ts';
import { drainHost, undrainHost, type HostChangeOutcome } from '../src/services/drain-service.ts';
import type { HostImageUpdater } from '../src/services/host-image-updater.ts';
import { currentSite, NoSiteError } from '../src/services/site-service.ts';
import { StaleVersionError } from '../src/state/site-store.ts';
import type { HostSpec } from '../src/site/model.ts';

export const UPGRADE_HOST_STEPS = ['drain', 'update', 'verify-xen', 'rejoin', 'return'] as const;
export type UpgradeHostStep = (typeof UPGRADE_HOST_STEPS)[number];

export interface UpgradeContext {
  rt: ServiceRuntime;
  updater: HostImageUpdater;
  data: UpgradeJobData;
  /** Persists `data.progress` (the job's data) before a step reports done. */
  save(): Promise<void>;
  log: Logger;
  pollMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function progressOf(c: UpgradeContext, host: string): UpgradeHostProgress {
  return (c.data.progress[host] ??= {});
}

async function hostSpec(c: UpgradeContext, host: string): Promise<{ version: number; spec: HostSpec }> {
  const { version, site } = await currentSite(c.rt);
  if (!site) throw new NoSiteError();
  const spec = site.hosts.find((h) => h.name === host);
  if (!spec)
    throw new PermanentError(
      `${host} is no longer in the site file (version ${version})`,
      'put it back, or run the upgrade again without it (--hosts)',
    );
  return { version, spec };
}

/**
 * Waits until the apply of `version` ended and it converged. A newer version stored meanwhile (someone
 * else's change) supersedes it: then the newest version's apply must converge instead.
 */
async function waitConverged(c: UpgradeContext, host: string, what: string, version: number): Promise<number> {
  const until = Date.now() + c.data.timeouts.applyMs;
  let v = version;
  for (;;) {
    const st = await c.rt.applies.status(v);
    if (st?.state === 'converged') return v;
    if (st?.state === 'partially-failed')
      throw new PermanentError(
        `${host}: the ${what} (site version ${v}) did not finish: ${st.summary ?? 'some actions failed'}`,
        `see xsm status and xsm jobs; fix it, then run the upgrade again`,
      );
    if (st?.state === 'superseded') v = Math.max(v + 1, await c.rt.sites.currentVersion());
    if (Date.now() > until)
      throw new PermanentError(
        `${host}: the ${what} (site version ${v}) did not finish within ${Math.round(c.data.timeouts.applyMs / 1000)} s`,
        'is a control worker running? see xsm jobs',
      );
    await sleep(c.pollMs ?? 100);
  }
}

/** Runs a drain or undrain, trying again when another change was stored between its read and its write. */
async function hostChange(fn: () => Promise<HostChangeOutcome>): Promise<HostChangeOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof StaleVersionError) || attempt >= 5) throw e;
    }
  }
}

function refusal(host: string, what: string, e: unknown): PermanentError {
  const msg = e instanceof Error ? e.message : String(e);
  const consent = e instanceof Error && e.name === 'ConsentRequiredError';
  return new PermanentError(
    `${host}: the ${what} was refused: ${msg}`,
    consent
      ? 'it moves VMs cold (they stop): run the upgrade again with --yes'
      : 'see the pre-check: xsm host drain --dry-run',
  );
}

async function drain(c: UpgradeContext, host: string): Promise<void> {
  const p = progressOf(c, host);
  const { version, spec } = await hostSpec(c, host);
  if (p.drainVersion === undefined) {
    const installed = (await c.rt.deploys.deployed(host))?.image;
    if (!spec.maintenance && installedMatches(installed, c.data.image)) {
      p.skipped = `already on ${installed}`;
      await c.save();
      return;
    }
    if (spec.maintenance) p.drainVersion = version;
    else {
      const o = await hostChange(() =>
        drainHost(c.rt, {
          host,
          author: c.data.author,
          consent: c.data.consent,
          reason: `rolling upgrade ${c.data.id} to ${formatImageRef(c.data.image)}`,
        }),
      ).catch((e: unknown) => {
        throw refusal(host, 'drain', e);
      });
      p.drainVersion = o.result!.version;
    }
    await c.save();
  }
  p.drainVersion = await waitConverged(c, host, 'drain', p.drainVersion);
  await c.save();
  // The apply converged: the agent's next report shows the host empty of the site's VMs.
  const { site } = await currentSite(c.rt);
  const managed = new Set(site!.vms.map((v) => v.name));
  const until = Date.now() + c.data.timeouts.applyMs;
  for (;;) {
    const left = ((await c.rt.observed.host(host))?.domains ?? []).filter((d) => managed.has(d.name));
    if (!left.length) return;
    if (Date.now() > until)
      throw new PermanentError(
        `${host}: still runs ${left.map((d) => d.name).join(', ')} after its drain`,
        'move them off (xsm vm migrate) and run the upgrade again',
      );
    await sleep(c.pollMs ?? 100);
  }
}

async function update(c: UpgradeContext, host: string): Promise<void> {
  const p = progressOf(c, host);
  if (p.skipped) return;
  const { spec } = await hostSpec(c, host);
  if (!spec.maintenance)
    throw new PermanentError(
      `${host} was taken out of maintenance during its upgrade; it is not updated while it may run VMs`,
      'run the upgrade again: it drains the host first',
    );
  if (c.data.method !== undefined && c.data.method !== c.updater.method)
    throw new PermanentError(
      `${host}: the upgrade was planned to update hosts ${c.data.method}, and this control worker updates them ` +
        `${c.updater.method}; nothing was updated`,
      'set XSM_UPGRADE_METHOD the same on every API and control process, then run the upgrade again',
    );
  p.update = await c.updater.update(spec, c.data.image, { key: `${c.data.id}-${host}` });
  p.updatedAt = Date.now();
  await c.save();
}

/** Xen answers `xl info` again: the deploy's own check when the updater made it, and the agent's report after it. */
async function verifyXen(c: UpgradeContext, host: string): Promise<void> {
  const p = progressOf(c, host);
  if (p.skipped) return;
  const { spec } = await hostSpec(c, host);
  const since = p.updatedAt ?? 0;
  const until = Date.now() + c.data.timeouts.rejoinMs;
  for (;;) {
    const o = await c.rt.observed.host(host);
    if (o && o.heartbeatAt > since && !o.fencedAt && o.totalMemMiB > 0 && o.nrCpus > 0) {
      if (spec.memoryMiB && o.totalMemMiB < spec.memoryMiB)
        throw new PermanentError(
          `${host}: Xen reports ${o.totalMemMiB} MiB after the update, but the site file gives its guests ${spec.memoryMiB} MiB`,
          "check the host's memory and its Xen boot options (dom0_mem), then run the upgrade again",
        );
      const xen = p.update?.xen;
      p.verified = `${xen ? `Xen ${xen.version}, ` : ''}${o.totalMemMiB} MiB, ${o.nrCpus} CPUs (xl info by the agent)`;
      p.verifiedAt = o.heartbeatAt;
      await c.save();
      return;
    }
    if (Date.now() > until)
      throw new PermanentError(
        `${host}: no \`xl info\` report from its agent within ${Math.round(c.data.timeouts.rejoinMs / 1000)} s of the update`,
        'check that Xen booted (the console, or ssh and xl info) and that xsm-host-agent runs, then run the upgrade again',
      );
    await sleep(c.pollMs ?? 100);
  }
}

/** The agent is back for good: a heartbeat after the one that verified Xen, and failover does not hold the host. */
async function rejoin(c: UpgradeContext, host: string): Promise<void> {
  const p = progressOf(c, host);
  if (p.skipped) return;
  const since = p.verifiedAt ?? p.updatedAt ?? 0;
  const until = Date.now() + c.data.timeouts.rejoinMs;
  for (;;) {
    const o = await c.rt.observed.host(host);
    const health = (await c.rt.failover.allHealth())[host];
    if (health && health.state !== 'suspect')
      throw new PermanentError(
        `${host}: failover holds it (${health.state}: ${health.detail ?? ''})`,
        'see xsm host health; once it is healthy, run the upgrade again',
      );
    if (o && o.heartbeatAt > since && !o.fencedAt && !health) {
      p.rejoinedAt = o.heartbeatAt;
      await c.save();
      return;
    }
    if (Date.now() > until)
      throw new PermanentError(
        `${host}: its agent did not send a fresh heartbeat within ${Math.round(c.data.timeouts.rejoinMs / 1000)} s`,
        'check xsm-host-agent on the host (journalctl -u xsm-host-agent), then run the upgrade again',
      );
    await sleep(c.pollMs ?? 100);
  }
}

async function giveBack(c: UpgradeContext, host: string): Promise<void> {
  const p = progressOf(c, host);
  if (p.skipped) return;
  if (p.returnVersion === undefined) {
    const { version, spec } = await hostSpec(c, host);
    if (!spec.maintenance) p.returnVersion = version;
    else {
      const o = await hostChange(() =>
        undrainHost(c.rt, {
          host,
          author: c.data.author,
          consent: c.data.consent,
          returnVms: true,
          reason: `rolling upgrade ${c.data.id}: ${host} is on ${formatImageRef(c.data.image)}`,
        }),
      ).catch((e: unknown) => {
        throw refusal(host, 'return (undrain --return)', e);
      });
      p.returnVersion = o.result!.version;
      if (o.blockers.length) p.stayed = o.blockers;
    }
    await c.save();
  }
  p.returnVersion = await waitConverged(c, host, 'return', p.returnVersion);
  await c.save();
}

const RUN: Record<UpgradeHostStep, (c: UpgradeContext, host: string) => Promise<void>> = {
  drain,
  update,
  'verify-xen': verifyXen,
  rejoin,
  return: giveBack,
};

/** Every host's steps, in the upgrade's order: `HOST:STEP`. */
export function upgradeSteps(hosts: readonly string[]): Step<UpgradeContext>[] {
  return hosts.flatMap((host) =>
    UPGRADE_HOST_STEPS.map((step) => ({ name: `${host}:${step}`, run: (c: UpgradeContext) => RUN[step](c, host) })),
  );
}
