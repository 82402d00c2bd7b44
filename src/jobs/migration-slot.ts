// A live migration runs only inside a slot of the site's migration limits (src/state/migration-slot-store.ts):
// the job waits for one — without failing, so the wait is neither a failed attempt nor a failure in the
// metrics — keeps it renewed while `xl migrate` runs, and gives it back when it ends, however it ends.

import type { Logger } from '../lib/log.ts';
import type { MigrationLimits, MigrationSlot, MigrationSlotStore } from '../state/migration-slot-store.ts';

export interface SlotTiming {
  /** How long a slot lives without renewal (an agent that died frees it after this). */
  ttlMs: number;
  /** First and longest pause between two tries while waiting. */
  pollMs: number;
  maxPollMs: number;
}

export const SLOT_TIMING: SlotTiming = { ttlMs: 60_000, pollMs: 100, maxPollMs: 2000 };

/**
 * Waits until `slot` may start within `limits`, then holds it; the returned function gives it back.
 * `waiting` is told once, with the limit that holds the migration back.
 */
export async function holdMigrationSlot(
  store: MigrationSlotStore,
  slot: MigrationSlot,
  limits: MigrationLimits,
  log: Logger,
  timing: SlotTiming = SLOT_TIMING,
): Promise<(lost?: boolean) => Promise<void>> {
  let pause = timing.pollMs;
  let told = false;
  for (;;) {
    const got = await store.acquire(slot, limits, timing.ttlMs);
    if (got.ok) break;
    if (!told) log.info('waiting for a live-migration slot', { vm: slot.id, why: got.why });
    told = true;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(timing.maxPollMs, pause * 2);
  }
  // Renewal only extends the slot: once released (or taken over by a resumed job that released it), a
  // renewal left behind by a killed worker cannot take it back. Unref'd: it never keeps a process alive.
  const renew = setInterval(
    () => void store.renew(slot.id, timing.ttlMs).catch(() => undefined),
    Math.max(50, Math.floor(timing.ttlMs / 3)),
  );
  renew.unref();
  // A run that lost its job (src/lib/steps.ts, JobLostError) leaves the slot to the run that took the job
  // over: it holds the same slot, under the same id.
  return async (lost = false) => {
    clearInterval(renew);
    if (!lost) await store.release(slot.id);
  };
}
