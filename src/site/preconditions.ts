// What each action of a plan assumes about its VMs when it starts: the state the plan expects after the
// actions before it on the same VM. The first step of every VM workflow checks these against the real
// host (and, for other hosts, the observed state); one that no longer holds means the world moved since
// the plan was made, so the action stops as stale instead of acting on a wrong picture.

import type { Action, Precondition } from './actions.ts';
import type { Present } from './plan-types.ts';

interface VmState {
  host: string;
  memMiB: number;
  vcpus: number;
}

/** Adds the VM preconditions to `actions` (ordered by wave), in front of the room they already carry. */
export function addVmPreconditions(actions: Action[], present: ReadonlyMap<string, Present>): void {
  // What the actions so far changed (null: removed); every other VM is as present says.
  const changed = new Map<string, VmState | null>();
  const state = {
    get: (vm: string): VmState | undefined => {
      const s = changed.get(vm);
      return s === undefined ? present.get(vm) : (s ?? undefined);
    },
    set: (vm: string, s: VmState) => changed.set(vm, s),
    delete: (vm: string) => changed.set(vm, null),
  };
  const runs = (vm: string, host: string): Precondition => {
    const s = state.get(vm);
    return { kind: 'vm-runs', vm, host, memMiB: s?.memMiB ?? 0, vcpus: s?.vcpus ?? 0 };
  };
  for (const a of actions) {
    const pre: Precondition[] = [];
    switch (a.kind) {
      case 'create':
        pre.push({ kind: 'vm-nowhere', vm: a.vm });
        state.set(a.vm, { host: a.host, memMiB: a.spec.memMiB, vcpus: a.spec.vcpus });
        break;
      case 'remove':
        pre.push(runs(a.vm, a.host));
        state.delete(a.vm);
        break;
      case 'reconfigure':
        pre.push(runs(a.vm, a.host));
        state.set(a.vm, { host: a.host, memMiB: a.spec.memMiB, vcpus: a.spec.vcpus });
        break;
      case 'migrate':
        pre.push(runs(a.vm, a.from), { kind: 'vm-absent', vm: a.vm, host: a.to });
        for (const v of a.via ?? []) {
          pre.push(runs(v.vm, v.from), { kind: 'vm-absent', vm: v.vm, host: v.to });
          state.set(v.vm, { host: v.to, memMiB: v.memMiB, vcpus: v.vcpus });
        }
        state.set(a.vm, { ...pick(state.get(a.vm) ?? { memMiB: a.spec.memMiB, vcpus: a.spec.vcpus }), host: a.to });
        break;
    }
    a.preconditions = [...pre, ...a.preconditions];
  }
}

/** The size a VM state records (a Present has more fields, which the state does not keep). */
function pick(s: Pick<VmState, 'memMiB' | 'vcpus'>): Pick<VmState, 'memMiB' | 'vcpus'> {
  return { memMiB: s.memMiB, vcpus: s.vcpus };
}

/** One line an operator reads: what the plan assumed. */
export function describePrecondition(p: Precondition): string {
  switch (p.kind) {
    case 'vm-nowhere':
      return `${p.vm} runs nowhere`;
    case 'vm-absent':
      return `${p.vm} does not run on ${p.host}`;
    case 'vm-runs':
      return `${p.vm} runs on ${p.host} with ${p.memMiB} MiB, ${p.vcpus} vCPUs`;
    case 'room':
      return `${p.host} has ${p.memMiB} MiB free and ${p.vcpus} CPUs`;
    case 'config-file':
      return `${p.host} holds config file ${p.file} (sha256 ${p.sha256.slice(0, 12)})`;
  }
}
