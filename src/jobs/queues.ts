// Queue names, job ids and job options: one BullMQ queue per Dom0 host, plus the control queue.
// Job ids derive from (version, action) so applying the same version twice enqueues nothing twice.

import type { JobsOptions } from 'bullmq';
import type { Action } from '../site/actions.ts';
import type { TemplateSpec } from '../site/model.ts';

export const CONTROL_QUEUE = 'control';

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

export interface ActionJobData {
  version: number;
  action: Action;
  /** The template the VM's config names, from the same version (create and restart need it). */
  template?: TemplateSpec;
  /** Migration target's Dom0 address (what `xl migrate` connects to). */
  targetAddress?: string;
  /** Cold moves: the Dom0 address of every host they move a VM to (and back, when rolling back). */
  addresses?: Record<string, string>;
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

/** A part of a cold move, run on another host's queue: retried like an action, no wave parent. */
export const partJobOptions: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 100000 },
  removeOnFail: { age: 30 * 24 * 3600 },
};
