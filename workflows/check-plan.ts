// The first step of every VM workflow: does the world still look as the plan assumed when it was made?
// Each action carries its preconditions (src/site/preconditions.ts). This host is asked directly (`xl`);
// other hosts through what their agents last reported. If one no longer holds, the action fails for good
// as stale, and the actions that depend on it do not run: a plan is never silently replaced. Its end is
// journaled with the next step's start, so a job resumed after a crash (when it may itself have changed
// things) does not check again.

import { heldSize, type DomainInfo } from '../src/drivers/hypervisor/hypervisor.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Precondition } from '../src/site/actions.ts';
import type { Step } from '../src/lib/steps.ts';
import type { VmWorkflowContext } from './steps-common.ts';

export const REPLAN_HINT = 're-plan with `xsm site plan FILE` and apply again';

/** The error a stale action fails with: what changed, and what to do. */
export function staleError(changes: readonly string[]): PermanentError {
  return new PermanentError(`plan is stale: ${changes.join('; ')}; ${REPLAN_HINT}`);
}

async function domainOn(ctx: VmWorkflowContext, host: string, vm: string): Promise<DomainInfo | undefined | null> {
  if (host === ctx.hv.hostName) return ctx.hv.find(vm);
  if (!ctx.observed) return null; // unknown: not checked
  return (await ctx.observed.host(host))?.domains.find((d) => d.name === vm);
}

/** Other hosts whose agents report `vm` (this host is asked directly instead). */
async function whereElse(ctx: VmWorkflowContext, vm: string, except: string): Promise<string[]> {
  if (!ctx.observed) return [];
  return (await ctx.observed.whereIs(vm)).filter((h) => h !== except && h !== ctx.hv.hostName);
}

async function room(ctx: VmWorkflowContext, host: string): Promise<{ freeMemMiB: number; nrCpus: number } | null> {
  if (host === ctx.hv.hostName) return ctx.hv.info();
  return (await ctx.observed?.host(host)) ?? null;
}

/** What no longer holds of `p`, or undefined when it holds (or cannot be known from here). */
export async function checkPrecondition(ctx: VmWorkflowContext, p: Precondition): Promise<string | undefined> {
  const vm = ctx.data.action.vm;
  switch (p.kind) {
    case 'vm-nowhere': {
      if (await ctx.hv.find(p.vm)) return `${p.vm} already runs on ${ctx.hv.hostName}`;
      const elsewhere = await whereElse(ctx, p.vm, ctx.hv.hostName);
      return elsewhere.length ? `${p.vm} runs on ${elsewhere.join(', ')} (as observed)` : undefined;
    }
    case 'vm-absent':
      return (await domainOn(ctx, p.host, p.vm)) ? `${p.vm} already runs on ${p.host}` : undefined;
    case 'vm-runs': {
      const d = await domainOn(ctx, p.host, p.vm);
      if (d === null) return undefined;
      if (!d) {
        const elsewhere = await whereElse(ctx, p.vm, p.host);
        return `${p.vm} is not on ${p.host}${elsewhere.length ? `; it runs on ${elsewhere.join(', ')}` : ''}`;
      }
      const held = heldSize(d);
      if (held.memMiB !== p.memMiB || held.vcpus !== p.vcpus)
        return `${p.vm} on ${p.host} has ${held.memMiB} MiB, ${held.vcpus} vCPUs; the plan assumed ${p.memMiB} MiB, ${p.vcpus} vCPUs`;
      return undefined;
    }
    case 'room': {
      const r = await room(ctx, p.host);
      if (!r) return undefined;
      if (r.nrCpus < p.vcpus) return `${vm} needs ${p.vcpus} vCPUs but ${p.host} has ${r.nrCpus} CPUs`;
      if (r.freeMemMiB < p.memMiB) return `${p.host} has ${r.freeMemMiB} MiB free but ${vm} needs ${p.memMiB} MiB`;
      return undefined;
    }
    case 'config-file': {
      const files =
        p.host === ctx.hv.hostName
          ? (await ctx.hv.configFiles()).files
          : (await ctx.observed?.host(p.host))?.configFiles;
      if (!files) return undefined;
      const f = files.find((x) => x.name === p.file);
      if (!f) return `config file ${p.file} is no longer on ${p.host}`;
      return f.sha256 === p.sha256 ? undefined : `config file ${p.file} on ${p.host} changed since the plan was made`;
    }
  }
}

export const checkPlanStep: Step<VmWorkflowContext> = {
  name: 'check-plan',
  // It only reads (the hosts' state, their agents' reports): its start is not written, and its end goes
  // with the start of the next step, before that step acts (src/lib/steps.ts).
  pure: true,
  run: async (ctx) => {
    const changes: string[] = [];
    // Jobs enqueued before plans carried preconditions have none: nothing to check.
    for (const p of ctx.data.action.preconditions ?? []) {
      const change = await checkPrecondition(ctx, p);
      if (change) changes.push(change);
    }
    if (changes.length) throw staleError(changes);
  },
};
