// A cold move, as one action on the source host's queue: check the plan -> stop the VM here -> make the
// live moves its room allows (jobs on their sources' queues) -> start it on the target (a job on that
// host's queue, which checks the target still has room). Once the VM is stopped, a failure for good is
// rolled back: the moves are made backwards and the VM starts here again as it was, and the job says so.
// Only a part still running elsewhere is never rolled back over (two copies of one disk image would
// destroy it): the job then fails saying which part to look at.
import { buildDomainConfig } from '../src/drivers/hypervisor/domain-config.ts';
import { actionJobId, type ActionJobData } from '../src/runtime/queues.ts';
import { PermanentError } from '../src/lib/errors.ts';
import type { Rollback, Step } from '../src/lib/steps.ts';
import type { CreateAction, MigrateAction, ViaMove } from '../src/site/actions.ts';
import { checkPlanStep } from './check-plan.ts';
import { storageOf, waitRunning, type RemoteActions, type VmWorkflowContext } from './steps-common.ts';

/** A part of a cold move that has not finished on the other host: never rolled back over. */
export class PartStillRunning extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PartStillRunning';
  }
}

function action(ctx: VmWorkflowContext): MigrateAction {
  const a = ctx.data.action;
  if (a.kind !== 'migrate' || a.mode !== 'cold') throw new PermanentError(`expected a cold move, got ${a.kind}`);
  return a;
}

function remote(ctx: VmWorkflowContext): RemoteActions {
  if (!ctx.remote) throw new PermanentError('this worker cannot reach other hosts queues; a cold move needs them');
  return ctx.remote;
}

/** Job ids of a cold move's parts derive from the move's own, so a resumed move finds its parts again. */
export function partJobId(ctx: VmWorkflowContext, part: string): string {
  return `${actionJobId(ctx.data.version, action(ctx))}-${part}`;
}

function liveMove(ctx: VmWorkflowContext, v: ViaMove, back: boolean): ActionJobData {
  const [from, to] = back ? [v.to, v.from] : [v.from, v.to];
  const address = ctx.data.addresses?.[to];
  if (!address) throw new PermanentError(`no Dom0 address for ${to} in this cold move`);
  const move: MigrateAction = {
    kind: 'migrate',
    mode: 'live',
    id: `${action(ctx).id}:${back ? 'back' : 'via'}:${v.vm}`,
    vm: v.vm,
    from,
    to,
    spec: { ...v.spec, host: to },
    wave: action(ctx).wave,
    dependsOn: [],
    // Checked where the job runs (its source); the room on its target is what this move just made.
    preconditions: [{ kind: 'vm-runs', vm: v.vm, host: from, memMiB: v.memMiB, vcpus: v.vcpus }],
    reason: `part of ${action(ctx).id}: ${back ? 'move back' : 'make room'}`,
  };
  return { version: ctx.data.version, action: move, targetAddress: address };
}

function startOnTarget(ctx: VmWorkflowContext): ActionJobData {
  const a = action(ctx);
  const start: CreateAction = {
    kind: 'create',
    id: `${a.id}:start`,
    vm: a.vm,
    host: a.to,
    spec: a.spec,
    wave: a.wave,
    dependsOn: [],
    preconditions: [
      { kind: 'vm-absent', vm: a.vm, host: a.to },
      { kind: 'room', host: a.to, memMiB: a.spec.memMiB, vcpus: a.spec.vcpus },
    ],
    reason: `part of ${a.id}: start ${a.vm} on ${a.to}`,
  };
  return { version: ctx.data.version, action: start, ...(ctx.data.template ? { template: ctx.data.template } : {}) };
}

