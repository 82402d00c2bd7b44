// Reconfigure a VM. Live: xl mem-set -> xl vcpu-set -> verify (within maxmem/maxvcpus).
// Restart (beyond what the running domain allows, or a template change): stop -> create anew -> verify.

import { PermanentError } from '../src/lib/errors.ts';
import type { Step } from '../src/lib/steps.ts';
import { domainConfigFor } from './create-vm.ts';
import { heldSize } from '../src/drivers/hypervisor/hypervisor.ts';
import { verifyMatches, waitRunning, type VmWorkflowContext } from './steps-common.ts';

function action(ctx: VmWorkflowContext) {
  const a = ctx.data.action;
  if (a.kind !== 'reconfigure') throw new PermanentError(`expected a reconfigure action, got ${a.kind}`);
  return a;
}

export const reconfigureLiveSteps: Step<VmWorkflowContext>[] = [
  {
    name: 'set-memory',
    run: async (ctx) => {
      const a = action(ctx);
      const d = await ctx.hv.find(a.vm);
      if (!d)
        throw new PermanentError(
          `${ctx.hv.hostName}: ${a.vm} is not running here; nothing to reconfigure`,
          'run `xsm status` and re-apply the site file',
        );
      if (heldSize(d).memMiB !== a.spec.memMiB) await ctx.hv.setMemory(a.vm, a.spec.memMiB);
    },
  },
  {
    name: 'set-vcpus',
    run: async (ctx) => {
      const a = action(ctx);
      const d = await ctx.hv.find(a.vm);
      if (d && heldSize(d).vcpus !== a.spec.vcpus) await ctx.hv.setVcpus(a.vm, a.spec.vcpus);
    },
  },
  {
    name: 'verify',
    run: async (ctx) => {
      const a = action(ctx);
      verifyMatches(ctx.hv.hostName, await ctx.hv.find(a.vm), a.vm, a.spec.memMiB, a.spec.vcpus);
    },
  },
];

export const reconfigureRestartSteps: Step<VmWorkflowContext>[] = [
  {
    name: 'stop-old',
    // Journalled: once done it never runs again, so the domain create-new makes is never stopped by mistake.
    run: async (ctx) => {
      const a = action(ctx);
      if (await ctx.hv.find(a.vm)) await ctx.hv.shutdown(a.vm, 60000);
    },
  },
  {
    name: 'create-new',
    run: async (ctx) => {
      const cfg = domainConfigFor(ctx);
      if (!(await ctx.hv.find(cfg.name))) await ctx.hv.create(cfg);
    },
  },
  {
    name: 'wait-running',
    run: async (ctx) => {
      await waitRunning(ctx.hv, action(ctx).vm, ctx.waitMs ?? 60000);
    },
  },
  {
    name: 'verify',
    run: async (ctx) => {
      const a = action(ctx);
      verifyMatches(ctx.hv.hostName, await ctx.hv.find(a.vm), a.vm, a.spec.memMiB, a.spec.vcpus);
    },
  },
];
