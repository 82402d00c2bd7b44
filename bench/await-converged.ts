// Waiting for a benchmarked apply to converge, and stopping as soon as it cannot: an apply that ends
// partially-failed or superseded never converges, so a loop that only polls the converged version waits
// forever. The apply's status is read as the API's GET /api/site/versions/V/outcome reads it (and
// `xsm apply` reports it), and the error names every failed or blocked action with its reason.
import { versionOutcome, type VersionOutcome } from '../src/services/inspect.ts';
import { someOf } from '../src/jobs/apply.ts';
import type { XsmRuntime } from '../src/runtime/runtime.ts';

/** Failed and blocked actions an error names, one a line; the rest are counted. */
const NAMED_ACTIONS = 20;

/** Thrown when an apply ended without converging or a control job failed; the message says what failed. */
export class ApplyFailedError extends Error {
  override readonly name = 'ApplyFailedError';
}

/** The lines `xsm apply` prints for an apply that did not converge: its summary, then each action that did not run. */
export function describeOutcome(o: VersionOutcome): string {
  const lines = [o.summary ?? `version ${o.version} is ${o.state}`];
  const failed = o.actions.filter((a) => a.outcome === 'failed' || a.outcome === 'blocked');
  for (const a of failed.slice(0, NAMED_ACTIONS))
    lines.push(
      a.outcome === 'failed'
        ? `  ${a.id} failed on ${a.host}: ${a.reason ?? 'failed'}  (job ${a.queue} ${a.jobId})`
        : `  ${a.id} did not run: ${a.reason ?? `blocked by ${a.blockedBy}`}`,
    );
  if (failed.length > NAMED_ACTIONS) lines.push(`  and ${failed.length - NAMED_ACTIONS} more`);
  return lines.join('\n');
}

/**
 * Throws ApplyFailedError when the apply of `version` ended without converging (partially-failed,
 * superseded) or a control job (the apply, a wave) failed for good; returns otherwise.
 */
export async function throwIfApplyEnded(rt: XsmRuntime, version: number): Promise<void> {
  const status = await rt.applies.status(version);
  if (status && status.state !== 'applying' && status.state !== 'converged') {
    const outcome = await versionOutcome(rt, version);
    throw new ApplyFailedError(
      `the apply of version ${version} ended ${status.state}, so it will never converge:\n` +
        (outcome ? describeOutcome(outcome) : (status.summary ?? '')),
    );
  }
  const control = rt.control();
  if ((await control.getJobCounts('failed')).failed) {
    const why = (await control.getJobs(['failed'])).map((j) => `${j.name} ${j.id}: ${j.failedReason}`);
    throw new ApplyFailedError(`control jobs failed during the apply of version ${version}: ${someOf(why)}`);
  }
}

/** Polls until `version` converged; throws ApplyFailedError as soon as it cannot. */
export async function awaitConverged(rt: XsmRuntime, version: number, pollMs = 50): Promise<void> {
  while ((await rt.applies.convergedVersion()) < version) {
    await throwIfApplyEnded(rt, version);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
