// Create a VM: check the plan still holds (the VM runs nowhere, the host has room) -> render its xl.cfg ->
// xl create -> wait until running -> verify. Every step first looks at the real host: a domain that already
// exists is never created twice.

import { buildDomainConfig } from '../src/drivers/hypervisor/domain-config.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Step } from '../src/lib/steps.ts';
import type { VmSpec } from '../src/site/model.ts';
import { heldSize, HypervisorRefusal } from '../src/drivers/hypervisor/hypervisor.ts';
import { checkPlanStep } from './check-plan.ts';
import { storageOf, verifyMatches, waitRunning, type VmWorkflowContext } from './steps-common.ts';

function specOf(ctx: VmWorkflowContext): VmSpec {
  const a = ctx.data.action;
  if (a.kind !== 'create' && a.kind !== 'reconfigure' && a.kind !== 'migrate')
    throw new PermanentError(`action ${a.kind} has no VM spec`);
  return a.spec;
}

export async function domainConfigFor(ctx: VmWorkflowContext) {
  const spec = specOf(ctx);
  if (!ctx.data.template)
    throw new PermanentError(
      `no template ${spec.config} in site version ${ctx.data.version}`,
      'declare the template in <Templates>',
    );
  return buildDomainConfig(ctx.hv, spec, ctx.data.template);
}

function disksToMake(ctx: VmWorkflowContext) {
  const a = ctx.data.action;
  return a.kind === 'create' ? (a.disks ?? []) : [];
}

export const createSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
  {
    name: 'render-config',
    pure: true,
    run: async (ctx) => {
      await domainConfigFor(ctx);
    },
  },
  {
    // Before xl create, so a domain never starts without its disk. A disk at its final path is complete
    // (drivers make it under another name and rename it), so a resumed step keeps it and goes on.
    name: 'provision-disks',
    // A VM without pooled disks has nothing to make: the step only returns, and is not written.
    pure: (ctx) => !disksToMake(ctx).length,
    run: async (ctx, rt) => {
      const disks = disksToMake(ctx);
      if (!disks.length) return;
      const storage = storageOf(ctx);
      for (const d of disks) {
        if (await storage.exists(d)) {
          rt.log.info('disk already there; not making it again', { vm: ctx.data.action.vm, disk: d.path });
          continue;
        }
        await storage.provision(d, (percent, message) => rt.report({ percent, message }));
      }
    },
  },
  {
    name: 'xl-create',
    run: async (ctx, rt) => {
      const cfg = await domainConfigFor(ctx);
      const spec = specOf(ctx);
      let d = await ctx.hv.find(cfg.name);
      // `xl create` builds a domain paused and unpauses it once its devices are attached. One killed in
      // between (its timeout, a lost SSH session) leaves a paused domain that never ran and may lack its
      // disks: taking it for this job's own would wait for a guest that never starts (seen in the qemu lab,
      // test/xen-lab/results/README.md, storage-proof run 1). Destroy it and create the domain again.
      if (d && d.state === 'paused' && d.cpuTimeSec === 0) {
        rt.log.warn(
          'domain was left paused before it ever ran (an interrupted xl create); destroying it and creating it again',
          {
            vm: cfg.name,
            domid: d.domid,
          },
        );
        await ctx.hv.destroy(cfg.name);
        d = undefined;
      }
      if (!d) {
        try {
          await ctx.hv.create(cfg);
          return;
        } catch (e) {
          // A second run of this job beside the first: BullMQ hands a job whose lock lapsed (a worker
          // starved of CPU) to another worker while the first still runs, and both found no domain and
          // created it; xl refuses the later one. The domain is there now: go on as for one found above
          // (it matches, or is resized, or refused with the reason) instead of failing a create that
          // happened (seen at 10,000 VMs under load: 42-162 creates failed this way).
          if (!(e instanceof HypervisorRefusal) || !/already exists/.test(e.message)) throw e;
          d = await ctx.hv.find(cfg.name);
          if (!d) throw e;
          rt.log.warn('xl create: the domain was created meanwhile (another run of this job?); checking it', {
            vm: cfg.name,
            domid: d.domid,
          });
        }
      }
      // Already there: this job's own create before a crash (it matches), or a domain from an earlier
      // version that a stale observed state hid from the planner (seen on real Xen: v2 planned "create"
      // for a VM v1 had just started). Bring it to this version's size live, or say why not.
      const { memMiB: mem, vcpus: cpus } = heldSize(d);
      if (mem === spec.memMiB && cpus === spec.vcpus) {
        rt.log.info('domain already exists; not creating it again', { vm: cfg.name });
        return;
      }
      if (spec.memMiB > d.maxMemMiB || spec.vcpus > d.maxVcpus) {
        throw new PermanentError(
          `${ctx.hv.hostName}: domain ${cfg.name} already runs with ${mem} MiB / ${cpus} vCPUs (maxmem ${d.maxMemMiB} MiB, maxvcpus ${d.maxVcpus}); this version wants ${spec.memMiB} MiB / ${spec.vcpus} vCPUs, beyond what it can take live`,
          `remove the running ${cfg.name} (or re-apply once \`xsm status\` shows it) so XSM plans a restart`,
        );
      }
      rt.log.warn('domain already exists with another size; resizing it live', {
        vm: cfg.name,
        from: `${mem}/${cpus}`,
        to: `${spec.memMiB}/${spec.vcpus}`,
      });
      if (mem !== spec.memMiB) await ctx.hv.setMemory(cfg.name, spec.memMiB);
      if (cpus !== spec.vcpus) await ctx.hv.setVcpus(cfg.name, spec.vcpus);
    },
  },
  {
    name: 'wait-running',
    pure: true,
    run: async (ctx) => {
      await waitRunning(ctx.hv, specOf(ctx).name, ctx.waitMs ?? 60000);
    },
  },
  {
    // Only reads: a crash inside it resumes at xl-create, which finds its domain and goes on.
    name: 'verify',
    pure: true,
    run: async (ctx) => {
      const spec = specOf(ctx);
      verifyMatches(ctx.hv.hostName, await ctx.hv.find(spec.name), spec.name, spec.memMiB, spec.vcpus);
    },
  },
];
