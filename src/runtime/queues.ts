// Queue names, job ids, job data and job options: one BullMQ queue per Dom0 host, the control queue and the
// deploy queue. Every job's data type is here, so whoever enqueues and whoever processes agree on one shape
// (the processors themselves are in src/jobs/, listed by its registry).
// Job ids derive from (version, action) so applying the same version twice enqueues nothing twice.

import type { JobsOptions } from 'bullmq';
import type { Action } from '../site/actions.ts';
import type { ImageManifest } from '../deploy/image.ts';
import type { TransferMethod } from '../deploy/transfer.ts';
import type { DiskLayout } from '../deploy/layout.ts';
import type { TemplateSpec } from '../site/model.ts';
import type { ImageRef } from '../deploy/image-ref.ts';
import type { HostUpdateResult } from '../services/host-image-updater.ts';

export const CONTROL_QUEUE = 'control';
/** Deploy jobs: consumed by the deploy worker on the machine that serves PXE and the images. */
export const DEPLOY_QUEUE = 'deploy';

export function hostQueueName(host: string): string {
  return `host-${host}`;
}

/** BullMQ refuses ':' in custom ids; action ids use it (`create:vm1`). */
export function actionJobId(version: number, action: Action): string {
  return `v${version}-${action.id.replace(/:/g, '-')}`;
}
export function applyJobId(version: number): string {
  return `apply-v${version}`;
}
export function waveJobId(version: number, wave: number): string {
  return `v${version}-wave-${wave}`;
}
export function waveEnqueueJobId(version: number, wave: number): string {
  return `v${version}-wave-${wave}-enqueue`;
}

export interface ActionJobData {
  version: number;
  action: Action;
  /** The template the VM's config names, from the same version (create and restart need it). */
  template?: TemplateSpec;
  /** Migration target's Dom0 address (what `xl migrate` connects to). */
  targetAddress?: string;
  /** Cold moves: the Dom0 address of every host they move a VM to (and back, when rolling back). */
  addresses?: Record<string, string>;
  /**
   * The fencing epoch of the job's host when the job was issued (src/state/fence-store.ts): an agent refuses
   * a job whose host was fenced since. Absent on jobs issued before epochs existed, and on cold moves' parts.
   */
  epoch?: number;
  /**
   * Creates: whether this create restarts the VM after its host failed (failover recorded it so), as the
   * control worker found when it enqueued the job. Absent on jobs enqueued before it was carried: the
   * agent then looks it up itself.
   */
  restart?: boolean;
}

export interface ApplyJobData {
  version: number;
  author: string;
}

export interface WaveJobData {
  version: number;
  wave: number;
  waves: number;
}

/** A wave too big for one flow: the child of its wave that adds the wave's actions to it in chunks. */
export interface WaveEnqueueJobData {
  version: number;
  wave: number;
}

export interface DeployJobData {
  /** The host's name in the site file, its boot MAC and Dom0 address (from the inventory). */
  host: string;
  mac: string;
  address: string;
  /** The disk the installer writes (/dev/sda; a file in the lab). */
  disk: string;
  image: ImageManifest;
  method: TransferMethod;
  /** Deploys started together share a session: the multicast round or the chain they join. */
  session: string;
  sessionSize: number;
  /** Memory the site file gives the host's guests: the booted Xen must have at least this. */
  expectMemMiB?: number;
  /** The host's <Layout> from the site file, as it was when the deploy was asked; absent: the worker's default. */
  layout?: DiskLayout;
}

/** `xsm image capture`: pull an installed Dom0's root file system into a new version of image `name`. */
export interface ImageCaptureJobData {
  host: string;
  /** The Dom0's address (from the site file when asked). */
  address: string;
  name: string;
}

/** `xsm host update`: rsync an image version onto an installed Dom0 (or, dryRun, list what would change). */
export interface HostUpdateJobData {
  host: string;
  address: string;
  image: ImageManifest;
  dryRun: boolean;
  /** Memory the site file gives the host's guests: Xen must still report at least this afterwards. */
  expectMemMiB?: number;
}

export interface FailoverJobData {
  host: string;
  incident: number;
}

