// The two kinds of failure XSM distinguishes. A job that throws PermanentError fails at once (BullMQ's
// UnrecoverableError); anything else is transient and retried with backoff.

import { UnrecoverableError } from 'bullmq';

/** Retrying cannot help: bad config, no capacity, unknown host. `hint` tells the operator what to do next. */
export class PermanentError extends UnrecoverableError {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message} (${hint})` : message);
    this.name = 'PermanentError';
  }
}

/**
 * This run no longer owns its job: the job's lock is another worker's (BullMQ's stalled-job check handed the
 * job over after this run's lock lapsed) or gone. The journal refused this run's write, so the run stops
 * without acting and without finishing the job; the owner carries on from the journal (src/lib/steps.ts).
 */
export class JobLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobLostError';
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
