// Reconfigure a VM. Live: check the plan -> xl mem-set -> xl vcpu-set -> verify (within maxmem/maxvcpus).
// Restart (beyond what the running domain allows, or a template change): check the plan -> stop -> create
// anew -> wait -> verify. A restart never leaves the VM down by its own doing: once the old domain is
// stopped, a final failure starts it again as it was (journaled rollback) and the job says so.
import { buildDomainConfig } from '../src/drivers/hypervisor/domain-config.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Rollback, Step } from '../src/lib/steps.ts';
import type { ReconfigureAction } from '../src/site/actions.ts';
import { domainConfigFor } from './create-vm.ts';
import { heldSize } from '../src/drivers/hypervisor/hypervisor.ts';
import { checkPlanStep } from './check-plan.ts';
import { verifyMatches, waitRunning, type VmWorkflowContext } from './steps-common.ts';

function action(ctx: VmWorkflowContext): ReconfigureAction {
  const a = ctx.data.action;
  if (a.kind !== 'reconfigure') throw new PermanentError(`expected a reconfigure action, got ${a.kind}`);
  return a;
}

export const reconfigureLiveSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
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
    // Only reads: a crash inside it resumes at set-vcpus, which finds its effect and goes on.
    pure: true,
    run: async (ctx) => {
      const a = action(ctx);
      verifyMatches(ctx.hv.hostName, await ctx.hv.find(a.vm), a.vm, a.spec.memMiB, a.spec.vcpus);
    },
  },
];

export const reconfigureRestartSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
  {
    name: 'stop-old',
    // Journalled: once done it never runs again, so the domain create-new makes is never stopped by mistake.
    // By domid too: a run whose job lock lapsed while it waited here (a frozen agent) may wake after another
    // worker took the job over, stopped this instance and started the resized one under the same name; xl
    // then refuses the old domid instead of stopping the new domain a second time.
    run: async (ctx) => {
      const a = action(ctx);
      const d = await ctx.hv.find(a.vm);
      if (d) await ctx.hv.shutdown(a.vm, 60000, d.domid);
    },
  },
  {
    name: 'create-new',
    run: async (ctx) => {
      const cfg = await domainConfigFor(ctx);
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

function previousOf(ctx: VmWorkflowContext) {
  const p = action(ctx).previous;
  if (!p) throw new PermanentError(`${action(ctx).id} records no previous configuration; cannot roll back`);
  return p;
}

function what(a: ReconfigureAction): string {
  if (a.memMiB || a.vcpus) return 'the new size';
  return 'the new configuration';
}

/** Start the VM again as the plan recorded it before the restart: whatever the failed attempt left goes first. */
export const restartRollback: Rollback<VmWorkflowContext> = {
  armedAfter: 'stop-old',
  steps: [
    {
      name: 'recreate-old',
      run: async (ctx, rt) => {
        const prev = previousOf(ctx);
        const d = await ctx.hv.find(prev.spec.name);
        const held = d ? heldSize(d) : undefined;
        const asBefore =
          d && d.state !== 'crashed' && held!.memMiB === prev.spec.memMiB && held!.vcpus === prev.spec.vcpus;
        if (asBefore) return; // done by an attempt that died before recording it
        if (d) {
          rt.log.warn('removing what the failed restart left before starting the VM as it was', { state: d.state });
          await ctx.hv.destroy(prev.spec.name);
        }
        await ctx.hv.create(await buildDomainConfig(ctx.hv, prev.spec, prev.template));
      },
    },
    {
      name: 'wait-running',
      run: async (ctx) => {
        await waitRunning(ctx.hv, previousOf(ctx).spec.name, ctx.waitMs ?? 60000);
      },
    },
  ],
  outcome: (cause, ctx) => {
    const a = action(ctx);
    const p = previousOf(ctx).spec;
    return new PermanentError(
      `rolled back: ${a.vm} runs again as before (${p.memMiB} MiB, ${p.vcpus} vCPUs); ${what(a)} failed: ${cause}`,
      'free memory on the host or ask for less, then apply again',
    );
  },
  failed: (cause, error, ctx) => {
    const a = action(ctx);
    return new PermanentError(
      `${a.vm} is DOWN on ${ctx.hv.hostName}: ${what(a)} failed (${cause}) and starting it again as before failed too (${error})`,
      `start it by hand (xl create) or apply a site version that fits, then check with \`xsm status\``,
    );
  },
};
