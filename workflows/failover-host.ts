// Failover of one failed host, as a durable job on the control queue:
//   confirm-down -> fence -> mark-fenced -> restart-elsewhere -> apply
// The order is the safety argument: a VM is restarted elsewhere only after its host was powered off and
// its power driver confirmed "off" (or, without a working power driver, after its self-fence lease surely
// expired), and the host's fencing epoch is raised before either, so a host that comes back refuses the jobs
// it had queued. A VM whose host might still be running it is never started twice
// (two writers on one disk image destroy it), so a failed fence restarts nothing and says what to do.

import type { PowerControl } from '../src/drivers/power/power.ts';
import { evacuate } from '../src/failover/placement.ts';
import { lastSignOfLife, type FailoverJobData } from '../src/services/health-check.ts';
import { enqueueApply } from '../src/services/site-service.ts';
import { submitSite } from '../src/services/site-service.ts';
import { SYSTEM } from '../src/state/audit-store.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';
import { PermanentError } from '../src/lib/errors.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Step, StepRuntime } from '../src/lib/steps.ts';
import type { HostSpec } from '../src/site/model.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { StaleVersionError } from '../src/state/site-store.ts';

export interface FailoverContext {
  rt: XsmRuntime;
  data: FailoverJobData;
  /** The power control of a host, built from its <Power> element (or the simulator's, in tests and demos). */
  power: (host: HostSpec) => Promise<PowerControl>;
  /** True on the job's last attempt: a fence that fails now fails for good. */
  lastAttempt: boolean;
}

/** Thrown by confirm-down when the host came back: the job ends with nothing done. */
export class HostRecovered extends Error {
  constructor(host: string) {
    super(`${host} reported again before it was fenced; nothing was done`);
    this.name = 'HostRecovered';
  }
}

const incidentTag = (d: FailoverJobData) => `failover of ${d.host} (incident ${d.incident})`;
const incidentVersion = (ctx: FailoverContext) => ctx.rt.failover.incidentVersion(ctx.data.host, ctx.data.incident);
const setIncidentVersion = (ctx: FailoverContext, version: number) =>
  ctx.rt.failover.setIncidentVersion(ctx.data.host, ctx.data.incident, version);

async function hostSpec(ctx: FailoverContext): Promise<HostSpec> {
  const v = await ctx.rt.sites.currentVersion();
  const host = v ? (await ctx.rt.sites.load(v)).site.hosts.find((h) => h.name === ctx.data.host) : undefined;
  if (!host) throw new PermanentError(`host ${ctx.data.host} is no longer in the site file; nothing to fail over`);
  return host;
}

/** After a lease expired on Redis' clock, how long failover still waits before it trusts it. */
export const LEASE_MARGIN_MS = 1000;

/**
 * The second fencing method: the host's agent keeps a lease and stops its own domains when it cannot renew
 * it, well before the lease expires here (docs/operations.md gives the timing). True once the lease has
 * expired and stayed expired for LEASE_MARGIN_MS; false when the host never kept a lease.
 */
async function leaseExpired(ctx: FailoverContext, host: string, srt: StepRuntime): Promise<boolean> {
  for (;;) {
    const lease = await ctx.rt.fence.lease(host);
    if (!lease) return false;
    if (lease.remainingMs === 0) {
      await sleep(LEASE_MARGIN_MS);
      if ((await ctx.rt.fence.lease(host))?.remainingMs === 0) return true;
      continue;
    }
    await srt.report({ message: `power fence failed; waiting ${lease.remainingMs} ms for ${host}'s lease to expire` });
    await sleep(lease.remainingMs);
  }
}

