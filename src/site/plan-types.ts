// Types the planner's parts share (src/site/plan.ts decides what, src/site/schedule.ts decides when).

import type { Action, PreviousVm } from './actions.ts';
import type { VmSpec } from './model.ts';

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

/** Where a VM is and how big it is before the plan runs. */
export interface Present {
  host: string;
  memMiB: number;
  vcpus: number;
  maxMemMiB: number;
  maxVcpus: number;
  config?: string;
  spec?: VmSpec;
}

/** An action still to place in a wave, with what it frees and needs. */
export interface Pending {
  action: Action;
  /** The host where the action lands or grows the VM; it must have room for `needMiB` and `vcpus`. */
  needHost?: string;
  needMiB: number;
  vcpus: number;
  /** Memory released on `freeHost` once the action is done. */
  freeHost?: string;
  freeMiB: number;
  /** How the action is named when it does not fit (a growth says by how much). */
  label?: string;
  /** For live migrations: may this move be rerouted (parked, or made cold) when a cycle blocks it. */
  movable?: { vm: VmSpec; from: string; to: string; memMiB: number; vcpus: number; previous: PreviousVm };
}