async function runPart(ctx: VmWorkflowContext, host: string, part: string, data: ActionJobData, what: string) {
  let r: Awaited<ReturnType<RemoteActions['run']>>;
  try {
    r = await remote(ctx).run(host, partJobId(ctx, part), data);
  } catch (e) {
    throw new PartStillRunning(
      `${what} (job ${partJobId(ctx, part)} on host-${host}) has not finished: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (!r.ok) throw new PermanentError(`${what} failed: ${r.reason}`);
}

export const coldMoveSteps: Step<VmWorkflowContext>[] = [
  checkPlanStep,
  {
    name: 'stop-on-source',
    run: async (ctx) => {
      const a = action(ctx);
      // By domid: a late run (its lock lapsed, the job taken over) must not stop an instance started since,
      // such as the one a rollback started again on the source (see reconfigure-vm.ts, stop-old).
      const d = await ctx.hv.find(a.vm);
      if (d) await ctx.hv.shutdown(a.vm, 60000, d.domid);
    },
  },
  {
    // The VM is stopped: its disks do not change while they are copied. A copy whose sha256 already matches
    // (made before a crash) is not made again; one that does not match is made again, then must match.
    name: 'copy-disks',
    run: async (ctx, rt) => {
      const a = action(ctx);
      if (!a.disks?.length) return;
      const storage = storageOf(ctx);
      const address = ctx.data.addresses?.[a.to];
      if (!address) throw new PermanentError(`no Dom0 address for ${a.to} in this cold move`);
      const target = { host: a.to, address };
      for (const d of a.disks) {
        const sum = await storage.checksum(d);
        const there = await storage.checksumOn(d, target).catch(() => undefined);
        if (there === sum) {
          rt.log.info('disk already copied; checksum matches', { vm: a.vm, disk: d.path, sha256: sum });
          continue;
        }
        await storage.copyTo(d, target, (percent, message) => rt.report({ percent, message }));
        const copied = await storage.checksumOn(d, target);
        if (copied !== sum)
          throw new PermanentError(
            `${d.path} on ${a.to} has sha256 ${copied}, not ${sum} as on ${a.from}: the copy is damaged`,
            `check the disk and network of ${a.to}, then apply again`,
          );
        await rt.report({ message: `${d.path} copied to ${a.to}, sha256 ${sum.slice(0, 16)}... matches` });
      }
    },
  },
  {
    name: 'move-others',
    run: async (ctx) => {
      for (const v of action(ctx).via ?? [])
        await runPart(ctx, v.from, `via-${v.vm}`, liveMove(ctx, v, false), `moving ${v.vm} from ${v.from} to ${v.to}`);
    },
  },
  {
    name: 'start-on-target',
    run: async (ctx) => {
      const a = action(ctx);
      await runPart(ctx, a.to, 'start', startOnTarget(ctx), `starting ${a.vm} on ${a.to}`);
    },
  },
];

function previous(ctx: VmWorkflowContext) {
  const p = action(ctx).previous;
  if (!p) throw new PermanentError(`${action(ctx).id} records no previous configuration; cannot roll back`);
  return p;
}

export const coldMoveRollback: Rollback<VmWorkflowContext> = {
  armedAfter: 'stop-on-source',
  steps: [
    {
      name: 'undo-moves',
      run: async (ctx) => {
        for (const v of [...(action(ctx).via ?? [])].reverse()) {
          const made = await remote(ctx).state(v.from, partJobId(ctx, `via-${v.vm}`));
          if (made === 'unfinished')
            throw new PartStillRunning(`moving ${v.vm} from ${v.from} to ${v.to} has not finished`);
          if (made && made.ok)
            await runPart(ctx, v.to, `back-${v.vm}`, liveMove(ctx, v, true), `moving ${v.vm} back to ${v.from}`);
        }
      },
    },
    {
      name: 'start-on-source',
      run: async (ctx) => {
        const prev = previous(ctx);
        const d = await ctx.hv.find(prev.spec.name);
        if (d && d.state !== 'crashed') return; // started by an attempt that died before recording it
        if (d) await ctx.hv.destroy(prev.spec.name);
        await ctx.hv.create(await buildDomainConfig(ctx.hv, prev.spec, prev.template));
        await waitRunning(ctx.hv, prev.spec.name, ctx.waitMs ?? 60000);
      },
    },
  ],
  outcome: (cause, ctx) => {
    const a = action(ctx);
    const d = previous(ctx).spec;
    const back = a.via?.length ? ` and ${a.via.map((v) => v.vm).join(', ')} moved back` : '';
    return new PermanentError(
      `rolled back: ${a.vm} runs again on ${a.from} as before (${d.memMiB} MiB, ${d.vcpus} vCPUs)${back}; the move to ${a.to} failed: ${cause}`,
      'make room on the target or move fewer VMs at once, then apply again',
    );
  },
  failed: (cause, error, ctx) => {
    const a = action(ctx);
    return new PermanentError(
      `${a.vm} is DOWN: its move to ${a.to} failed (${cause}) and starting it again on ${a.from} failed too (${error})`,
      'start it by hand (xl create) or apply a site version that fits, then check with `xsm status`',
    );
  },
};
