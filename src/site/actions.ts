// The plan's vocabulary: what must happen to move the site from one desired state to the next.
// The planner (src/site/plan.ts) produces these; the control worker turns each into one job.

import type { VmSpec } from './model.ts';

interface ActionBase {
  /** Stable id inside a plan, e.g. `create:vm3`, `migrate:vm1`. With the version it makes the job id. */
  id: string;
  vm: string;
  /** Why this action exists, in words an operator reads in `xsm site plan`. */
  reason: string;
  /**
   * Ordering: actions in wave N start only after every action of waves < N finished. Inside a wave, actions
   * run in parallel (on their own hosts' queues). Waves are what keeps capacity from being exceeded mid-plan.
   */
  wave: number;
}

export interface CreateAction extends ActionBase {
  kind: 'create';
  host: string;
  spec: VmSpec;
}

export interface RemoveAction extends ActionBase {
  kind: 'remove';
  host: string;
}

export interface ReconfigureAction extends ActionBase {
  kind: 'reconfigure';
  host: string;
  spec: VmSpec;
  vcpus?: { from: number; to: number };
  memMiB?: { from: number; to: number };
  /**
   * 'live': `xl mem-set` / `xl vcpu-set` within the domain's maxmem/maxvcpus.
   * 'restart': the change exceeds what the running domain allows; shut down and create with the new config.
   */
  mode: 'live' | 'restart';
}

export interface MigrateAction extends ActionBase {
  kind: 'migrate';
  /** Source host: the migration job runs on its queue. */
  from: string;
  to: string;
  spec: VmSpec;
  /**
   * Always live (`xl migrate`). A cycle of moves between full hosts that no order can satisfy is broken by
   * parking a VM on a third host (two live moves) or, when no host has room, by a cold move expressed as a
   * remove on the source and a later create on the target (both reasons say so).
   */
  mode: 'live';
}

export type Action = CreateAction | RemoveAction | ReconfigureAction | MigrateAction;
export type ActionKind = Action['kind'];

/** The host whose queue runs an action (a migration runs on its source). */
export function actionHost(action: Action): string {
  return action.kind === 'migrate' ? action.from : action.host;
}

export interface Plan {
  actions: Action[];
  /** Number of waves (max wave + 1), 0 for an empty plan. */
  waves: number;
  /** Things the operator should know that do not stop the plan (unknown capacity, observed drift). */
  notes: string[];
}