export const failoverSteps: readonly Step<FailoverContext>[] = [
  {
    name: 'confirm-down',
    run: async (ctx) => {
      const host = await hostSpec(ctx);
      const o = await ctx.rt.observed.host(host.name);
      if (o?.fencedAt) return; // fenced by an earlier attempt of this job
      if ((await lastSignOfLife(ctx.rt, host, o?.heartbeatAt ?? 0)) > ctx.data.incident) {
        await ctx.rt.failover.clearHealth(host.name);
        throw new HostRecovered(host.name);
      }
    },
  },
  {
    name: 'fence',
    run: async (ctx, srt) => {
      const host = await hostSpec(ctx);
      // The epoch first: from here on the host's agent and every job issued to it before are stale, so
      // whatever the power driver does, nothing the host had queued runs once it comes back.
      const epoch = await ctx.rt.fence.fence(host.name, ctx.data.incident);
      await srt.report({ message: `${host.name} fenced at epoch ${epoch}` });
      let power: PowerControl | undefined;
      try {
        power = await ctx.power(host);
        await srt.report({ message: `powering ${host.name} off through ${power.describe}` });
        if ((await power.status()) !== 'off') await power.off();
        const state = await power.status();
        if (state !== 'off') throw new Error(`${power.describe} reports the host ${state} after power off`);
        ctx.rt.events.count('xsm_fences_total', { outcome: 'off' });
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        if (await leaseExpired(ctx, host.name, srt)) {
          ctx.rt.events.count('xsm_fences_total', { outcome: 'lease' });
          srt.log.warn('host fenced by its lease', { host: host.name, power: power?.describe, error: why });
          return;
        }
        ctx.rt.events.count('xsm_fences_total', { outcome: 'failed' });
        const msg = `fencing ${host.name} failed (${power?.describe ?? 'no power driver'}: ${why}); none of its VMs was restarted elsewhere, because they may still be running`;
        const hint = `power ${host.name} off by other means and confirm it, or fix its <Power> element, then retry this job (xsm job retry control <id>)`;
        await ctx.rt.failover.setHealth(host.name, {
          state: 'fence-failed',
          incident: ctx.data.incident,
          since: Date.now(),
          detail: `${msg}. ${hint}`,
        });
        srt.log.error('fence failed', { host: host.name, error: why, final: ctx.lastAttempt });
        throw ctx.lastAttempt ? new PermanentError(msg, hint) : new Error(msg);
      }
      srt.log.warn('host fenced', { host: host.name, power: power.describe });
    },
  },
  {
    name: 'mark-fenced',
    run: async (ctx) => {
      const o = await ctx.rt.observed.host(ctx.data.host);
      if (!o?.fencedAt) await ctx.rt.observed.markFenced(ctx.data.host);
      await ctx.rt.failover.setHealth(ctx.data.host, {
        state: 'fenced',
        incident: ctx.data.incident,
        since: Date.now(),
        detail: 'powered off and confirmed off; its VMs are restarted on hosts with room',
      });
    },
  },
  {
    name: 'restart-elsewhere',
    run: async (ctx, srt) => {
      // Written before by an attempt that died after submitting: the version is on record.
      if ((await incidentVersion(ctx)) !== undefined) return;
      const tag = incidentTag(ctx.data);
      const earlier = (await ctx.rt.sites.history(20)).find((m) => m.reason.startsWith(tag));
      if (earlier) {
        await setIncidentVersion(ctx, earlier.version);
        return;
      }
      const base = await ctx.rt.sites.currentVersion();
      const { site } = await ctx.rt.sites.load(base);
      const observed = await ctx.rt.observed.all();
      const health = await ctx.rt.failover.allHealth();
      // Suspected, fencing or fenced hosts take no VMs; a fenced host's report also says it is down.
      const unavailable = new Set(Object.keys(health).filter((h) => h !== ctx.data.host));
      for (const o of Object.values(observed.hosts)) if (o.fencedAt) unavailable.add(o.name);
      const ev = evacuate(site, ctx.data.host, { unavailable, observed });
      const parts = [`${ev.restarted.length} VM${ev.restarted.length === 1 ? '' : 's'} restarted elsewhere`];
      if (ev.stranded.length)
        parts.push(`${ev.stranded.length} left down (${ev.stranded.map((s) => `${s.vm}: ${s.why}`).join('; ')})`);
      const reason = `${tag}: fenced; ${parts.join(', ')}`;
      try {
        // Restarting the fenced host's VMs elsewhere is consented by the failover policy (and the
        // version's reason says so); anything else in the plan that would stop a VM is refused.
        const r = await submitSite(ctx.rt, {
          xml: serializeSite(ev.site),
          file: `failover of ${ctx.data.host}`,
          base,
          author: SYSTEM.failover.name,
          reason,
          consent: 'failover-policy',
          apply: false,
        });
        await setIncidentVersion(ctx, r.version);
        if (!r.unchanged)
          for (const x of ev.restarted)
            await ctx.rt.migrations.record({
              vm: x.vm,
              version: r.version,
              from: ctx.data.host,
              to: x.to,
              mode: 'restart',
              source: 'failover',
              reason: `${ctx.data.host} failed and was fenced; restarted on ${x.to} (priority ${x.priority})`,
            });
        await ctx.rt.audit.append({
          user: SYSTEM.failover.name,
          role: SYSTEM.failover.role,
          from: 'internal',
          kind: 'failover',
          what: `fence ${ctx.data.host} and restart its VMs elsewhere`,
          outcome: 'ok',
          ...(r.unchanged ? {} : { version: r.version }),
          consent: true,
          reason,
        });
        await srt.report({ message: `version ${r.version}: ${r.unchanged ? 'nothing to change' : parts.join(', ')}` });
      } catch (e) {
        // An operator or the rebalancer wrote a version meanwhile: place again on the new one.
        if (e instanceof StaleVersionError) throw new Error(`${e.message} (failover places again on the next attempt)`);
        throw e;
      }
    },
  },
  {
    name: 'apply',
    run: async (ctx) => {
      const version = (await incidentVersion(ctx)) ?? 0;
      if (!version) throw new Error(`no failover version recorded for ${ctx.data.host}`);
      await enqueueApply(ctx.rt, version, 'failover');
    },
  },
];
