// Live-migrate a VM; runs on the source host's queue: check the plan still holds (here at the planned
// size, room on the target) -> check it is here -> xl migrate -> verify it left (and, where the target is
// reachable from here, that it runs there).

import { PermanentError } from '../src/lib/errors.ts';
import type { Step } from '../src/lib/steps.ts';
import { checkPlanStep } from './check-plan.ts';
import type { VmWorkflowContext } from './steps-common.ts';

function action(ctx: VmWorkflowContext) {
  const a = ctx.data.action;
  if (a.kind !== 'migrate' || a.mode !== 'live')
    throw new PermanentError(`expected a live migrate action, got ${a.kind} ${'mode' in a ? a.mode : ''}`);
  return a;
}

export const migrateSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
  {
    name: 'check-source',
    // Only reads (here, and the target where it can): its end goes with xl-migrate's start.
    pure: true,
    run: async (ctx) => {
      const a = action(ctx);
      if (await ctx.hv.find(a.vm)) return;
      const there = ctx.peer?.(a.to);
      if (there && (await there.find(a.vm))) return; // already moved by an earlier attempt
      throw new PermanentError(
        `${a.vm} is neither on ${a.from} nor on ${a.to}`,
        'run `xsm status` to see where it runs, then re-apply the site file',
      );
    },
  },
  {
    name: 'xl-migrate',
    run: async (ctx) => {
      const a = action(ctx);
      if (!(await ctx.hv.find(a.vm))) return;
      if (!ctx.data.targetAddress) throw new PermanentError(`no address for target host ${a.to}`);
      await ctx.hv.migrate(a.vm, { host: a.to, address: ctx.data.targetAddress });
    },
  },
  {
    name: 'verify',
    // Only reads: a crash inside it resumes at xl-migrate, which finds the VM gone and goes on.
    pure: true,
    run: async (ctx) => {
      const a = action(ctx);
      const left = await ctx.hv.find(a.vm);
      if (left) throw new Error(`${a.from}: ${a.vm} is still here (${left.state}) after migration`);
      const there = ctx.peer?.(a.to);
      if (there) {
        const d = await there.find(a.vm);
        // On neither host: lost with one of them (qemu lab run 15: the target's Dom0 died mid-stream and the
        // source's while resuming the guest; a Dom0 that restarts holds no domains). Still retried, since a
        // restore that an earlier attempt left running may yet finish, but the message says what to do.
        if (!d)
          throw new Error(
            `${a.vm} is on neither ${a.from} nor ${a.to} after the migration: lost with a host (a Dom0 that restarted ` +
              `holds no domains; check \`xl list\` and \`xl dmesg\` on both); re-apply the site file to start it on ${a.to}`,
          );
        if (d.state !== 'running' && d.state !== 'blocked')
          throw new Error(`${a.to}: ${a.vm} is ${d.state} after migration`);
      }
    },
  },
];
