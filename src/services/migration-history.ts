// The migration history as people read it: each record of src/state/migration-history-store.ts with who
// asked for it (operator, rebalance, drain, failover) and why, filled in from its site version when the
// planner that chose it did not say (an operator's `xsm vm migrate` or edited site file).

import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import { SYSTEM } from '../state/audit-store.ts';
import type { MigrationRecord, MigrationSource } from '../state/migration-history-store.ts';

export interface MigrationEntry extends Omit<MigrationRecord, 'actionReason'> {
  source: MigrationSource;
  reason: string;
  /** Who stored the version that made the move. */
  author?: string;
}

export interface MigrationQuery {
  limit?: number;
  /** Only this VM's migrations. */
  vm?: string;
}

function sourceOf(author: string | undefined): MigrationSource {
  if (author === SYSTEM.rebalance.name) return 'rebalance';
  if (author === SYSTEM.failover.name) return 'failover';
  return 'operator';
}

/** Newest first. A VM filter reads further back (up to the store's whole history) to fill the page. */
export async function listMigrations(rt: ServiceRuntime, q: MigrationQuery = {}): Promise<MigrationEntry[]> {
  const limit = q.limit ?? 100;
  const records = q.vm
    ? (await rt.migrations.list(10_000)).filter((r) => r.vm === q.vm).slice(0, limit)
    : await rt.migrations.list(limit);
  const versions = new Map<number, { author: string; reason: string } | undefined>();
  const out: MigrationEntry[] = [];
  for (const r of records) {
    if (!versions.has(r.version)) {
      const v = await rt.sites.get(r.version);
      versions.set(r.version, v ? { author: v.author, reason: v.reason } : undefined);
    }
    const meta = versions.get(r.version);
    const { actionReason, ...rest } = r;
    out.push({
      ...rest,
      source: r.source ?? sourceOf(meta?.author),
      reason: r.reason ?? meta?.reason ?? actionReason ?? '',
      ...(meta ? { author: meta.author } : {}),
    });
  }
  return out;
}
