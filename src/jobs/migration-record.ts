// The agent's half of a migration's record in the history (src/state/migration-history-store.ts): what
// moved where, when it started, how it ended and how long it took. The planner's half (why, predicted
// gain) is written by whoever chose the move; an operator's move is explained by its version's reason.

import type { Logger } from '../lib/log.ts';
import { errorMessage } from '../lib/errors.ts';
import type { ActionJobData } from '../runtime/queues.ts';
import type { XsmRuntime } from '../runtime/runtime.ts';
import type { MigrateAction } from '../site/actions.ts';

/** A history write that fails must not fail the migration: it is logged. */
async function quietly(log: Logger, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    log.warn('migration history not written', { error: errorMessage(e) });
  }
}

export function recordMigrationStart(
  rt: XsmRuntime,
  data: ActionJobData,
  a: MigrateAction,
  startedAt: number,
  log: Logger,
): Promise<void> {
  return quietly(log, () =>
    rt.migrations.record({
      vm: a.vm,
      version: data.version,
      from: a.from,
      to: a.to,
      mode: a.mode === 'cold' ? 'cold' : 'live',
      outcome: 'running',
      startedAt,
      actionReason: a.reason,
    }),
  );
}

/** `final`: the job will not be tried again, so a failure is the migration's outcome (and its duration). */
export function recordMigrationEnd(
  rt: XsmRuntime,
  data: ActionJobData,
  a: MigrateAction,
  startedAt: number,
  error: unknown,
  final: boolean,
  log: Logger,
): Promise<void> {
  const ok = error === undefined;
  // A failed attempt that will be retried is not an outcome yet.
  if (!ok && !final) return Promise.resolve();
  return quietly(log, () =>
    rt.migrations.record({
      vm: a.vm,
      version: data.version,
      outcome: ok ? 'ok' : 'failed',
      durationMs: Date.now() - startedAt,
      ...(ok ? {} : { error: errorMessage(error) }),
    }),
  );
}

/**
 * The VMs among `vms` whose create in `version` restarts them after their host failed, in one lookup: the
 * control worker asks when it enqueues a wave (failover records its restarts before it applies the version),
 * so an agent does not ask once per create. A lookup that fails finds none.
 */
export async function restartsAmong(rt: XsmRuntime, version: number, vms: readonly string[]): Promise<Set<string>> {
  if (!vms.length) return new Set();
  try {
    const records = await rt.migrations.getMany(version, vms);
    return new Set(vms.filter((_, i) => records[i]?.mode === 'restart'));
  } catch {
    return new Set();
  }
}

/** True when `vm`'s create in `version` restarts it after its host failed (failover recorded it so). */
export async function isRestart(rt: XsmRuntime, version: number, vm: string): Promise<boolean> {
  return (await restartsAmong(rt, version, [vm])).has(vm);
}

/**
 * A failover restart's progress: `error` undefined when it starts, null when it ended well, else why it
 * failed (`final`: not to be retried).
 */
export function recordRestart(
  rt: XsmRuntime,
  version: number,
  vm: string,
  startedAt: number,
  error: unknown,
  final: boolean,
  log: Logger,
): Promise<void> {
  if (error === undefined)
    return quietly(log, () => rt.migrations.record({ vm, version, outcome: 'running', startedAt }));
  if (error !== null && !final) return Promise.resolve();
  return quietly(log, () =>
    rt.migrations.record({
      vm,
      version,
      outcome: error === null ? 'ok' : 'failed',
      durationMs: Date.now() - startedAt,
      ...(error === null ? {} : { error: errorMessage(error) }),
    }),
  );
}
