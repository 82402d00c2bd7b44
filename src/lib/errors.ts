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

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