export interface FailoverPolicy {
  /** No heartbeat and no Ganglia report for this long: suspect. */
  suspectAfterMs: number;
  /** Suspected for this long more (the confirmation window): fence and fail over. */
  fenceAfterMs: number;
  /**
   * If more than this fraction of the reporting hosts look dead at once, the likelier cause is that this
   * control process lost its view of the site (a network partition, Redis trouble), not that half the
   * rack died: fence nobody and say so.
   */
  maxDeadFraction: number;
}

export interface RebalanceRequest {
  dryRun?: boolean;
  mode?: 'performance' | 'density';
  maxMoves?: number;
  /** Seconds a moved VM is left alone afterwards, so VMs do not bounce. */
  cooldownSec?: number;
  /** Seconds a host a move left or reached is left alone afterwards. */
  hostCooldownSec?: number;
  /** Hysteresis: balancing starts when imbalance is at least this... */
  actAbove?: number;
  /** ...and, once started, goes on (round after round) until imbalance is at most this. */
  stopBelow?: number;
}

/** One host's part of a rolling upgrade, kept in the job's data so a resumed job knows what it did. */
export interface UpgradeHostProgress {
  /** Left alone: already on the image and not in maintenance. */
  skipped?: string;
  /** The site version that drained it (or found it drained). */
  drainVersion?: number;
  update?: HostUpdateResult;
  updatedAt?: number;
  /** What the agent's fresh `xl info` report said, and when. */
  verified?: string;
  verifiedAt?: number;
  rejoinedAt?: number;
  returnVersion?: number;
  /** VMs that did not come back (moved since, no room), as undrain --return said. */
  stayed?: { vm: string; why: string }[];
  failed?: { step: string; why: string };
}

export interface UpgradeJobData {
  /** The job's id too: `upgrade-...`. */
  id: string;
  image: ImageRef;
  /** In the order they are upgraded, one at a time. */
  hosts: string[];
  author: string;
  /** Consent for the cold moves a drain (or return) needs. */
  consent: 'operator' | 'none';
  /** How long each drain or return apply, and each host's return with Xen and its agent, may take. */
  timeouts: { applyMs: number; rejoinMs: number };
  /** How the plan said hosts are updated (in-place, redeploy, simulated): the worker updates that way or not at all. */
  method?: string;
  progress: Record<string, UpgradeHostProgress>;
}

/** What a `failover-check` job carries: the policy's settings that differ from the defaults. */
export type FailoverCheckJobData = Partial<FailoverPolicy>;

/** Each queue's job names and the data each carries: what the registry (src/jobs/registry.ts) routes by. */
export interface ControlJobs {
  apply: ApplyJobData;
  wave: WaveJobData;
  'wave-enqueue': WaveEnqueueJobData;
  rebalance: RebalanceRequest;
  'failover-check': FailoverCheckJobData;
  failover: FailoverJobData;
  upgrade: UpgradeJobData;
}
/** A host queue's jobs are named by their action's kind (a cold move's parts too). */
export type HostJobs = Record<Action['kind'], ActionJobData>;
export interface DeployJobs {
  'deploy-host': DeployJobData;
  'image-capture': ImageCaptureJobData;
  'host-update': HostUpdateJobData;
}

/**
 * Transient failures retry with exponential backoff; permanent ones (UnrecoverableError) fail at once.
 * A child that failed for good lets its wave go on (the failure is recorded on the parent): what it
 * blocks is decided by the plan's dependencies, not by the wave (src/jobs/apply.ts).
 */
export const actionJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100000 },
  removeOnFail: { age: 30 * 24 * 3600 },
  ignoreDependencyOnFailure: true,
};

/**
 * The child that adds a big wave's actions: retried long, since its wave waits for it and cannot go on
 * without it (a failure for good fails the wave, which then says why).
 */
export const waveEnqueueJobOptions: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
  failParentOnFailure: true,
};

/** A part of a cold move, run on another host's queue: retried like an action, no wave parent. */
export const partJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100000 },
  removeOnFail: { age: 30 * 24 * 3600 },
};
