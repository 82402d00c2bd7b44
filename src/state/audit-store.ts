// The audit log: who changed what, when, from where, and how it ended. Every mutating API request and every
// automated action (scheduled rebalance, failover) appends one entry to a Redis stream, shared by every
// API host; entries older than the retention (XSM_AUDIT_DAYS, default 90) are trimmed as new ones arrive.
// It is append-only through this store: nothing in XSM edits or deletes an entry.

import { envWholeNumber } from '../lib/env.ts';
import type { Redis } from 'ioredis';

/**
 * Identities of XSM's own automated actions, recorded as version authors and in the audit log. Token names
 * cannot contain ':', so no person can act as one of them.
 */
export const SYSTEM = {
  rebalance: { name: 'system:rebalance', role: 'system' },
  failover: { name: 'system:failover', role: 'system' },
} as const;

export interface AuditEntry {
  /** ISO-8601, set by the store. */
  time: string;
  /** The identity: a token's name, or `system:rebalance` / `system:failover`. */
  user: string;
  role: string;
  /** Client address for requests; `internal` for automated actions. */
  from: string;
  /** What was done: submit, edit, apply, retry, deploy, power-confirm, rebalance, schedule, dashboard, login... */
  kind: string;
  /** The request (`POST /api/site`) or the action, in words. */
  what: string;
  /** ok, or refused / failed with the HTTP status or the reason. */
  outcome: string;
  status?: number;
  /** Sets the change touched, when it touched any. */
  sets?: string[];
  version?: number;
  job?: string;
  /** Consent given to stop running VMs. */
  consent?: boolean;
  reason?: string;
  /** The stream id: stable, increasing; `?after=` pages from it. */
  id?: string;
}

export interface AuditQuery {
  user?: string;
  set?: string;
  kind?: string;
  /** ISO-8601 or epoch ms bounds. */
  since?: number;
  until?: number;
  limit?: number;
  /** Entries older than this entry id (the `next` of a previous page). */
  cursor?: string;
}

export function auditRetentionDays(env: NodeJS.ProcessEnv = process.env): number {
  return envWholeNumber(env, 'XSM_AUDIT_DAYS', 90, 1, 36500, 'whole days');
}

export class AuditStore {
  private readonly key: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly retentionDays = auditRetentionDays(),
  ) {
    this.key = `${prefix}:audit`;
  }

  /** Appends one entry; trims what is older than the retention in the same call. */
  async append(entry: Omit<AuditEntry, 'time' | 'id'>): Promise<string> {
    const now = Date.now();
    const minId = `${now - this.retentionDays * 86_400_000}-0`;
    const fields = Object.entries({ ...entry, time: new Date(now).toISOString() }).flatMap(([k, v]) =>
      v === undefined ? [] : [k, typeof v === 'string' ? v : JSON.stringify(v)],
    );
    return (await this.redis.xadd(this.key, 'MINID', '~', minId, '*', ...fields)) as string;
  }

  /** Newest first, filtered; `limit` entries at most (default 100, at most 10000). */
  async query(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = Math.min(q.limit ?? 100, 10_000);
    const out: AuditEntry[] = [];
    let end = q.cursor !== undefined ? `(${q.cursor}` : q.until !== undefined ? String(q.until) : '+';
    const start = q.since !== undefined ? String(q.since) : '-';
    // Reads backwards in pages so a filter that matches rarely still finds `limit` entries.
    for (;;) {
      const page = await this.redis.xrevrange(this.key, end, start, 'COUNT', 500);
      for (const [id, flat] of page) {
        const e = decode(id, flat);
        if (q.user !== undefined && e.user !== q.user) continue;
        if (q.kind !== undefined && e.kind !== q.kind) continue;
        if (q.set !== undefined && !e.sets?.includes(q.set)) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      if (page.length < 500) return out;
      end = `(${page[page.length - 1]![0]}`;
    }
  }
}

const NUMBERS = new Set(['status', 'version']);
const JSON_FIELDS = new Set(['sets', 'consent']);

function decode(id: string, flat: string[]): AuditEntry {
  const e: Record<string, unknown> = { id };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [k, v] = [flat[i]!, flat[i + 1]!];
    e[k] = NUMBERS.has(k) ? Number(v) : JSON_FIELDS.has(k) ? (JSON.parse(v) as unknown) : v;
  }
  return e as unknown as AuditEntry;
}
