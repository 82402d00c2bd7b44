// Remove a VM: check the plan still holds (it runs here, at the size planned) -> shut it down (destroy
// after a timeout) -> verify it is gone -> delete its pooled disks only when the request asked (else they stay, and
// the plan said where).

import type { Step } from '../src/lib/steps.ts';
import { checkPlanStep } from './check-plan.ts';
import { storageOf, type VmWorkflowContext } from './steps-common.ts';

export const removeSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
  {
    name: 'shutdown',
    run: async (ctx, rt) => {
      const name = ctx.data.action.vm;
      const d = await ctx.hv.find(name);
      if (!d) {
        rt.log.info('domain already gone', { vm: name });
        return;
      }
      // This instance only (see reconfigure-vm.ts, stop-old): a late run never stops a domain started since.
      await ctx.hv.shutdown(name, 60000, d.domid);
    },
  },
  {
    name: 'verify-gone',
    run: async (ctx, rt) => {
      const name = ctx.data.action.vm;
      let d = await ctx.hv.find(name);
      if (d) {
        // Still there after a shutdown that returned: it crashed on the way down and on_crash restarted
        // it (seen on real Xen), or it came back otherwise. The removal was asked for: pull the plug.
        rt.log.warn('domain still there after shutdown; destroying it', { vm: name, state: d.state });
        await ctx.hv.destroy(name);
        d = await ctx.hv.find(name);
      }
      if (d) throw new Error(`${ctx.hv.hostName}: domain ${name} is still ${d.state} after shutdown and xl destroy`);
    },
  },
  {
    name: 'delete-disks',
    // Disks kept (or none in a pool): the step only logs, and is not written.
    pure: (ctx) => {
      const a = ctx.data.action;
      return a.kind !== 'remove' || !a.disks?.length || !a.deleteDisks;
    },
    run: async (ctx, rt) => {
      const a = ctx.data.action;
      if (a.kind !== 'remove' || !a.disks?.length) return;
      if (!a.deleteDisks) {
        for (const d of a.disks) rt.log.info('disk kept', { vm: a.vm, disk: d.path });
        return;
      }
      const storage = storageOf(ctx);
      for (const d of a.disks) {
        await storage.remove(d);
        await rt.report({ message: `deleted ${d.path}` });
      }
    },
  },
];
