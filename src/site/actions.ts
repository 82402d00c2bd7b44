// The plan's vocabulary: what must happen to move the site from one desired state to the next.
// The planner (src/site/plan.ts) produces these once, at submit; the version stores them and the control
// worker turns each into one job, exactly as stored.

import type { TemplateSpec, VmSpec } from './model.ts';
import type { VmDisk } from './storage.ts';

/**
 * What the plan assumed about the world when an action starts (after the actions it depends on ran).
 * The first step of every VM workflow checks them; one that no longer holds stops the action as stale.
 */
export type Precondition =
  /** The VM runs on no host (creates: a second copy would share its disk). */
  | { kind: 'vm-nowhere'; vm: string }
  /** The VM does not run on `host` (a migration's target). */
  | { kind: 'vm-absent'; vm: string; host: string }
  /** The VM runs on `host` at this size (what Xen holds: its targets). */
  | { kind: 'vm-runs'; vm: string; host: string; memMiB: number; vcpus: number }
  /** `host` has at least `memMiB` free and at least `vcpus` physical CPUs. */
  | { kind: 'room'; host: string; memMiB: number; vcpus: number }
  /** `host` holds the xl config file `file` with these bytes (src/site/config-files.ts). */
  | { kind: 'config-file'; host: string; file: string; sha256: string };

/** A VM as it ran before a disruptive action: what a rollback starts again. */
export interface PreviousVm {
  spec: VmSpec;
  template: TemplateSpec;
}

interface ActionBase {
  /** Stable id inside a plan, e.g. `create:vm3`, `migrate:vm1`. With the version it makes the job id. */
  id: string;
  vm: string;
  /** Why this action exists, in words an operator reads in `xsm site plan`. */
  reason: string;
  /**
   * Ordering for capacity: actions in wave N start only after every action of waves < N ended. Inside a
   * wave, actions run in parallel (on their own hosts' queues). A failure stops only `dependsOn`.
   */
  wave: number;
  /**
   * Ids of the actions this one needs to have succeeded: the previous action on the same VM and the
   * actions that free the memory it needs (only those it cannot fit without). When one of them failed
   * or was blocked, this action does not run and is recorded as blocked by it.
   */
  dependsOn: string[];
  preconditions: Precondition[];
  /** Set when the action stops a running VM: it runs only with the operator's (or policy's) consent. */
  disruptive?: true;
  /** What the disruption is, in a few words (`vm3 is shut down and started with 1024 MiB`). */
  disruption?: string;
}

export interface CreateAction extends ActionBase {
  kind: 'create';
  host: string;
  spec: VmSpec;
  /** Disks made from the template's images before `xl create` (a disk already there is kept as it is). */
  disks?: VmDisk[];
}

export interface RemoveAction extends ActionBase {
  kind: 'remove';
  host: string;
  /** The VM's pooled disks: kept (and named in the plan) unless `deleteDisks`. */
  disks?: VmDisk[];
  /** The request asked for the disks to go too (with consent, like the removal itself). */
  deleteDisks?: true;
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
  /** Restart only: the VM as it ran, started again if the new domain cannot be created. */
  previous?: PreviousVm;
}

/** A live migration that a cold move carries out while its VM is stopped (see MigrateAction.via). */
export interface ViaMove {
  vm: string;
  /** The VM as the new version wants it (its host is `to`). */
  spec: VmSpec;
  from: string;
  to: string;
  memMiB: number;
  vcpus: number;
}

export interface MigrateAction extends ActionBase {
  kind: 'migrate';
  /** Source host: the migration job runs on its queue. */
  from: string;
  to: string;
  spec: VmSpec;
  /**
   * 'live': `xl migrate`. 'cold' breaks a cycle of moves between full hosts when no third host has room to
   * park a VM: stop the VM on `from`, carry out the live moves in `via` (which need the room it left), start
   * it on `to`; if anything after the stop fails, the moves are undone and the VM starts again on `from`.
   */
  mode: 'live' | 'cold';
  /** Cold only: the live moves made while the VM is stopped, in order. */
  via?: ViaMove[];
  /** Cold only: the VM as it ran on `from`. */
  previous?: PreviousVm;
  /** Cold only: disks on storage `to` does not share, copied (and checked by sha256) while the VM is stopped. */
  disks?: VmDisk[];
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

/** A plan as stored with its version: what was planned against what, and the hash that names it. */
export interface StoredPlan extends Plan {
  version: number;
  /** The version the plan starts from (the current version when it was made). */
  base: number;
  /** Epoch ms when the observed state the plan used was read. */
  observedAt: number;
  /** sha256 of the canonical JSON of the actions: two plans with the same hash do the same things. */
  planHash: string;
  /** sha256 of the site file text the version stores. */
  xmlHash: string;
}

export function disruptiveActions(plan: Plan): Action[] {
  return plan.actions.filter((a) => a.disruptive);
}
