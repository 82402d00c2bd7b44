// Remove a VM: shut it down (destroy after a timeout) -> verify it is gone.

import type { Step } from '../src/lib/steps.ts';
import type { VmWorkflowContext } from './steps-common.ts';

export const removeSteps: Step<VmWorkflowContext>[] = [
  {
    name: 'shutdown',
    run: async (ctx, rt) => {
      const name = ctx.data.action.vm;
      if (!(await ctx.hv.find(name))) {
        rt.log.info('domain already gone', { vm: name });
        return;
      }
      await ctx.hv.shutdown(name, 60000);
    },
  },
  {
    name: 'verify-gone',
    run: async (ctx) => {
      const name = ctx.data.action.vm;
      const d = await ctx.hv.find(name);
      if (d) throw new Error(`${ctx.hv.hostName}: domain ${name} is still ${d.state} after shutdown`);
    },
  },
];
